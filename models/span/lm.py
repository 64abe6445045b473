"""A small character-level causal transformer whose every head learns its attention span.

    from models.span.lm import SpanLMConfig, SpanTrainConfig, train_span_lm
    from models.span.corpus import generate_corpus
    run = train_span_lm(generate_corpus(), SpanLMConfig(), SpanTrainConfig(steps=200))
    run.spans()            # [layers, heads] learned spans in characters
    run.history.lm_loss    # language-model loss at each logged step

Each head has a learned bias per query-key distance (so a head can find "the character
k back" quickly) and an AdaptiveSpanMask after its softmax. The training loss is the
language-model loss plus, for every layer, lambda * S * mean(z).
"""
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.span.mask import AdaptiveSpanMask

MAX_VOCAB = 512  # distinct characters a training text may have


class TrainingTextError(ValueError):
    """The training text can't be used; str(error) is a message for the user."""


@dataclass(frozen=True)
class SpanLMConfig:
    vocab_size: int = 0  # set from the training text
    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 64
    max_span: int = 64  # S, also the context length the model is trained on
    ramp: int = 8  # R in characters
    init_fraction: float = 1.0  # z / S at the start: every head starts seeing all S characters

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"{self.n_heads} heads don't divide the model width {self.d_model}.")
        if self.n_layers < 1 or self.max_span < 2 or self.ramp < 1 or not 0 <= self.init_fraction <= 1:
            raise ValueError("Need at least 1 layer, a maximum span of 2+, a ramp of 1+ and a start span in [0, 1].")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


@dataclass(frozen=True)
class SpanTrainConfig:
    steps: int = 1500
    batch_size: int = 16
    learning_rate: float = 3e-3
    span_learning_rate: float = 1.2e-3  # z moves about this much (as a fraction of S) per step
    span_loss: float = 2e-3  # lambda; 0 switches the span loss off
    seed: int = 0
    log_every: int = 10  # record loss and spans, and call the progress callback

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.log_every < 1 or self.span_loss < 0:
            raise ValueError("Steps, batch size and log interval must be 1+, the span loss 0+.")


@dataclass
class TrainingHistory:
    steps: list[int] = field(default_factory=list)
    lm_loss: list[float] = field(default_factory=list)  # mean over the steps since the last log
    # the last entry is after the final update, measured on a fresh batch
    spans: list[np.ndarray] = field(default_factory=list)  # each [layers, heads] in characters

    def spans_array(self) -> np.ndarray:
        """[logged steps, layers, heads]."""
        return np.stack(self.spans)


@dataclass(frozen=True)
class TrainProgress:
    step: int
    total_steps: int
    lm_loss: float
    spans: np.ndarray  # [layers, heads] in characters


class SpanAttention(nn.Module):
    """Causal self-attention with a learned distance bias and an adaptive span per head."""

    def __init__(self, config: SpanLMConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.distance_bias = nn.Parameter(torch.zeros(config.n_heads, config.max_span))
        self.span = AdaptiveSpanMask(config.n_heads, config.max_span, config.ramp, config.init_fraction)

    def weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked attention [batch, heads, T, T] and values [batch, heads, T, head_dim]."""
        batch, length, width = x.shape
        q, k, v = (
            t.view(batch, length, self.n_heads, -1).transpose(1, 2)
            for t in self.qkv(x).split(width, dim=-1)
        )
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        positions = torch.arange(length, device=x.device)
        distance = positions[:, None] - positions[None, :]  # [T, T]
        scores = scores + self.distance_bias[:, distance.clamp(min=0)]
        scores = scores.masked_fill(distance < 0, float("-inf"))
        return self.span(scores.softmax(-1)), v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention, v = self.weights(x)
        mixed = (attention @ v).transpose(1, 2).reshape(x.shape)
        return self.out(mixed)


class Block(nn.Module):
    def __init__(self, config: SpanLMConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model)
        self.attention = SpanAttention(config)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, 4 * config.d_model),
            nn.GELU(),
            nn.Linear(4 * config.d_model, config.d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SpanLM(nn.Module):
    def __init__(self, config: SpanLMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [batch, T, vocab] for ids [batch, T], T <= max_span."""
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def span_masks(self) -> list[AdaptiveSpanMask]:
        return [block.attention.span for block in self.blocks]

    def span_loss(self, coefficient: float) -> torch.Tensor:
        return sum(mask.span_loss(coefficient) for mask in self.span_masks())

    def spans(self) -> np.ndarray:
        """[layers, heads] learned spans z in characters."""
        return np.stack([mask.spans() for mask in self.span_masks()])


@dataclass
class TrainedRun:
    """A trained model with what it was trained on and how its loss and spans went."""

    model_config: SpanLMConfig
    train_config: SpanTrainConfig
    vocab: str  # the characters, in id order
    source: str  # what the text was, for people ("generated corpus", a file name)
    model: SpanLM
    history: TrainingHistory
    train_seconds: float

    def spans(self) -> np.ndarray:
        """[layers, heads] learned spans in characters."""
        return self.model.spans()


def decode_text(data: bytes, name: str) -> str:
    """An uploaded file as text; raises TrainingTextError if it isn't UTF-8 text."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TrainingTextError(f"{name} is not UTF-8 text: save it as plain UTF-8 text and upload it again.") from None


def encode_text(text: str, max_span: int) -> tuple[str, torch.Tensor]:
    """The text's characters (sorted) and the text as ids; raises TrainingTextError."""
    if len(text) < 2 * (max_span + 1):
        raise TrainingTextError(
            f"The training text has {len(text)} characters; it needs at least "
            f"{2 * (max_span + 1)} for a maximum span of {max_span}."
        )
    vocab = "".join(sorted(set(text)))
    if len(vocab) > MAX_VOCAB:
        raise TrainingTextError(
            f"The training text uses {len(vocab)} different characters; at most {MAX_VOCAB} are supported."
        )
    index = {char: i for i, char in enumerate(vocab)}
    return vocab, torch.tensor([index[char] for char in text], dtype=torch.long)


def _lm_loss(model: SpanLM, ids: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Next-character cross-entropy on a batch of random windows of S + 1 characters."""
    length = model.config.max_span
    starts = torch.randint(0, len(ids) - length - 1, (batch_size,), generator=generator).tolist()
    windows = torch.stack([ids[s : s + length + 1] for s in starts])
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten())


def train_span_lm(
    text: str,
    model_config: SpanLMConfig,
    train_config: SpanTrainConfig,
    on_progress: Callable[[TrainProgress], None] | None = None,
    source: str = "text",
) -> TrainedRun:
    """Train a SpanLM on random windows of S characters of `text` (the same run for the same seed)."""
    started = time.perf_counter()
    vocab, ids = encode_text(text, model_config.max_span)
    model_config = replace(model_config, vocab_size=len(vocab))
    generator = torch.Generator().manual_seed(train_config.seed)
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(train_config.seed)
        model = SpanLM(model_config)
    optimizer = _optimizer(model, train_config)
    history, losses = TrainingHistory(), []
    for step in range(train_config.steps):
        lm_loss = _lm_loss(model, ids, train_config.batch_size, generator)
        losses.append(lm_loss.item())
        if step % train_config.log_every == 0:
            _log(history, step, losses, model, train_config, on_progress)
            losses = []
        optimizer.zero_grad(set_to_none=True)
        (lm_loss + model.span_loss(train_config.span_loss)).backward()
        optimizer.step()
        for mask in model.span_masks():
            mask.clamp_()
    model.eval()
    with torch.no_grad():
        final_loss = _lm_loss(model, ids, train_config.batch_size, generator).item()
    _log(history, train_config.steps, [final_loss], model, train_config, on_progress)
    return TrainedRun(model_config, train_config, vocab, source, model, history, time.perf_counter() - started)


def _optimizer(model: SpanLM, train_config: SpanTrainConfig) -> torch.optim.Optimizer:
    spans = [mask.fraction for mask in model.span_masks()]
    span_ids = {id(p) for p in spans}
    weights = [p for p in model.parameters() if id(p) not in span_ids]
    return torch.optim.Adam([
        {"params": weights, "lr": train_config.learning_rate},
        {"params": spans, "lr": train_config.span_learning_rate},
    ])


def _log(history: TrainingHistory, step: int, losses: list[float], model: SpanLM,
         train_config: SpanTrainConfig, on_progress: Callable[[TrainProgress], None] | None) -> None:
    """Record the mean loss since the last log and the spans the model has at `step` updates."""
    history.steps.append(step)
    history.lm_loss.append(float(np.mean(losses)))
    history.spans.append(model.spans())
    if on_progress is not None:
        on_progress(TrainProgress(step, train_config.steps, history.lm_loss[-1], history.spans[-1]))

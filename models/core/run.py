"""Run a loaded model on a text and keep its attention as numpy arrays."""
import contextlib
import functools
from dataclasses import dataclass

import numpy as np
import torch

from models.core.attention_fn import recording
from models.core.loading import LoadedModel
from models.core.scores import ScoreStack, capture_scores


class RunError(ValueError):
    """The text can't be run; str(error) is a message for the user."""


@dataclass(frozen=True, eq=False)
class AttentionRun:
    """One forward pass on one text. Matrices have query rows and key columns; rows sum to 1.

    For encoder-decoder models `tokens`/`attentions` are the encoder's, and the decoder_* and
    cross_attentions fields are set. n = len(tokens), m = len(decoder_tokens).
    """

    model_spec: str
    tokens: list[str]  # n tokens as the tokenizer writes them ("##ing", "Ġthe", "▁the")
    attentions: np.ndarray  # [layers, heads, n, n] float32
    causal: bool  # a query sees only keys j <= i
    segment_ids: np.ndarray  # [n] int8: 0 sentence A, 1 sentence B, -1 special token
    special_mask: np.ndarray  # [n] bool: tokens the tokenizer added ([CLS], [SEP], <s>, </s>)
    n_input_tokens: int  # tokens before truncation; > n when the text was cut
    decoder_tokens: list[str] | None = None  # m tokens fed to the decoder
    decoder_attentions: np.ndarray | None = None  # [layers, heads, m, m] float32, causal
    cross_attentions: np.ndarray | None = None  # [layers, heads, m, n] float32
    score_stacks: dict[str, ScoreStack] | None = None  # with_scores=True: q, k, raw scores per stack

    @property
    def scores(self) -> np.ndarray | None:
        """[layers, heads, n, n] raw q.k before the scale (with_scores=True), of `attentions`' stack."""
        return None if self.score_stacks is None else next(iter(self.score_stacks.values())).scores

    def __post_init__(self):
        # a run is shared between sessions without copying (pages/_shared.py): never written to
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)

    @property
    def n(self) -> int:
        return len(self.tokens)

    @property
    def num_layers(self) -> int:
        return self.attentions.shape[0]

    @property
    def num_heads(self) -> int:
        return self.attentions.shape[1]

    @property
    def truncated(self) -> bool:
        return self.n_input_tokens > self.n


@dataclass(frozen=True, eq=False)
class AttentionStack:
    """One family of attention matrices of a run: queries from one token list, keys from another."""

    name: str  # "self-attention", "encoder", "decoder" or "cross"
    attentions: np.ndarray  # [layers, heads, q, k] float32
    query_tokens: list[str]  # q
    key_tokens: list[str]  # k
    causal: bool


def attention_stacks(run: AttentionRun) -> dict[str, AttentionStack]:
    """The run's stacks by name: one for encoders and decoders, three for encoder-decoders."""
    if run.decoder_tokens is None:
        return {"self-attention": AttentionStack("self-attention", run.attentions, run.tokens, run.tokens, run.causal)}
    return {
        "encoder": AttentionStack("encoder", run.attentions, run.tokens, run.tokens, False),
        "decoder": AttentionStack("decoder", run.decoder_attentions, run.decoder_tokens, run.decoder_tokens, True),
        "cross": AttentionStack("cross", run.cross_attentions, run.decoder_tokens, run.tokens, False),
    }


def layers_to_array(attentions: tuple[torch.Tensor, ...]) -> np.ndarray:
    """tuple of layers x [batch=1, heads, q, k] -> float32 [layers, heads, q, k]."""
    return torch.stack([a[0].float() for a in attentions]).numpy()


def encode(loaded: LoadedModel, text: str, text_pair: str | None = None, max_chars: int | None = None):
    """Tokenize for the model, truncated to loaded.max_tokens. Returns (encoding, untruncated count)."""
    if not text or not text.strip():
        raise RunError("The text is empty: type something to look at.")
    length = len(text) + len(text_pair or "")
    if max_chars is not None and length > max_chars:
        raise RunError(f"The text has {length:,} characters; this server runs at most {max_chars:,}. "
                       "Shorten it: it stays in the box.")
    pair = text_pair if text_pair and text_pair.strip() and loaded.kind != "encoder-decoder" else None
    tokenize = functools.partial(loaded.tokenizer, text, pair, return_tensors="pt", return_special_tokens_mask=True)
    encoding = tokenize()
    full_length = encoding["input_ids"].shape[1]
    if full_length > loaded.max_tokens:  # tokenized again only when it must be cut
        encoding = tokenize(truncation=True, max_length=loaded.max_tokens)
    if encoding["input_ids"].shape[1] == 0:
        raise RunError("The text gives no tokens for this model.")
    return encoding, full_length


def _segments(encoding) -> np.ndarray:
    ids = encoding.sequence_ids(0) if encoding.is_fast else None
    if ids is None:
        special = encoding["special_tokens_mask"][0].numpy().astype(bool)
        return np.where(special, -1, 0).astype(np.int8)
    return np.array([-1 if s is None else s for s in ids], dtype=np.int8)


def decoder_labels(loaded: LoadedModel, target: str) -> torch.Tensor:
    """[1, m] the tokens an encoder-decoder's decoder should produce for `target`."""
    return loaded.tokenizer(text_target=target, truncation=True, max_length=loaded.max_tokens,
                            return_tensors="pt")["input_ids"]


def model_inputs(loaded: LoadedModel, encoding, text: str, text_pair: str | None = None) -> dict[str, torch.Tensor]:
    """The forward pass's inputs for an encoding of `text`: an encoder-decoder's decoder reads `text_pair`
    (teacher-forced: its labels shifted right), or `text` itself without one."""
    inputs = {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"]}
    if "token_type_ids" in encoding and loaded.kind == "encoder":
        inputs["token_type_ids"] = encoding["token_type_ids"]
    if loaded.kind == "encoder-decoder":
        target = text_pair if text_pair and text_pair.strip() else text
        inputs["decoder_input_ids"] = loaded.model.prepare_decoder_input_ids_from_labels(
            labels=decoder_labels(loaded, target))
    return inputs


def named_attentions(loaded: LoadedModel, outputs) -> dict[str, tuple[torch.Tensor, ...]]:
    """The model's output attentions by stack name, as in attention_stacks (layers of [batch, heads, q, k])."""
    seq2seq = loaded.kind == "encoder-decoder"
    if not getattr(outputs, "encoder_attentions" if seq2seq else "attentions", None):
        raise RunError(f"'{loaded.spec}' gives no attention weights: a {loaded.config.model_type} model has "
                       "no attention layers, or doesn't report them.")
    return ({"encoder": outputs.encoder_attentions, "decoder": outputs.decoder_attentions,
             "cross": outputs.cross_attentions} if seq2seq else {"self-attention": outputs.attentions})


def run_attention(loaded: LoadedModel, text: str, text_pair: str | None = None, with_scores: bool = False,
                  max_chars: int | None = None) -> AttentionRun:
    """Attention of every layer and head for `text` (and sentence B `text_pair`).

    For encoder-decoder models `text_pair` is the decoder's text (teacher-forced); without it
    the decoder reads `text` itself. with_scores=True also keeps the pre-softmax scores
    (models.core.scores; raises ScoresUnavailable where a model can't give them).
    `max_chars` refuses longer texts with a RunError (a server's cap).
    """
    encoding, full_length = encode(loaded, text, text_pair, max_chars)
    inputs = model_inputs(loaded, encoding, text, text_pair)
    tokenizer = loaded.tokenizer
    decoder_tokens = None
    if loaded.kind == "encoder-decoder":
        decoder_tokens = tokenizer.convert_ids_to_tokens(inputs["decoder_input_ids"][0].tolist())
    with torch.inference_mode(), contextlib.ExitStack() as hooks:
        calls = hooks.enter_context(recording()) if with_scores else None
        outputs = loaded.model(**inputs, output_attentions=True, use_cache=False)
    seq2seq = loaded.kind == "encoder-decoder"
    named = named_attentions(loaded, outputs)
    return AttentionRun(
        model_spec=loaded.spec,
        tokens=tokenizer.convert_ids_to_tokens(encoding["input_ids"][0].tolist()),
        attentions=layers_to_array(named["encoder"] if seq2seq else named["self-attention"]),
        causal=loaded.kind == "decoder",
        segment_ids=_segments(encoding),
        special_mask=encoding["special_tokens_mask"][0].numpy().astype(bool),
        n_input_tokens=full_length,
        decoder_tokens=decoder_tokens,
        decoder_attentions=layers_to_array(named["decoder"]) if seq2seq else None,
        cross_attentions=layers_to_array(named["cross"]) if seq2seq else None,
        score_stacks=capture_scores(calls, named) if with_scores else None,
    )

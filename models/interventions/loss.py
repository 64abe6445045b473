"""The language-model loss of a text, token by token: what switching heads off costs the model.

- causal LM: next-token loss, -log p(token i | tokens < i), for every token but the first;
- masked LM: each token is masked once, one token in MASK_EVERY per pass (about BERT's 15%
  pretraining rate) in MASK_EVERY deterministic passes, and scored at its masked position;
  special tokens ([CLS], [SEP]) are not scored;
- encoder-decoder: the decoder's teacher-forced loss on the text itself (its tokens as labels).
An encoder without a language-model head (minilm) has no loss: LossError.
Causal and masked LMs also take token ids instead of a text (a random-token induction probe).
"""
import contextlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from models.core import long_run
from models.core.loading import LoadedModel
from models.core.run import RunError, decoder_target_ids, encode, encode_ids, keeps_full_weights, model_inputs

MASK_EVERY = 7  # 1/7 = 14% of the tokens masked per pass
Text = str | Sequence[int]  # a text, or token ids for a causal or masked LM (e.g. an induction probe)


class LossError(RunError):
    """The model has no loss on this text; str(error) is a message for the user."""


@dataclass(frozen=True, eq=False)
class LossTerms:
    """The model's predictions at the scored positions of a text, differentiable."""

    tokens: list[str]  # n: the text's tokens (the decoder's labels for encoder-decoders)
    positions: torch.Tensor  # [m] int64: index in tokens of each scored token
    logits: torch.Tensor  # [m, vocab] the prediction of each scored token
    targets: torch.Tensor  # [m] int64: the token it should predict

    def losses(self) -> torch.Tensor:
        """[m] cross-entropy of each scored token, in nats (at least float32 precision)."""
        logits = self.logits.to(torch.promote_types(self.logits.dtype, torch.float32))
        return F.cross_entropy(logits, self.targets, reduction="none")


@dataclass(frozen=True, eq=False)
class TokenLosses:
    tokens: list[str]  # n tokens as the tokenizer writes them
    losses: np.ndarray  # [n] float32 nats, -log p(token); nan where a token is not scored
    top1: np.ndarray  # [n] int64: the model's most probable token there; -1 where not scored

    @property
    def mean(self) -> float:
        """Mean loss over the scored tokens, in nats."""
        return float(np.nanmean(self.losses))


def _causal(loaded: LoadedModel, inputs: dict[str, torch.Tensor]) -> LossTerms:
    ids = inputs["input_ids"][0]  # [n]
    if len(ids) < 2:
        raise LossError("The text is a single token: a next-token loss needs at least two.")
    with contextlib.ExitStack() as lean:
        # a long text without gradients (token_losses): attend in row tiles, holding no n x n weights
        if not torch.is_grad_enabled() and not keeps_full_weights(loaded, len(ids)):
            with contextlib.suppress(long_run.NotRecomputable):  # a model the tiles can't reproduce: eagerly
                lean.enter_context(long_run.lean_attention(loaded, inputs))
        logits = loaded.model(**inputs, use_cache=False).logits[0, :-1]  # [n - 1, vocab]: token i+1 from <= i
    return LossTerms(loaded.tokenizer.convert_ids_to_tokens(ids.tolist()), torch.arange(1, len(ids)), logits, ids[1:])


def _masked(loaded: LoadedModel, inputs: dict[str, torch.Tensor]) -> LossTerms:
    ids = inputs["input_ids"][0]  # [n]
    special = torch.tensor(loaded.tokenizer.get_special_tokens_mask(ids.tolist(), already_has_special_tokens=True),
                           dtype=torch.bool)
    positions, logits = [], []
    for offset in range(MASK_EVERY):  # one pass at a time: a batch would hold MASK_EVERY x n x vocab logits
        masked = ((torch.arange(len(ids)) % MASK_EVERY == offset) & ~special).nonzero().flatten()  # [k]
        if len(masked):
            pass_ids = ids.clone()
            pass_ids[masked] = loaded.tokenizer.mask_token_id
            logits.append(loaded.model(**{**inputs, "input_ids": pass_ids[None]}).logits[0, masked])
            positions.append(masked)
    if not positions:
        raise LossError("The text has no tokens besides the special ones: there is nothing to mask.")
    positions = torch.cat(positions)
    order = positions.argsort()
    return LossTerms(loaded.tokenizer.convert_ids_to_tokens(ids.tolist()), positions[order],
                     torch.cat(logits)[order], ids[positions[order]])


def _seq2seq(loaded: LoadedModel, inputs: dict[str, torch.Tensor], text: str) -> LossTerms:
    labels = decoder_target_ids(loaded, text)  # [1, m]; the decoder reads them shifted right (model_inputs)
    logits = loaded.model(**inputs, use_cache=False).logits[0]  # [m, vocab]
    return LossTerms(loaded.tokenizer.convert_ids_to_tokens(labels[0].tolist()), torch.arange(labels.shape[1]),
                     logits, labels[0])


def _inputs(loaded: LoadedModel, text: Text, max_chars: int | None) -> dict[str, torch.Tensor]:
    if isinstance(text, str):
        encoding, _ = encode(loaded, text, max_chars=max_chars)
        return model_inputs(loaded, encoding, text)
    if loaded.kind == "encoder-decoder":
        raise LossError("An encoder-decoder's loss is taken on a text, not on token ids.")
    return model_inputs(loaded, encode_ids(loaded, text)[0])


def loss_terms(loaded: LoadedModel, text: Text, max_chars: int | None = None) -> LossTerms:
    """The model's predictions of the scored tokens of `text`, with gradients if enabled.

    Raises LossError for a model without a language-model head or a text with nothing to score.
    """
    if loaded.kind == "encoder" and not (loaded.has_mlm_head and loaded.tokenizer.mask_token_id is not None):
        raise LossError(f"'{loaded.spec}' has no language-model head ({type(loaded.model).__name__}), so it has "
                        "no loss on the text: compare its sentence embeddings instead.")
    inputs = _inputs(loaded, text, max_chars)
    if loaded.kind == "decoder":
        return _causal(loaded, inputs)
    if loaded.kind == "encoder-decoder":
        return _seq2seq(loaded, inputs, text)
    return _masked(loaded, inputs)


def token_losses(loaded: LoadedModel, text: Text, max_chars: int | None = None) -> TokenLosses:
    """Per-token loss and top-1 prediction of `text` (see the module docstring for each kind of model)."""
    with torch.inference_mode():
        terms = loss_terms(loaded, text, max_chars)
        losses = terms.losses()  # [m]
    n = len(terms.tokens)
    per_token, top1 = np.full(n, np.nan, dtype=np.float32), np.full(n, -1, dtype=np.int64)
    per_token[terms.positions.numpy()] = losses.float().numpy()
    top1[terms.positions.numpy()] = terms.logits.argmax(dim=-1).numpy()
    return TokenLosses(terms.tokens, per_token, top1)

"""What a model predicts: the top-k candidates of a distribution over the vocabulary, masked-LM
fill-mask with the probabilities of transformers' pipeline("fill-mask"), and a causal LM's next
token (per-token losses: models.interventions.loss).

    from models import load_model
    from models.core.predictions import fill_mask, next_token_predictions
    fill_mask(load_model("data/demo_series/v1-seed0/checkpoint-800"), "The capital of [MASK] is Rome.").masks[0].top
    next_token_predictions(load_model("smollm2"), "The capital of France is").top  # " Paris" first

Special tokens ([MASK], [PAD], <|endoftext|>) are left out of the top-k unless asked for
(include_special=True, then marked); the probabilities and ranks stay the model's own.
"""
import contextlib
import inspect
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from models.core import long_run
from models.core.lm_head import final_logits
from models.core.loading import LoadedModel
from models.core.run import (
    AttentionRun,
    RunError,
    check_memory,
    encode,
    encode_ids,
    full_weights_bytes,
    keeps_full_weights,
    model_inputs,
)
from models.core.token_text import special_token_ids


class FillMaskError(RunError):
    """The text or the model can't fill masks; str(error) is a message for the user."""


class NoMaskError(FillMaskError):
    """The text has none of the model's mask tokens: true for every checkpoint of a series."""


@dataclass(frozen=True)
class Candidate:
    """One predicted token (the pipeline's token, token_str and score)."""

    token_id: int
    token: str  # as the fill-mask pipeline's token_str: tokenizer.decode([token_id])
    probability: float
    special: bool = False  # one of the tokenizer's special tokens (token_text.special_token_ids)


def top_candidates(tokenizer, probabilities: torch.Tensor, k: int, include_special: bool = False) -> list[Candidate]:
    """The k most probable tokens of probabilities [vocab] (a softmax over the vocabulary), most
    probable first; ranked (torch.topk) and written (tokenizer.decode) as pipeline("fill-mask") does.

    Special tokens are skipped unless `include_special` (the pipeline's own list); their
    probability stays in the distribution, so the others' probabilities are the model's own."""
    special = torch.zeros(probabilities.shape[-1], dtype=torch.bool)  # [vocab]
    special[[i for i in special_token_ids(tokenizer) if i < special.shape[0]]] = True
    ranked = probabilities if include_special else probabilities.masked_fill(special, -1.0)
    count = special.shape[0] if include_special else int((~special).sum())
    ids = ranked.topk(min(k, count)).indices.tolist()
    return [Candidate(i, tokenizer.decode([i]), probabilities[i].item(), bool(special[i])) for i in ids]


def rank(probabilities: np.ndarray, token_id: int) -> int:
    """The rank of token_id in probabilities [vocab]: 1 for the most probable; ties share the better rank."""
    return 1 + int((probabilities > probabilities[token_id]).sum())


@dataclass(frozen=True, eq=False)
class MaskPrediction:
    position: int  # index of the mask in FillMask.tokens
    top: list[Candidate]  # the top_k, most probable first
    probabilities: np.ndarray  # [vocab] float32: the whole distribution, for ranks of any token

    def rank(self, token_id: int) -> int:
        return rank(self.probabilities, token_id)


@dataclass(frozen=True, eq=False)
class FillMask:
    tokens: list[str]  # the model's tokens of the text
    masks: list[MaskPrediction]  # one per mask token, left to right


def _check_can_fill(loaded: LoadedModel) -> str:
    mask = loaded.tokenizer.mask_token
    if not loaded.has_mlm_head:
        architectures = ", ".join(loaded.config.architectures or []) or type(loaded.model).__name__
        raise FillMaskError(f"'{loaded.spec}' has no masked-LM head ({architectures}), so it can't fill in "
                            "masks: pick a *ForMaskedLM model such as bert-base-uncased or the demo series.")
    if mask is None:
        raise FillMaskError(f"'{loaded.spec}' has no mask token, so it can't fill in masks.")
    return mask


def _no_mask_message(mask: str, text: str, cut_at: int | None) -> str:
    if cut_at is not None:
        return f"The text's {mask} comes after the first {cut_at} tokens, which is all the model reads."
    others = [m for m in ("[MASK]", "<mask>", "[mask]", "<MASK>") if m in text and m != mask]
    hint = f" You wrote {others[0]}, but this model's mask token is {mask}." if others else ""
    return f"The text has no {mask}: write {mask} where the model should fill in a word.{hint}"


def fill_mask(loaded: LoadedModel, text: str, top_k: int = 5, max_chars: int | None = None,
              include_special: bool = False, text_pair: str | None = None) -> FillMask:
    """The top_k tokens for every mask in `text` (and sentence B `text_pair`, tokenized together as
    run_attention does), with the probabilities of pipeline("fill-mask"); special tokens only with
    `include_special` (then the pipeline's very list)."""
    mask = _check_can_fill(loaded)
    encoding, full_length = encode(loaded, text, text_pair, max_chars=max_chars)
    input_ids = encoding["input_ids"]  # [1, n]
    positions = (input_ids[0] == loaded.tokenizer.mask_token_id).nonzero().flatten().tolist()
    if not positions:
        cut = input_ids.shape[1] if full_length > input_ids.shape[1] and mask in text else None
        raise NoMaskError(_no_mask_message(mask, text, cut))
    with torch.inference_mode():
        logits = loaded.model(**model_inputs(loaded, encoding)).logits[0, positions]  # [masks, vocab]
    probabilities = logits.float().cpu().softmax(dim=-1)
    return FillMask(
        tokens=loaded.tokenizer.convert_ids_to_tokens(input_ids[0].tolist()),
        masks=[MaskPrediction(position, top_candidates(loaded.tokenizer, row, top_k, include_special), row.numpy())
               for position, row in zip(positions, probabilities)],
    )


@dataclass(frozen=True, eq=False)
class NextTokens:
    tokens: list[str]  # the model's tokens of the text
    position: int  # the distribution after tokens[position], i.e. the prediction of token position + 1
    top: list[Candidate]  # the top_k, most probable first
    probabilities: np.ndarray  # [vocab] float32: the whole distribution, for any token's probability
    following: int | None = None  # id of the token that comes next in the text; None after its last token

    def rank(self, token_id: int) -> int:
        return rank(self.probabilities, token_id)


def _check_causal(loaded: LoadedModel) -> None:
    if loaded.kind != "decoder":
        raise RunError(f"'{loaded.spec}' is not a causal language model ({loaded.kind}), so it doesn't predict "
                       "the next token: pick a decoder such as smollm2 or gpt2.")


def _last_logits(loaded: LoadedModel, input_ids: torch.Tensor) -> torch.Tensor:
    """[vocab] float32 logits after the last of input_ids [1, n], of a causal LM. A text a run would
    keep no weights for attends in row tiles (long_run.lean_attention); a model those can't
    reproduce runs eagerly if that fits in the memory available now, else a RunError."""
    ids = input_ids.to(loaded.device)
    n = ids.shape[1]
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(loaded.model.forward).parameters else {}
    with torch.inference_mode(), contextlib.ExitStack() as lean:
        if not keeps_full_weights(loaded, n):
            try:
                lean.enter_context(long_run.lean_attention(loaded, {"input_ids": ids}))
            except long_run.NotRecomputable:
                check_memory(loaded, n, 3 * full_weights_bytes(loaded, n) // loaded.num_layers)  # one layer at once
        return loaded.model(input_ids=ids, use_cache=False, **last_only).logits[0, -1].float().cpu()


def next_token_predictions(loaded: LoadedModel, text: str | Sequence[int], top_k: int = 5, position: int | None = None,
                           max_chars: int | None = None, include_special: bool = False,
                           text_pair: str | None = None) -> NextTokens:
    """The top_k next tokens of a causal LM after `text` (with `text_pair` tokenized after it, as
    run_attention does; or token ids, run as they are: the induction probe) or, with `position`,
    after the token at that index (the logits at position i predict token i + 1). Probabilities are
    the softmax of the model's own logits; special tokens are left out of the top_k unless
    `include_special`. Raises RunError for a model that isn't a causal LM or a position outside the
    text's tokens."""
    _check_causal(loaded)
    encoding, _ = (encode(loaded, text, text_pair, max_chars=max_chars) if isinstance(text, str)
                   else encode_ids(loaded, text))
    input_ids = encoding["input_ids"]  # [1, n]
    position = _checked_position(position, input_ids.shape[1])
    logits = _last_logits(loaded, input_ids[:, :position + 1])  # [vocab]
    return _next_tokens(loaded, input_ids[0].tolist(), position, logits, top_k, include_special)


def run_next_tokens(loaded: LoadedModel, run: AttentionRun, position: int | None = None, top_k: int = 5,
                    include_special: bool = False) -> NextTokens:
    """next_token_predictions of the run's own tokens, from the hidden states the run kept
    (AttentionRun.final_hidden) through the LM head (models.core.lm_head): no forward pass. Raises
    RunError for a model that isn't a causal LM, a run that kept no hidden states (a model whose
    head lm_head can't reproduce: use next_token_predictions), or a position outside its tokens."""
    _check_causal(loaded)
    if run.final_hidden is None:
        raise RunError(f"This run of '{loaded.spec}' kept no final hidden states to predict from.")
    position = _checked_position(position, run.n)
    logits = final_logits(loaded, torch.tensor(run.final_hidden[position]))  # [vocab]; a copy: the run is read-only
    return _next_tokens(loaded, loaded.tokenizer.convert_tokens_to_ids(run.tokens), position, logits, top_k,
                        include_special)


def _checked_position(position: int | None, n: int) -> int:
    """position, the last token's for None; a RunError outside the n tokens."""
    position = n - 1 if position is None else position
    if not 0 <= position < n:
        raise RunError(f"Position {position} is outside the text's {n} tokens (0..{n - 1}).")
    return position


def _next_tokens(loaded: LoadedModel, ids: list[int], position: int, logits: torch.Tensor, top_k: int,
                 include_special: bool) -> NextTokens:
    """NextTokens of the logits [vocab] after ids[position]."""
    probabilities = logits.softmax(dim=-1)  # [vocab]
    return NextTokens(tokens=loaded.tokenizer.convert_ids_to_tokens(ids), position=position,
                      top=top_candidates(loaded.tokenizer, probabilities, top_k, include_special),
                      probabilities=probabilities.numpy(),
                      following=ids[position + 1] if position + 1 < len(ids) else None)

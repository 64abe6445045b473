"""What a model predicts: masked-LM fill-mask, with the scores of transformers' pipeline("fill-mask").

    from models import load_model
    from models.core.predictions import fill_mask
    fill_mask(load_model("data/demo_series/v1-seed0/checkpoint-800"), "The capital of [MASK] is Rome.").masks[0].top
"""
from dataclasses import dataclass

import numpy as np
import torch

from models.core.loading import LoadedModel
from models.core.run import RunError, encode


class FillMaskError(RunError):
    """The text or the model can't fill masks; str(error) is a message for the user."""


class NoMaskError(FillMaskError):
    """The text has none of the model's mask tokens: true for every checkpoint of a series."""


@dataclass(frozen=True)
class Candidate:
    token_id: int
    token: str  # as the fill-mask pipeline's token_str: tokenizer.decode([token_id])
    score: float  # probability


@dataclass(frozen=True, eq=False)
class MaskPrediction:
    position: int  # index of the mask in FillMask.tokens
    top: list[Candidate]  # the top_k, most probable first
    probabilities: np.ndarray  # [vocab] float32: the whole distribution, for ranks of any token

    def rank(self, token_id: int) -> int:
        """1 for the most probable token; ties share the better rank."""
        return 1 + int((self.probabilities > self.probabilities[token_id]).sum())


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


def fill_mask(loaded: LoadedModel, text: str, top_k: int = 5, max_chars: int | None = None) -> FillMask:
    """The top_k tokens for every mask in `text`, with the scores of pipeline("fill-mask")."""
    mask = _check_can_fill(loaded)
    encoding, full_length = encode(loaded, text, max_chars=max_chars)
    input_ids = encoding["input_ids"]  # [1, n]
    positions = (input_ids[0] == loaded.tokenizer.mask_token_id).nonzero().flatten().tolist()
    if not positions:
        cut = input_ids.shape[1] if full_length > input_ids.shape[1] and mask in text else None
        raise NoMaskError(_no_mask_message(mask, text, cut))
    names = ("input_ids", "attention_mask", "token_type_ids")
    inputs = {k: v.to(loaded.device) for k, v in encoding.items() if k in names}
    with torch.inference_mode():
        logits = loaded.model(**inputs).logits[0, positions]  # [masks, vocab]
    probabilities = logits.float().cpu().softmax(dim=-1)
    values, ids = probabilities.topk(min(top_k, probabilities.shape[-1]))
    decode = loaded.tokenizer.decode
    return FillMask(
        tokens=loaded.tokenizer.convert_ids_to_tokens(input_ids[0].tolist()),
        masks=[MaskPrediction(position, [Candidate(i, decode([i]), s) for i, s in zip(row_ids, row_values)],
                              row_probabilities.numpy())
               for position, row_ids, row_values, row_probabilities
               in zip(positions, ids.tolist(), values.tolist(), probabilities)],
    )

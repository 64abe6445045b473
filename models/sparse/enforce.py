"""A sparse pattern on the live model: how much of its attention falls inside the pattern
(coverage), and the model re-run with the pattern enforced before softmax.

The pattern is over the run's token positions, special tokens included ([CLS] is position 0).
It is added to the scores of self-attention calls of size n only (through
`models.core.attention_fn.extra_mask`); for encoder-decoder models only the encoder runs.
"""
from dataclasses import dataclass

import numpy as np
import torch

from models.core.attention_fn import extra_mask
from models.core.loading import LoadedModel
from models.core.predictions import Candidate, top_candidates
from models.core.run import check_token_by_token, encode, layers_to_array, model_inputs
from models.core.tiles import StackWeights, row_tiles
from models.sparse.patterns import HeadPatterns


def coverage(attentions: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[layers, heads]: share of each head's attention mass inside its pattern.

    attentions [layers, heads, n, n]; masks bool [heads or 1, n, n].
    """
    inside = (attentions * masks[None]).sum(axis=(-1, -2))
    return inside / attentions.sum(axis=(-1, -2))


def tiled_coverage(weights: StackWeights, patterns: HeadPatterns) -> np.ndarray:
    """coverage() of a stack kept whole or recomputed (a long run), in row tiles: [layers, heads].
    The pattern's rows are built tile by tile, never an [n, n] mask."""
    layers, heads, n, k = weights.shape
    inside, total = np.zeros((layers, heads)), np.zeros((layers, heads))
    for layer in range(layers):
        for rows in row_tiles(weights, heads):
            block = weights.block(layer, slice(0, heads), rows, slice(0, k)).double().numpy()  # [heads, r, k]
            masks = [pattern.rows(n, rows.start, rows.stop) for pattern in patterns.patterns]  # [r, n] each
            for head in range(heads):
                inside[layer, head] += (block[head] * masks[head % len(masks)]).sum()
            total[layer] += block.sum(axis=(1, 2))
    return inside / total


def enforceable(masks: np.ndarray, causal: bool) -> tuple[np.ndarray, int]:
    """masks [heads, n, n] as the model will apply them, and how many rows had to be given a key.

    A causal model also hides the future; a row left with no key at all would get softmax of
    equal scores (attention spread evenly over the very keys the pattern hides), so such
    rows attend to themselves instead.
    """
    effective = masks & np.tril(np.ones(masks.shape[-2:], bool)) if causal else masks.copy()
    empty = ~effective.any(axis=-1)  # [heads, n]
    heads, rows = np.nonzero(empty)
    effective[heads, rows, rows] = True
    return effective, int(empty.sum())


def additive_mask(masks: np.ndarray) -> torch.Tensor:
    """bool [heads, n, n] -> float32 [1, heads, n, n]: 0 inside the pattern, the float minimum outside."""
    blocked = torch.from_numpy(~masks)[None]
    return torch.zeros(blocked.shape).masked_fill_(blocked, torch.finfo(torch.float32).min)


def self_attention_mask(additive: torch.Tensor):
    """An extra_mask hook: the pattern for self-attention calls of its size, nothing for the others."""
    n = additive.shape[-1]

    def hook(module: torch.nn.Module, q_len: int, k_len: int) -> torch.Tensor | None:
        if q_len != n or k_len != n or getattr(module, "is_cross_attention", False):
            return None
        return additive

    return hook


@dataclass(frozen=True)
class DenseSparsePredictions:
    """The top-k at one position of the dense run and of the run with the pattern enforced: a
    masked LM's at a mask token, a causal LM's next token after the last token."""

    position: int  # of the mask token, or of the last token, in the run
    dense: list[Candidate]  # top k, most likely first
    sparse: list[Candidate]


@dataclass(frozen=True, eq=False)
class EnforcedRun:
    tokens: list[str]  # n
    cosine: np.ndarray  # [layers + 1]: mean over tokens of cos(dense, sparse hidden state); 0 = embeddings
    attentions: np.ndarray  # [layers, heads, n, n] float32 of the sparse run
    dense_attentions: np.ndarray  # [layers, heads, n, n] float32 of the dense run
    predictions: tuple[DenseSparsePredictions, ...]  # one per mask token, or the next token; empty without a head
    rows_given_self: int  # (head, row) pairs with no key in the pattern, given their own position


def _forward(loaded: LoadedModel, inputs: dict):
    # for encoder-decoder models the pattern concerns the encoder's self-attention only
    model = loaded.model.get_encoder() if loaded.kind == "encoder-decoder" else loaded.model
    with torch.inference_mode():
        outputs = model(**inputs, output_hidden_states=True, output_attentions=True)
    n = inputs["input_ids"].shape[1]
    check_token_by_token(loaded, "self-attention", outputs.attentions, n, n)
    return outputs


def _per_layer_cosine(dense: tuple[torch.Tensor, ...], sparse: tuple[torch.Tensor, ...]) -> np.ndarray:
    # each: layers + 1 of [batch=1, n, hidden]
    return np.array([torch.cosine_similarity(a[0], b[0], dim=-1).mean().item() for a, b in zip(dense, sparse)])


def _prediction_positions(loaded: LoadedModel, input_ids: torch.Tensor) -> list[int]:
    """Where the model predicts a token: a masked LM at its mask tokens, a causal LM after the last token."""
    if loaded.has_lm_head:
        return [input_ids.shape[1] - 1]
    mask_id = loaded.tokenizer.mask_token_id
    if not loaded.has_mlm_head or mask_id is None:
        return []
    return (input_ids[0] == mask_id).nonzero().flatten().tolist()


def _predictions(loaded: LoadedModel, input_ids: torch.Tensor, dense, sparse, k: int, include_special: bool):
    def top(outputs, position: int) -> list[Candidate]:
        probabilities = outputs.logits[0, position].float().softmax(dim=-1)  # [vocab]
        return top_candidates(loaded.tokenizer, probabilities, k, include_special)

    return tuple(DenseSparsePredictions(p, top(dense, p), top(sparse, p))
                 for p in _prediction_positions(loaded, input_ids))


def enforced_run(loaded: LoadedModel, text: str, text_pair: str | None, masks: np.ndarray,
                 top_k: int = 5, include_special: bool = False) -> EnforcedRun:
    """Run the model dense and with masks [heads or 1, n, n] (bool) added before every softmax;
    the predictions' top_k leave special tokens out unless `include_special` (models.core.predictions)."""
    inputs = model_inputs(loaded, encode(loaded, text, text_pair)[0])
    n = inputs["input_ids"].shape[1]
    if masks.shape[-1] != n:
        raise ValueError(f"The pattern is for {masks.shape[-1]} positions but the text has {n} tokens.")
    effective, fixed = enforceable(np.broadcast_to(masks, (loaded.num_heads, n, n)), loaded.kind == "decoder")
    dense = _forward(loaded, inputs)
    with extra_mask(self_attention_mask(additive_mask(effective).to(loaded.device))):
        sparse = _forward(loaded, inputs)
    return EnforcedRun(
        tokens=loaded.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist()),
        cosine=_per_layer_cosine(dense.hidden_states, sparse.hidden_states),
        attentions=layers_to_array(sparse.attentions),
        dense_attentions=layers_to_array(dense.attentions),
        predictions=_predictions(loaded, inputs["input_ids"], dense, sparse, top_k, include_special),
        rows_given_self=fixed,
    )

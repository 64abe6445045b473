"""The pre-softmax scores of a live model: q, k, raw q.k and what softmax really sees.

The attention function (models.core.attention_fn.recording) hands us query and key of every
call. Each call is matched to the attention matrix the model returns by tensor identity,
so layer, stack (encoder, decoder, cross) and order come from the model itself, and a
model whose attention bypasses our function is detected instead of mislabelled.
"""
from dataclasses import dataclass, replace

import numpy as np
import torch

from models.analysis.numerics import softmax
from models.core.attention_fn import AttentionCall

IDENTITY_TOLERANCE = 1e-4  # float32 softmax of the same logits agrees to ~1e-7


class ScoresUnavailable(ValueError):
    """The scores of this model can't be captured; str(error) is a message for the user."""


@dataclass(frozen=True, eq=False)
class ScoreStack:
    """Pre-softmax scores of one attention stack (as in models.core.run.attention_stacks)."""

    name: str  # "self-attention", "encoder", "decoder" or "cross"
    query: np.ndarray  # [layers, heads, q, d_head]
    key: np.ndarray  # [layers, heads, k, d_head], key heads repeated for grouped-query attention
    scores: np.ndarray  # [layers, heads, q, k] raw q.k, before the scale
    scaling: np.ndarray  # [layers] factor the model multiplies q.k by
    bias: np.ndarray | None  # [layers, heads, q, k] additive position bias (T5), else None
    mask: np.ndarray | None  # [layers, 1|heads, q, k] additive mask (0 or very negative), else None
    identity_error: float  # max |softmax(scaled + bias + mask) - the model's attentions|

    @property
    def d_head(self) -> int:
        return self.query.shape[-1]

    @property
    def standard_scaling(self) -> float:
        return self.d_head ** -0.5

    def scales_by_sqrt_d(self, layer: int) -> bool:
        """Does this layer multiply q.k by 1/sqrt(d_head), as in Vaswani et al.?"""
        return bool(np.isclose(self.scaling[layer], self.standard_scaling, rtol=1e-5))

    def scaled(self, layer: int, head: int) -> np.ndarray:
        """[q, k] the scores after the model's scale, before bias and mask."""
        return self.scores[layer, head] * self.scaling[layer]

    def head_bias(self, layer: int, head: int) -> np.ndarray | None:
        return None if self.bias is None else self.bias[layer, head]

    def head_mask(self, layer: int, head: int) -> np.ndarray:
        """[q, k] additive mask of one head (zeros when the model used none)."""
        if self.mask is None:
            return np.zeros(self.scores.shape[-2:], dtype=np.float32)
        return self.mask[layer, min(head, self.mask.shape[1] - 1)]

    def visible(self, layer: int, head: int) -> np.ndarray:
        """[q, k] bool: pairs the mask lets through (a causal query's past, no padding)."""
        return self.head_mask(layer, head) > np.finfo(np.float32).min / 2

    def logits(self, layer: int, head: int) -> np.ndarray:
        """[q, k] what the softmax sees: scaled scores + position bias + mask."""
        bias = self.head_bias(layer, head)
        return self.scaled(layer, head) + (0 if bias is None else bias) + self.head_mask(layer, head)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().numpy()


def _mask_per_layer(calls: list[AttentionCall], shape: tuple[int, ...]) -> np.ndarray | None:
    # [layers, 1|heads, q, k]; layers without a mask get zeros
    masks = [call.mask for call in calls]
    if all(mask is None for mask in masks):
        return None
    heads = max(1 if mask is None else mask.shape[1] for mask in masks)
    return np.stack([np.zeros((heads, *shape), np.float32) if mask is None
                     else np.broadcast_to(_numpy(mask[0]), (heads, *shape)) for mask in masks])


def _bias_per_layer(calls: list[AttentionCall], shape: tuple[int, ...]) -> np.ndarray | None:
    # [layers, heads, q, k]; T5's cross-attention passes an all-zero bias, which is no bias
    if all(call.bias is None or not call.bias.any() for call in calls):
        return None
    return np.stack([np.zeros(shape, np.float32) if call.bias is None
                     else np.broadcast_to(_numpy(call.bias[0]), shape) for call in calls])


def _identity_error(stack: ScoreStack, weights: list[torch.Tensor]) -> float:
    """Largest gap between softmax of the stored logits and the weights the model returned."""
    layers, heads = stack.scores.shape[:2]
    return max(float(np.abs(softmax(stack.logits(layer, head)) - _numpy(weights[layer][0, head])).max())
               for layer in range(layers) for head in range(heads))


def score_stack(name: str, calls: list[AttentionCall]) -> ScoreStack:
    """Stack the calls of one stack's layers (in layer order) into arrays."""
    scores = torch.stack([torch.matmul(c.query[0], c.key[0].transpose(-1, -2)) for c in calls])
    shape = tuple(scores.shape[1:])  # [heads, q, k]
    stack = ScoreStack(
        name=name,
        query=np.stack([_numpy(c.query[0]) for c in calls]),
        key=np.stack([_numpy(c.key[0]) for c in calls]),
        scores=_numpy(scores),
        scaling=np.array([c.scaling for c in calls], dtype=np.float64),
        bias=_bias_per_layer(calls, shape),
        mask=_mask_per_layer(calls, shape[1:]),
        identity_error=np.nan,
    )
    return replace(stack, identity_error=_identity_error(stack, [c.weights for c in calls]))


def tensor_id(tensor: torch.Tensor) -> tuple:
    return tensor.data_ptr(), tuple(tensor.shape)


def matched_calls(calls: list[AttentionCall],
                  attentions: dict[str, tuple[torch.Tensor, ...]]) -> dict[str, list[AttentionCall | None]]:
    """Each stack's recorded call per layer, found by the identity of the weights the model returned;
    None for a layer whose attention did not go through the explorer's attention function."""
    by_tensor = {tensor_id(call.weights): call for call in calls}
    return {name: [by_tensor.get(tensor_id(weights)) for weights in layers] for name, layers in attentions.items()}


def capture_scores(calls: list[AttentionCall], attentions: dict[str, tuple[torch.Tensor, ...]]) -> dict[str, ScoreStack]:
    """Match recorded calls to the model's returned attentions and stack them by name.

    `attentions` maps a stack name to the model's output tuple (one [1, heads, q, k] per layer),
    e.g. {"self-attention": outputs.attentions}.
    """
    stacks = {}
    for name, matched in matched_calls(calls, attentions).items():
        if not matched or any(call is None for call in matched):
            raise ScoresUnavailable(
                f"This model's attention ({name}) does not go through the explorer's attention function, "
                "so its queries and keys can't be captured. The attention weights on other pages are unaffected."
            )
        stacks[name] = score_stack(name, matched)
    return stacks

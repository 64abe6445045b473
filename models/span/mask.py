"""Adaptive attention span (Sukhbaatar et al. 2019): a soft mask over query-key distance.

    m_z(x) = min(max((R + z - x) / R, 0), 1)

is 1 up to distance z, falls linearly over a ramp of R tokens and is 0 from z + R on. Because
the ramp is linear, the loss has a gradient with respect to z, so each head can learn z.
Distances and spans here are in tokens; the trainable module stores z as a fraction of the
maximum span S (as the reference code does) and clamps it to [0, 1] after each step.
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.core.tiles import StackWeights, row_tiles

TILE_SHARE = 8  # tiled_span_effect's tiles hold 1/8 of tiles.TILE_ELEMENTS weights
RENORM_EPS = 1e-8  # keeps a row whose mass was all removed at zero instead of NaN


def soft_mask(distance, z: float, ramp: float) -> np.ndarray:
    """m_z(distance) for z and distance in tokens, ramp R > 0 tokens."""
    if ramp <= 0:
        raise ValueError(f"the ramp must be positive, got {ramp}")
    distance = np.asarray(distance, dtype=np.float64)
    return np.clip((ramp + z - distance) / ramp, 0.0, 1.0)


def mask_curve(z: float, ramp: float, max_span: float) -> tuple[np.ndarray, np.ndarray]:
    """(distances, m_z values) at the curve's corners 0, z, z + R and S, cut at S.

    m_z is linear between its corners, so a line through these points is the exact curve.
    """
    corners = np.clip([0.0, z, z + ramp, max_span], 0.0, max_span)
    return corners, soft_mask(corners, z, ramp)


def parse_spans(text: str) -> list[float]:
    """Spans typed as "4, 40, 200" (tokens); raises ValueError naming the entry that isn't one."""
    spans = []
    for entry in filter(None, (part.strip() for part in text.replace(";", ",").split(","))):
        try:
            span = float(entry)
        except ValueError:
            raise ValueError(f"'{entry}' is not a number of tokens.") from None
        if not 0 <= span < float("inf"):
            raise ValueError(f"'{entry}' is not a span: spans are 0 or more tokens.")
        spans.append(span)
    return spans


def soft_mask_torch(distance: torch.Tensor, z: torch.Tensor, ramp: float) -> torch.Tensor:
    """The same function on tensors, differentiable in z (broadcasts distance against z)."""
    return ((ramp + z - distance) / ramp).clamp(0.0, 1.0)


def query_key_distance(n: int, causal: bool, rows: slice | None = None) -> np.ndarray:
    """[n, n] distance from query i back to key j: i - j for decoders, |i - j| for encoders;
    [r, n] for the queries `rows` only.

    For decoders the keys after the query get negative distances; the mask is 1 there, and
    their attention is already 0.
    """
    positions = np.arange(n)
    distance = positions[rows or slice(None), None] - positions[None, :]
    return distance if causal else np.abs(distance)


def mask_and_renormalise(attention, mask):
    """Multiply attention rows by the mask and make each row sum to 1 again.

    Works on numpy arrays and on tensors alike ([..., q, k] with a broadcastable mask).
    """
    masked = attention * mask
    return masked / (masked.sum(-1, keepdims=True) + RENORM_EPS)


@dataclass(frozen=True)
class SpanEffect:
    """What a span does to one attention matrix [n, n] (rows are queries)."""

    mask: np.ndarray  # [n, n] m_z(distance of each cell)
    after: np.ndarray  # [n, n] masked and renormalised attention
    removed: np.ndarray  # [n] attention mass each query lost before renormalising
    zeroed_share: float  # share of the cells a query may see whose mask is 0


def apply_span(attention: np.ndarray, z: float, ramp: float, causal: bool, rows: slice | None = None) -> SpanEffect:
    """Apply a span of z tokens with ramp R to one head's attention [n, n], or to its query rows
    `rows` of all n keys ([r, n])."""
    n = attention.shape[-1]
    distance = query_key_distance(n, causal, rows)
    mask = soft_mask(distance, z, ramp)
    visible = distance >= 0  # for decoders, only the keys up to the query
    return SpanEffect(
        mask=mask,
        after=mask_and_renormalise(attention.astype(np.float64), mask).astype(np.float32),
        removed=(attention * (1.0 - mask)).sum(-1),
        zeroed_share=float((mask[visible] == 0).mean()),
    )


def tiled_span_effect(weights: StackWeights, layer: int, head: int, z: float, ramp: float, shown: slice) -> SpanEffect:
    """apply_span of one head of a stack kept whole or recomputed (a long run), in row tiles:
    `removed` [n] and `zeroed_share` over the whole head, `mask` and `after` [s, s] for the queries
    and keys `shown` only (a window, at most tiles.MAX_WINDOW a side)."""
    _, _, n, k = weights.shape
    removed, mask, after = np.zeros(n, np.float32), [], []
    zeroed = visible = 0
    for rows in row_tiles(weights, TILE_SHARE):  # a tile's float64 copies stay a few TILE_ELEMENTS / TILE_SHARE
        block = weights.block(layer, slice(head, head + 1), rows, slice(0, k))[0].numpy()  # [r, n]
        effect = apply_span(block, z, ramp, weights.causal, rows)
        removed[rows] = effect.removed
        seen = query_key_distance(n, weights.causal, rows) >= 0
        zeroed, visible = zeroed + int((effect.mask[seen] == 0).sum()), visible + int(seen.sum())
        inside = slice(max(rows.start, shown.start) - rows.start, min(rows.stop, shown.stop) - rows.start)
        if inside.stop > inside.start:
            mask.append(effect.mask[inside, shown])
            after.append(effect.after[inside, shown])
    return SpanEffect(np.concatenate(mask), np.concatenate(after), removed, zeroed / visible)


class AdaptiveSpanMask(nn.Module):
    """One learned span per head for attention weights [batch, heads, T, T], causal.

    The span is stored as a fraction of max_span (parameter `fraction`, shape [heads]) and
    the mask multiplies the softmax output, whose rows are then renormalised.
    """

    def __init__(self, n_heads: int, max_span: int, ramp: int, init_fraction: float = 0.0):
        super().__init__()
        self.max_span = max_span
        self.ramp = ramp
        self.fraction = nn.Parameter(torch.full((n_heads,), float(init_fraction)))

    def mask(self, length: int) -> torch.Tensor:
        """[heads, T, T] mask values for query i and key j at distance i - j."""
        positions = torch.arange(length, dtype=torch.float32, device=self.fraction.device)
        distance = positions[:, None] - positions[None, :]
        z = (self.fraction * self.max_span)[:, None, None]
        return soft_mask_torch(distance, z, self.ramp)

    def forward(self, attention: torch.Tensor) -> torch.Tensor:
        return mask_and_renormalise(attention, self.mask(attention.shape[-1]))

    def span_loss(self, coefficient: float) -> torch.Tensor:
        """coefficient * S * mean(z as a fraction): the price of long spans for this layer."""
        return coefficient * self.max_span * self.fraction.mean()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep the fraction in [0, 1]; called after every optimiser step."""
        self.fraction.clamp_(0.0, 1.0)

    def spans(self) -> np.ndarray:
        """[heads] learned spans z in tokens."""
        return (self.fraction.detach() * self.max_span).cpu().numpy()


FLOPS_PER_KEY_DIM = 4  # q.k and a.v: one multiply-add (2 FLOPs) each per key and head dim
BYTES_PER_KEY_DIM = 8  # a float32 key and a float32 value per key and head dim


@dataclass(frozen=True)
class SpanSavings:
    """Attention cost per token (all layers and heads) with the learned spans against span S."""

    mean_span: float  # keys a query reads, averaged over heads: min(z + R, S)
    max_span: int  # S
    flops_per_token: float
    full_flops_per_token: float
    bytes_per_token: float  # keys and values kept for one query
    full_bytes_per_token: float

    @property
    def fraction(self) -> float:
        """Cost with the learned spans as a share of the cost with span S."""
        return self.mean_span / self.max_span


def span_savings(spans: np.ndarray, max_span: int, ramp: int, head_dim: int) -> SpanSavings:
    """Costs for spans z [layers, heads] in tokens: a head reads min(ceil(z + R), S) keys."""
    attended = np.minimum(np.ceil(np.asarray(spans, dtype=np.float64) + ramp), max_span)
    full = attended.size * max_span
    return SpanSavings(
        mean_span=float(attended.mean()),
        max_span=max_span,
        flops_per_token=float(attended.sum() * FLOPS_PER_KEY_DIM * head_dim),
        full_flops_per_token=float(full * FLOPS_PER_KEY_DIM * head_dim),
        bytes_per_token=float(attended.sum() * BYTES_PER_KEY_DIM * head_dim),
        full_bytes_per_token=float(full * BYTES_PER_KEY_DIM * head_dim),
    )

"""Views of one attention stack that stay small whatever the text's length, computed in row tiles.

A stack's weights are either kept whole (`FullWeights`, short runs) or recomputed block by
block from the kept queries and keys (models.core.long_run.RecomputedStack, long runs); both
answer `block(layer, heads, rows, cols)`, and every view here is built from such blocks, at
most TILE_ELEMENTS weights at a time. `head=None` means the layer mean (over its heads).

Costs for a long run of n tokens, h heads, d dimensions per head:
- window, query row, key column: one dot product per weight shown (the row's log-sum-exp is kept);
- pooled head: the whole head, h x fewer than a layer of the forward pass: n^2 d multiply-adds;
- rollout rows and head statistics: every head of every layer used, about the forward pass's
  attention again (n^2 d h per layer; a causal stack's rollout row of token i only needs the
  first i + 1 tokens).

    from models.core import tiles
    weights = run.weights()                            # the first stack
    tiles.window(weights, layer=3, head=2, rows=slice(0, 512), cols=slice(0, 512))
    tiles.rollout_row(weights, layer=5, query=100)     # [n]
"""
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from models.analysis.head_stats import HeadStatistics, QueryTotals, query_values, text_keys, uniform_entropy
from models.analysis.numerics import BlockPool, block_pooled, block_size, readonly_tensor

OVERVIEW_SIZE = 96  # blocks a side of each head's overview image (viz.overview's largest thumbnail cell)
MAX_WINDOW = 512  # rows and columns of exact weights a window may show
TILE_ELEMENTS = 1 << 20  # weights held at once (4 MB in float32): a tile stays in cache through its passes

# fn(done, total) after each layer of a long run, or of a view that recomputes every head; what it raises stops it
Progress = Callable[[int, int], None]


class StackWeights(Protocol):
    """One stack's attention weights: rows are queries, columns keys, rows sum to 1."""

    name: str  # "self-attention", "encoder", "decoder" or "cross"
    causal: bool

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(layers, heads, q, k)"""

    def block(self, layer: int, heads: slice, rows: slice, cols: slice) -> torch.Tensor:
        """float32 [h, r, c] on the CPU."""

    def overview(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, max) float32 [layers, heads, <= OVERVIEW_SIZE, <= OVERVIEW_SIZE]: every head block-pooled."""


@dataclass(frozen=True, eq=False)
class FullWeights:
    """A stack whose weights are all kept: [layers, heads, q, k] float32 (a short run's)."""

    name: str
    attentions: np.ndarray
    causal: bool

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.attentions.shape

    def block(self, layer: int, heads: slice, rows: slice, cols: slice) -> torch.Tensor:
        return readonly_tensor(self.attentions[layer, heads, rows, cols])

    def overview(self) -> tuple[np.ndarray, np.ndarray]:
        return block_pooled(self.attentions, OVERVIEW_SIZE)


def _span(part: slice, n: int) -> slice:
    start, stop, step = part.indices(n)
    if step != 1 or stop <= start:
        raise ValueError(f"expected a non-empty range of consecutive positions below {n}, got {part}")
    return slice(start, stop)


def _position(index: int, n: int) -> slice:
    if not 0 <= index < n:
        raise ValueError(f"position {index} is outside 0 ... {n - 1}")
    return slice(index, index + 1)


def _heads(weights: StackWeights, head: int | None) -> slice:
    return slice(0, weights.shape[1]) if head is None else slice(head, head + 1)


def _block(weights: StackWeights, layer: int, head: int | None, rows: slice, cols: slice) -> torch.Tensor:
    """float32 [r, c]: one head's block, or the layer mean's."""
    return weights.block(layer, _heads(weights, head), rows, cols).mean(0)


def tile_budget(q: int, k: int) -> int:
    """Weights a tile may hold: TILE_ELEMENTS, and at most one head's q x k."""
    return min(TILE_ELEMENTS, q * k)


def row_tiles(weights: StackWeights, heads: int, rows: slice | None = None) -> Iterator[slice]:
    """Consecutive slices of `rows` (all queries) whose blocks over `heads` heads and all keys hold
    at most tile_budget weights (or are one row)."""
    _, _, q, k = weights.shape
    rows = rows or slice(0, q)
    size = max(1, tile_budget(q, k) // (heads * k))
    for start in range(rows.start, rows.stop, size):
        yield slice(start, min(rows.stop, start + size))


def window(weights: StackWeights, layer: int, head: int | None, rows: slice, cols: slice) -> np.ndarray:
    """[r, c] exact weights of queries `rows` x keys `cols`, at most MAX_WINDOW a side."""
    _, _, q, k = weights.shape
    rows, cols = _span(rows, q), _span(cols, k)
    if rows.stop - rows.start > MAX_WINDOW or cols.stop - cols.start > MAX_WINDOW:
        raise ValueError(f"a window shows at most {MAX_WINDOW} x {MAX_WINDOW} weights, not {rows} x {cols}")
    return _block(weights, layer, head, rows, cols).numpy()


def query_row(weights: StackWeights, layer: int, head: int | None, query: int) -> np.ndarray:
    """[k]: how query `query` spreads its attention over the keys."""
    return _block(weights, layer, head, _position(query, weights.shape[2]), slice(0, weights.shape[3]))[0].numpy()


def key_column(weights: StackWeights, layer: int, head: int | None, key: int) -> np.ndarray:
    """[q]: the attention key `key` receives from every query."""
    return _block(weights, layer, head, slice(0, weights.shape[2]), _position(key, weights.shape[3]))[:, 0].numpy()


def pooled_head(weights: StackWeights, layer: int, head: int | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, max) [<= size, <= size]: one head (or the layer mean) block-pooled, in row tiles."""
    _, heads, q, k = weights.shape
    pool = BlockPool(1, q, k, size)
    for rows in row_tiles(weights, heads if head is None else 1):
        pool.add(_block(weights, layer, head, rows, slice(0, k))[None], rows, slice(0, k))
    mean, maxima = pool.result()
    return mean[0], maxima[0]


def rollout_rows(weights: StackWeights, vectors: np.ndarray, layer: int,
                 progress: Progress | None = None) -> np.ndarray:
    """[m, n] vectors @ R_layer, the rollout after `layer` (models.analysis.aggregation.rollout_layers:
    A' = 0.5 mean-over-heads + 0.5 I, rows renormalised, R_l = A'_l R_{l-1}), without R itself:
    one vector-matrix product per layer, down from `layer` to 0, over row tiles of A'.

    vectors [m, n] float; e.g. a one-hot row for one token's rollout row. A causal stack only
    computes the keys up to the last position the vectors reach.
    """
    _, heads, n, k = weights.shape
    if n != k:
        raise ValueError("rollout needs self-attention (square matrices); cross-attention has none")
    flow = torch.from_numpy(np.asarray(vectors, dtype=np.float64))  # [m, n]
    for current in range(layer, -1, -1):
        reach = int(flow.abs().sum(0).nonzero().max()) + 1 if weights.causal and flow.any() else n
        keys = slice(0, reach)
        mixed_flow = torch.zeros_like(flow)
        for rows in row_tiles(weights, heads, slice(0, reach)):
            mixed = 0.5 * _block(weights, current, None, rows, keys).double()  # [r, reach]
            mixed[:, rows] += 0.5 * torch.eye(rows.stop - rows.start, dtype=torch.float64)
            mixed /= mixed.sum(-1, keepdim=True)
            mixed_flow[:, keys] += flow[:, rows] @ mixed
        flow = mixed_flow
        if progress is not None:
            progress(layer + 1 - current, layer + 1)
    return flow.float().numpy()


def rollout_row(weights: StackWeights, layer: int, query: int, progress: Progress | None = None) -> np.ndarray:
    """[n]: which input tokens flow into position `query` after `layer` (row `query` of the rollout)."""
    one_hot = np.zeros((1, weights.shape[2]))
    one_hot[0, _position(query, weights.shape[2])] = 1
    return rollout_rows(weights, one_hot, layer, progress)[0]


def pooled_rollout(weights: StackWeights, layer: int, size: int, progress: Progress | None = None) -> np.ndarray:
    """[<= size, <= size]: the rollout after `layer`, block mean-pooled (rows pooled before the
    products, columns after); costs the forward pass's attention up to `layer` again."""
    n = weights.shape[2]
    rows = block_size(n, size)
    blocks = np.arange(n) // rows
    averaging = np.zeros((blocks[-1] + 1, n))
    averaging[blocks, np.arange(n)] = 1
    averaging /= averaging.sum(1, keepdims=True)
    flow = rollout_rows(weights, averaging, layer, progress)  # [row blocks, n]
    pool = BlockPool(1, len(flow), n, size)  # one row per block already
    pool.add(torch.from_numpy(flow)[None], slice(0, len(flow)), slice(0, n))
    return pool.result()[0][0]


def head_statistics(weights: StackWeights, tokens: list[str], special_mask: np.ndarray,
                    progress: Progress | None = None) -> HeadStatistics:
    """models.analysis.head_stats.head_statistics of a self-attention stack, in row tiles: the same
    per-query values, summed tile by tile."""
    layers, heads, n, _ = weights.shape
    keys = text_keys(tokens, special_mask, weights.causal)
    per_layer = []
    for layer in range(layers):
        totals = QueryTotals()
        for rows in row_tiles(weights, heads):
            block = weights.block(layer, slice(0, heads), rows, slice(0, n)).numpy()
            totals.add(query_values(block, np.arange(rows.start, rows.stop), keys))
        per_layer.append(totals.means())
        if progress is not None:
            progress(layer + 1, layers)
    values = {metric: np.stack([means[metric] for means in per_layer]) for metric in per_layer[0]}
    return HeadStatistics(values, uniform_entropy(n, weights.causal))

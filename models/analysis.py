"""What a stack of attention matrices says as a whole: aggregates, rollout, head statistics, pair blocks.

Everything takes the arrays of an AttentionRun / AttentionStack ([layers, heads, q, k], rows are
queries and sum to 1) and is numpy (torch where numpy is too slow at 512 tokens).

    from models.analysis import attention_rollout, head_statistics
    rollout = attention_rollout(run.attentions)  # [n, n]
    stats = head_statistics(run.attentions, run.tokens, run.special_mask, run.causal)
    stats.values["entropy"]  # [layers, heads]
"""
import unicodedata
import warnings
from dataclasses import dataclass

import numpy as np
import torch

# How the focused view reduces the stack to one [q, k] matrix (readable: pages put them in the URL).
HEAD, LAYER_MEAN, LAYER_MAX, ALL_MEAN, ROLLOUT = "one head", "layer mean", "layer max", "mean of all", "rollout"
AGGREGATIONS = (HEAD, LAYER_MEAN, LAYER_MAX, ALL_MEAN, ROLLOUT)


def mean_over_heads(attentions: np.ndarray) -> np.ndarray:
    """[layers, heads, q, k] -> [layers, q, k]; rows still sum to 1."""
    return attentions.mean(axis=1)


def max_over_heads(attentions: np.ndarray) -> np.ndarray:
    """[layers, heads, q, k] -> [layers, q, k]: the strongest head per cell (rows no longer sum to 1)."""
    return attentions.max(axis=1)


def mean_over_all(attentions: np.ndarray) -> np.ndarray:
    """[layers, heads, q, k] -> [q, k]: every head of every layer weighs the same."""
    return attentions.mean(axis=(0, 1))


def rollout_layers(attentions: np.ndarray) -> np.ndarray:
    """Attention rollout after each layer (Abnar & Zuidema 2020): [layers, heads, n, n] -> [layers, n, n].

    Per layer A = mean over heads, A' = 0.5 A + 0.5 I with rows renormalised (the residual
    stream), R_0 = A'_0, R_l = A'_l R_{l-1}. R_l[i, j] is how much input token j flows into
    position i after layer l; rows sum to 1.
    """
    layers, _, n, k = attentions.shape
    if n != k:
        raise ValueError("rollout needs self-attention (square matrices); cross-attention has none")
    mixed = 0.5 * mean_over_heads(attentions).astype(np.float64) + 0.5 * np.eye(n)
    mixed /= mixed.sum(axis=-1, keepdims=True)
    rollouts = np.empty((layers, n, n))
    rollouts[0] = mixed[0]
    for layer in range(1, layers):
        rollouts[layer] = mixed[layer] @ rollouts[layer - 1]
    return rollouts.astype(np.float32)


def attention_rollout(attentions: np.ndarray) -> np.ndarray:
    """Rollout through all layers: [layers, heads, n, n] -> [n, n]."""
    return rollout_layers(attentions)[-1]


def aggregate(attentions: np.ndarray, how: str, layer: int, head: int) -> np.ndarray:
    """The [q, k] matrix the focused view shows for `how` (one of AGGREGATIONS).

    `layer` picks the layer for the per-layer aggregates and is the last layer of the rollout.
    """
    if how == HEAD:
        return attentions[layer, head]
    if how == LAYER_MEAN:
        return attentions[layer].mean(axis=0)
    if how == LAYER_MAX:
        return attentions[layer].max(axis=0)
    if how == ALL_MEAN:
        return mean_over_all(attentions)
    if how == ROLLOUT:
        return rollout_layers(attentions[: layer + 1])[-1]
    raise ValueError(f"unknown aggregation {how!r}; expected one of {AGGREGATIONS}")


def _bins(n: int, size: int) -> torch.Tensor:
    """[n] bin of each position: `size` consecutive bins, bin i starting at floor(i * n / size)
    (the bins of viz.sparse.pool), so their sizes differ by at most one."""
    return ((torch.arange(n) + 1) * size - 1) // n


def pooled(attentions: np.ndarray, size: int) -> np.ndarray:
    """[..., q, k] -> [..., min(size, q), min(size, k)]: every matrix mean-pooled, for thumbnails.

    Summed into row bins, then column bins, with index_add (whole rows of keys at a time): 10 ms
    for 72 heads at 512 tokens, where torch's adaptive average pooling took 16 ms.
    """
    *lead, q, k = attentions.shape
    if q <= size and k <= size:
        return attentions
    rows, cols = min(size, q), min(size, k)
    with warnings.catch_warnings():  # runs are read-only; torch only reads them here
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        flat = torch.from_numpy(np.ascontiguousarray(attentions, dtype=np.float32)).reshape(-1, q, k)
    row_bins, col_bins = _bins(q, rows), _bins(k, cols)
    with torch.inference_mode():
        by_rows = torch.zeros(len(flat), rows, k).index_add_(1, row_bins, flat)  # [m, rows, k]
        summed = torch.zeros(len(flat), rows, cols).index_add_(2, col_bins, by_rows)  # [m, rows, cols]
        counts = torch.outer(torch.bincount(row_bins, minlength=rows), torch.bincount(col_bins, minlength=cols))
        return (summed / counts).reshape(*lead, rows, cols).numpy()


# --- head statistics (Clark et al. 2019; mean distance as in Vig & Belinkov 2019) ---

@dataclass(frozen=True)
class Metric:
    key: str  # short and readable: pages show it and put it in the URL
    unit: str  # "nats", "tokens" or "share"
    help: str


METRICS = (
    Metric("entropy", "nats", "mean over queries of −Σ_j a_ij log a_ij; uniform attention gives log n"),
    Metric("mean distance", "tokens", "Σ_j a_ij |i − j|, averaged over queries"),
    Metric("to first special", "share", "attention mass on a leading special token ([CLS], <s>)"),
    Metric("to separators", "share", "attention mass on the other special tokens ([SEP], </s>)"),
    Metric("to punctuation", "share", "attention mass on tokens made only of punctuation"),
    Metric("to self", "share", "a_ii, the token itself"),
    Metric("to previous", "share", "a_i,i−1, averaged over the queries that have a previous token"),
    Metric("to next", "share", "a_i,i+1, averaged over the queries that have a next token"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


@dataclass(frozen=True)
class HeadStatistics:
    values: dict[str, np.ndarray]  # metric key -> [layers, heads]; all-NaN if the text has no such tokens
    uniform_entropy: float  # entropy of uniform attention over the keys a query may see (log n if not causal)

    def available(self) -> list[Metric]:
        """The metrics that mean something for this text (e.g. GPT-2 has no special tokens)."""
        return [m for m in METRICS if not np.isnan(self.values[m.key]).all()]


def _bare(token: str) -> str:
    # WordPiece continuation, byte-level BPE space, SentencePiece space
    return token.removeprefix("##").replace("Ġ", "").replace("▁", "")


def punctuation_mask(tokens: list[str], special_mask: np.ndarray) -> np.ndarray:
    """[n] bool: non-special tokens made only of Unicode punctuation ("." "," "!" "'" ...)."""
    def is_punct(token: str) -> bool:
        bare = _bare(token)
        return bool(bare) and all(unicodedata.category(c).startswith("P") for c in bare)

    return np.array([is_punct(t) for t in tokens], dtype=bool) & ~np.asarray(special_mask, dtype=bool)


def _key_share(attentions: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Mean over queries of the mass on the keys in mask `keys` [k]; NaN if the mask is empty."""
    if not keys.any():
        return np.full(attentions.shape[:2], np.nan, dtype=np.float32)
    return (attentions @ keys.astype(attentions.dtype)).mean(axis=-1)


def _diagonal_share(attentions: np.ndarray, offset: int) -> np.ndarray:
    """Mean of a_i,i+offset over the queries i that have such a key."""
    diagonal = np.diagonal(attentions, offset=offset, axis1=-2, axis2=-1)  # [..., a_i,i+offset]
    if diagonal.shape[-1] == 0:
        return np.full(attentions.shape[:2], np.nan, dtype=np.float32)
    return diagonal.mean(axis=-1)


def uniform_entropy(n: int, causal: bool) -> float:
    """Entropy a head would have if every query spread evenly over the keys it may see."""
    if not causal:
        return float(np.log(n))
    return float(np.mean(np.log(np.arange(1, n + 1))))


def head_statistics(attentions: np.ndarray, tokens: list[str], special_mask: np.ndarray,
                    causal: bool = False) -> HeadStatistics:
    """Every metric of METRICS for every head of a self-attention stack [layers, heads, n, n]."""
    n = attentions.shape[-1]
    special = np.asarray(special_mask, dtype=bool)
    first_special = np.zeros(n, dtype=bool)
    first_special[0] = special[0]
    separators = special & ~first_special
    positions = np.arange(n)
    distance = np.abs(positions[:, None] - positions[None, :]).astype(np.float32)  # [n, n]
    log = np.log(np.maximum(attentions, np.finfo(attentions.dtype).tiny))  # 0 log 0 = 0
    values = {
        "entropy": -np.einsum("lhij,lhij->lhi", attentions, log).mean(axis=-1),
        "mean distance": np.einsum("lhij,ij->lhi", attentions, distance).mean(axis=-1),
        "to first special": _key_share(attentions, first_special),
        "to separators": _key_share(attentions, separators),
        "to punctuation": _key_share(attentions, punctuation_mask(tokens, special)),
        "to self": _diagonal_share(attentions, 0),
        "to previous": _diagonal_share(attentions, -1),
        "to next": _diagonal_share(attentions, 1),
    }
    return HeadStatistics({k: v.astype(np.float32) for k, v in values.items()}, uniform_entropy(n, causal))


# --- sentence pairs ---

PAIR_BLOCKS = ("all", "A->A", "A->B", "B->A", "B->B")


def pair_segments(segment_ids: np.ndarray) -> np.ndarray:
    """[n] in {0, 1}: the sentence of each token, special tokens joining a neighbour.

    A special token belongs to the sentence before it ([SEP] closes its sentence), a leading
    one ([CLS], <s>) to the sentence after it: the split BERT's token_type_ids make.
    """
    segments = np.asarray(segment_ids, dtype=np.int64).copy()
    known = np.flatnonzero(segments >= 0)
    if known.size == 0:
        return np.zeros_like(segments)
    before = np.maximum.accumulate(np.where(segments >= 0, np.arange(len(segments)), -1))
    filled = np.where(before >= 0, segments[np.maximum(before, 0)], segments[known[0]])
    return filled


def has_pair(segment_ids: np.ndarray) -> bool:
    return bool((np.asarray(segment_ids) == 1).any())


def pair_block(segment_ids: np.ndarray, block: str) -> tuple[np.ndarray, np.ndarray]:
    """(query positions, key positions) of a block of PAIR_BLOCKS, e.g. "A->B": A's queries, B's keys.

    Slice a matrix with m[np.ix_(queries, keys)]; its rows then show the share of each query's
    attention that lands in the other block (they no longer sum to 1).
    """
    if block not in PAIR_BLOCKS:
        raise ValueError(f"unknown block {block!r}; expected one of {PAIR_BLOCKS}")
    every = np.arange(len(segment_ids))
    if block == "all":
        return every, every
    segments = pair_segments(segment_ids)
    side = {"A": 0, "B": 1}
    source, target = block.split("->")
    return every[segments == side[source]], every[segments == side[target]]

"""Head statistics (Clark et al. 2019, "What Does BERT Look At?"; mean distance as in Vig &
Belinkov 2019): one number per head and metric, over a self-attention stack [layers, heads, n, n].

    from models.analysis.head_stats import head_statistics
    stats = head_statistics(run.attentions, run.tokens, run.special_mask, run.causal)
    stats.values["entropy"]  # [layers, heads]
"""
import unicodedata
from dataclasses import dataclass

import numpy as np

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


def uniform_entropy(n: int, causal: bool) -> float:
    """Entropy a head would have if every query spread evenly over the keys it may see."""
    if not causal:
        return float(np.log(n))
    return float(np.mean(np.log(np.arange(1, n + 1))))


def key_sets(tokens: list[str], special_mask: np.ndarray) -> dict[str, np.ndarray]:
    """The "to ..." metrics' keys: metric -> [n] bool."""
    special = np.asarray(special_mask, dtype=bool)
    first_special = np.zeros(len(special), dtype=bool)
    first_special[0] = special[0]
    return {"to first special": first_special, "to separators": special & ~first_special,
            "to punctuation": punctuation_mask(tokens, special)}


def _key_at(weights: np.ndarray, queries: np.ndarray, offset: int) -> np.ndarray:
    """[..., r] a_i,i+offset of each query i, NaN where that key doesn't exist."""
    keys = queries + offset
    exists = (keys >= 0) & (keys < weights.shape[-1])
    values = weights[..., np.arange(len(queries)), np.clip(keys, 0, weights.shape[-1] - 1)]
    return np.where(exists, values, np.nan)


def query_values(weights: np.ndarray, queries: np.ndarray, keys: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every metric of METRICS for each query: weights [..., r, n] are the rows of queries [r]
    (positions) over all n keys; returns metric -> [..., r], NaN where the query has no such key
    (an empty key set, no previous token)."""
    distance = np.abs(queries[:, None] - np.arange(weights.shape[-1])[None, :]).astype(np.float32)  # [r, n]
    log = np.log(np.maximum(weights, np.finfo(weights.dtype).tiny))  # 0 log 0 = 0
    values = {
        "entropy": -np.einsum("...ij,...ij->...i", weights, log),
        "mean distance": np.einsum("...ij,ij->...i", weights, distance),
    }
    for metric, mask in keys.items():
        values[metric] = weights @ mask.astype(weights.dtype) if mask.any() else np.full(weights.shape[:-1], np.nan)
    values.update({"to self": _key_at(weights, queries, 0), "to previous": _key_at(weights, queries, -1),
                   "to next": _key_at(weights, queries, 1)})
    return values


class QueryTotals:
    """Per-query values summed over row tiles, to their means over the queries that have them."""

    def __init__(self):
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}

    def add(self, values: dict[str, np.ndarray]) -> None:
        for metric, value in values.items():
            known = ~np.isnan(value)
            self.sums[metric] = self.sums.get(metric, 0) + np.where(known, value, 0).sum(-1, dtype=np.float64)
            self.counts[metric] = self.counts.get(metric, 0) + known.sum(-1)

    def means(self) -> dict[str, np.ndarray]:
        """metric -> float32 mean over queries; NaN where no query had a value."""
        return {metric: np.divide(total, self.counts[metric], out=np.full(np.shape(total), np.nan),
                                  where=self.counts[metric] > 0).astype(np.float32)
                for metric, total in self.sums.items()}


def head_statistics(attentions: np.ndarray, tokens: list[str], special_mask: np.ndarray,
                    causal: bool = False) -> HeadStatistics:
    """Every metric of METRICS for every head of a self-attention stack [layers, heads, n, n]
    (models.core.tiles.head_statistics: the same, in row tiles, for long runs)."""
    n = attentions.shape[-1]
    totals = QueryTotals()
    totals.add(query_values(attentions, np.arange(n), key_sets(tokens, special_mask)))
    return HeadStatistics(totals.means(), uniform_entropy(n, causal))

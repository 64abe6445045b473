"""Head statistics (Clark et al. 2019, "What Does BERT Look At?"; mean distance as in Vig &
Belinkov 2019; induction score after Olsson et al. 2022; first-token share, the attention sink of
Xiao et al. 2023): one number per head and metric, over a self-attention stack [layers, heads, n, n].

    from models.analysis.head_stats import head_statistics
    stats = head_statistics(run.attentions, run.tokens, run.special_mask, run.causal)
    stats.values[HeadMetric.ENTROPY]  # [layers, heads]
"""
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from models.analysis.numerics import entropy


class HeadMetric(StrEnum):
    """The statistics of a head (values: short stable names; pages hold the labels shown)."""
    ENTROPY = "entropy"
    MEAN_DISTANCE = "mean-distance"
    TO_FIRST_SPECIAL = "to-first-special"
    TO_SEPARATORS = "to-separators"
    TO_PUNCTUATION = "to-punctuation"
    TO_SELF = "to-self"
    TO_PREVIOUS = "to-previous"
    TO_NEXT = "to-next"
    TO_FIRST_TOKEN = "to-first-token"
    INDUCTION = "induction"


@dataclass(frozen=True)
class Metric:
    key: HeadMetric
    unit: str  # "nats", "tokens" or "share"
    help: str


METRICS = (
    Metric(HeadMetric.ENTROPY, "nats", "mean over queries of −Σ_j a_ij log a_ij; uniform attention gives log n"),
    Metric(HeadMetric.MEAN_DISTANCE, "tokens", "Σ_j a_ij |i − j|, averaged over queries"),
    Metric(HeadMetric.TO_FIRST_SPECIAL, "share", "attention mass on a leading special token ([CLS], <s>)"),
    Metric(HeadMetric.TO_SEPARATORS, "share", "attention mass on the other special tokens ([SEP], </s>)"),
    Metric(HeadMetric.TO_PUNCTUATION, "share", "attention mass on tokens made only of punctuation"),
    Metric(HeadMetric.TO_SELF, "share", "a_ii, the token itself"),
    Metric(HeadMetric.TO_PREVIOUS, "share", "a_i,i−1, averaged over the queries that have a previous token"),
    Metric(HeadMetric.TO_NEXT, "share", "a_i,i+1, averaged over the queries that have a next token"),
    Metric(HeadMetric.TO_FIRST_TOKEN, "share", "a_i,0 (the attention sink, special or not), averaged over the "
                                               "queries after the first"),
    Metric(HeadMetric.INDUCTION, "share", "a_i,j+1 where j is the latest earlier occurrence of token i, averaged "
                                          "over the queries whose token occurred before"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


@dataclass(frozen=True)
class HeadStatistics:
    values: dict[HeadMetric, np.ndarray]  # [layers, heads] each; all-NaN if the text has no such tokens
    uniform_entropy: float  # entropy of uniform attention over the keys a query may see (log n if not causal)

    def available(self) -> list[Metric]:
        return available_metrics(self.values)

    def strongest(self, metric: HeadMetric, k: int = 5) -> list[tuple[int, int, float]]:
        """The k heads with the highest `metric` as (layer, head, value), highest first; NaN never."""
        values = self.values[metric]
        order = [i for i in np.argsort(-values, axis=None, kind="stable") if not np.isnan(values.flat[i])][:k]
        return [(*map(int, np.unravel_index(i, values.shape)), float(values.flat[i])) for i in order]


def available_metrics(values: dict[str, np.ndarray]) -> list[Metric]:
    """The metrics that mean something for this text: not all NaN (e.g. GPT-2 has no special tokens)."""
    return [m for m in METRICS if not np.isnan(values[m.key]).all()]


def _bare(token: str) -> str:
    # WordPiece continuation, byte-level BPE space, SentencePiece space
    return token.removeprefix("##").replace("Ġ", "").replace("▁", "")


def punctuation_mask(tokens: list[str], special_mask: np.ndarray) -> np.ndarray:
    """[n] bool: non-special tokens made only of Unicode punctuation ("." "," "!" "'" ...)."""
    def is_punct(token: str) -> bool:
        bare = _bare(token)
        return bool(bare) and all(unicodedata.category(c).startswith("P") for c in bare)

    return np.array([is_punct(t) for t in tokens], dtype=bool) & ~np.asarray(special_mask, dtype=bool)


def previous_occurrences(tokens: list[str]) -> np.ndarray:
    """[n] int: the latest j < i with tokens[j] == tokens[i], or -1 where token i is new."""
    latest: dict[str, int] = {}
    found = np.full(len(tokens), -1)
    for i, token in enumerate(tokens):
        found[i] = latest.get(token, -1)
        latest[token] = i
    return found


def uniform_entropy(n: int, causal: bool) -> float:
    """Entropy a head would have if every query spread evenly over the keys it may see."""
    if not causal:
        return float(np.log(n))
    return float(np.mean(np.log(np.arange(1, n + 1))))


@dataclass(frozen=True)
class TextKeys:
    """What the metrics need from a text's tokens, found once per run: the "to ..." metrics' key
    sets and each query's induction key."""
    shares: dict[HeadMetric, np.ndarray]  # metric -> [n] bool keys
    induction: np.ndarray  # [n] int: the key after token i's previous occurrence, -1 if none (or special)
    causal: bool


def text_keys(tokens: list[str], special_mask: np.ndarray, causal: bool) -> TextKeys:
    special = np.asarray(special_mask, dtype=bool)
    first_special = np.zeros(len(special), dtype=bool)
    first_special[0] = special[0]
    previous = previous_occurrences(tokens)
    induction = np.where((previous >= 0) & ~special, previous + 1, -1)  # Olsson et al. 2022
    return TextKeys({HeadMetric.TO_FIRST_SPECIAL: first_special, HeadMetric.TO_SEPARATORS: special & ~first_special,
                     HeadMetric.TO_PUNCTUATION: punctuation_mask(tokens, special)}, induction, causal)


def _key_at(weights: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """[..., r] each row's weight on its key keys [r], NaN where that key doesn't exist."""
    exists = (keys >= 0) & (keys < weights.shape[-1])
    values = weights[..., np.arange(len(keys)), np.clip(keys, 0, weights.shape[-1] - 1)]
    return np.where(exists, values, np.nan)


def query_values(weights: np.ndarray, queries: np.ndarray, keys: TextKeys) -> dict[HeadMetric, np.ndarray]:
    """Every metric of METRICS for each query: weights [..., r, n] are the rows of queries [r]
    (positions) over all n keys; returns metric -> [..., r], NaN where the query has no such key
    (an empty key set, no previous token, no earlier occurrence)."""
    distance = np.abs(queries[:, None] - np.arange(weights.shape[-1])[None, :]).astype(np.float32)  # [r, n]
    values = {HeadMetric.ENTROPY: entropy(weights),
              HeadMetric.MEAN_DISTANCE: np.einsum("...ij,ij->...i", weights, distance)}
    for metric, mask in keys.shares.items():
        values[metric] = weights @ mask.astype(weights.dtype) if mask.any() else np.full(weights.shape[:-1], np.nan)
    values[HeadMetric.TO_SELF] = _key_at(weights, queries)
    values[HeadMetric.TO_PREVIOUS] = _key_at(weights, queries - 1)
    # a causal query never sees its next token: the share would be 0 by construction, not a finding
    values[HeadMetric.TO_NEXT] = _key_at(weights, np.where(keys.causal, -1, queries + 1))
    values[HeadMetric.TO_FIRST_TOKEN] = _key_at(weights, np.where(queries >= 1, 0, -1))  # the first query has no choice
    values[HeadMetric.INDUCTION] = _key_at(weights, keys.induction[queries])
    return values


class QueryTotals:
    """Per-query values summed over row tiles, to their means over the queries that have them."""

    def __init__(self):
        self.sums: dict[HeadMetric, np.ndarray] = {}
        self.counts: dict[HeadMetric, np.ndarray] = {}

    def add(self, values: dict[HeadMetric, np.ndarray]) -> None:
        for metric, value in values.items():
            known = ~np.isnan(value)
            self.sums[metric] = self.sums.get(metric, 0) + np.where(known, value, 0).sum(-1, dtype=np.float64)
            self.counts[metric] = self.counts.get(metric, 0) + known.sum(-1)

    def means(self) -> dict[HeadMetric, np.ndarray]:
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
    totals.add(query_values(attentions, np.arange(n), text_keys(tokens, special_mask, causal)))
    return HeadStatistics(totals.means(), uniform_entropy(n, causal))

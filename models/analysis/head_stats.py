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


def _missing(attentions: np.ndarray) -> np.ndarray:
    """[layers, heads] NaN: a metric this text or model doesn't have (left out of available())."""
    return np.full(attentions.shape[:2], np.nan, dtype=np.float32)


def _key_share(attentions: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Mean over queries of the mass on the keys in mask `keys` [k]; NaN if the mask is empty."""
    if not keys.any():
        return _missing(attentions)
    return (attentions @ keys.astype(attentions.dtype)).mean(axis=-1)


def _diagonal_share(attentions: np.ndarray, offset: int) -> np.ndarray:
    """Mean of a_i,i+offset over the queries i that have such a key."""
    diagonal = np.diagonal(attentions, offset=offset, axis1=-2, axis2=-1)  # [..., a_i,i+offset]
    if diagonal.shape[-1] == 0:
        return _missing(attentions)
    return diagonal.mean(axis=-1)


def previous_occurrences(tokens: list[str]) -> np.ndarray:
    """[n] int: the latest j < i with tokens[j] == tokens[i], or -1 where token i is new."""
    latest: dict[str, int] = {}
    found = np.full(len(tokens), -1)
    for i, token in enumerate(tokens):
        found[i] = latest.get(token, -1)
        latest[token] = i
    return found


def _induction_share(attentions: np.ndarray, tokens: list[str], special: np.ndarray) -> np.ndarray:
    """Mean over queries i whose (non-special) token occurred before at j of a_i,j+1, the token that
    followed it then (Olsson et al. 2022); NaN if no token repeats."""
    previous = previous_occurrences(tokens)
    queries = np.flatnonzero((previous >= 0) & ~special)
    if queries.size == 0:
        return _missing(attentions)
    return attentions[..., queries, previous[queries] + 1].mean(axis=-1)


def _first_token_share(attentions: np.ndarray) -> np.ndarray:
    """Mean of a_i,0 over queries i >= 1 (in a decoder the first query can only see itself)."""
    if attentions.shape[-1] < 2:
        return _missing(attentions)
    return attentions[..., 1:, 0].mean(axis=-1)


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
    values = {
        HeadMetric.ENTROPY: entropy(attentions).mean(axis=-1),
        HeadMetric.MEAN_DISTANCE: np.einsum("lhij,ij->lhi", attentions, distance).mean(axis=-1),
        HeadMetric.TO_FIRST_SPECIAL: _key_share(attentions, first_special),
        HeadMetric.TO_SEPARATORS: _key_share(attentions, separators),
        HeadMetric.TO_PUNCTUATION: _key_share(attentions, punctuation_mask(tokens, special)),
        HeadMetric.TO_SELF: _diagonal_share(attentions, 0),
        HeadMetric.TO_PREVIOUS: _diagonal_share(attentions, -1),
        # a causal query never sees its next token: the share would be 0 by construction, not a finding
        HeadMetric.TO_NEXT: _diagonal_share(attentions, 1) if not causal else _missing(attentions),
        HeadMetric.TO_FIRST_TOKEN: _first_token_share(attentions),
        HeadMetric.INDUCTION: _induction_share(attentions, tokens, special),
    }
    return HeadStatistics({k: v.astype(np.float32) for k, v in values.items()}, uniform_entropy(n, causal))

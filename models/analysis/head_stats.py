"""Head statistics (Clark et al. 2019, "What Does BERT Look At?"; mean distance as in Vig &
Belinkov 2019): one number per head and metric, over a self-attention stack [layers, heads, n, n].

    from models.analysis.head_stats import head_statistics
    stats = head_statistics(run.attentions, run.tokens, run.special_mask, run.causal)
    stats.values[HeadMetric.ENTROPY]  # [layers, heads]
"""
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


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
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


@dataclass(frozen=True)
class HeadStatistics:
    values: dict[HeadMetric, np.ndarray]  # [layers, heads] each; all-NaN if the text has no such tokens
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
        HeadMetric.ENTROPY: -np.einsum("lhij,lhij->lhi", attentions, log).mean(axis=-1),
        HeadMetric.MEAN_DISTANCE: np.einsum("lhij,ij->lhi", attentions, distance).mean(axis=-1),
        HeadMetric.TO_FIRST_SPECIAL: _key_share(attentions, first_special),
        HeadMetric.TO_SEPARATORS: _key_share(attentions, separators),
        HeadMetric.TO_PUNCTUATION: _key_share(attentions, punctuation_mask(tokens, special)),
        HeadMetric.TO_SELF: _diagonal_share(attentions, 0),
        HeadMetric.TO_PREVIOUS: _diagonal_share(attentions, -1),
        HeadMetric.TO_NEXT: _diagonal_share(attentions, 1),
    }
    return HeadStatistics({k: v.astype(np.float32) for k, v in values.items()}, uniform_entropy(n, causal))

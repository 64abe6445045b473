"""Why attention divides q.k by sqrt(d): statistics of random vectors.

q and k have independent N(0, 1) components. Then q.k has mean 0 and variance d
(Vaswani et al. 2017, footnote 4), so without the 1/sqrt(d) scale the scores, and with them
the softmax, get sharper as d grows.
"""
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import gammaln

from models.analysis.numerics import entropy, softmax

CHUNK_ELEMENTS = 1 << 22  # vector components drawn at once: bounds memory at large d


def sample_dot_products(d: int, n_samples: int, seed: int, scaled: bool = False) -> np.ndarray:
    """[n_samples] dot products q.k of independent random vectors (divided by sqrt(d) if scaled).

    The vectors are really drawn (in chunks, with torch's generator: several times faster
    than numpy's at d = 16384), so the same (d, n_samples, seed) always gives the same numbers.
    """
    if d < 1 or n_samples < 0:
        raise ValueError(f"need d >= 1 and n_samples >= 0, got d={d}, n_samples={n_samples}")
    generator = torch.Generator().manual_seed(seed)
    rows = max(1, CHUNK_ELEMENTS // d)
    chunks = [np.zeros(0)]
    for start in range(0, n_samples, rows):
        shape = (min(rows, n_samples - start), d)
        q, k = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
        chunks.append((q * k).sum(dim=-1, dtype=torch.float64).numpy())
    dots = np.concatenate(chunks)
    return dots / np.sqrt(d) if scaled else dots


def mean_abs_dot_exact(d: np.ndarray | int) -> np.ndarray:
    """E|q.k| = (2/sqrt(pi)) Gamma((d+1)/2) / Gamma(d/2), through log-gamma so any d works."""
    d = np.asarray(d, dtype=np.float64)
    return 2 / np.sqrt(np.pi) * np.exp(gammaln((d + 1) / 2) - gammaln(d / 2))


def mean_abs_dot_limit(d: np.ndarray | int) -> np.ndarray:
    """The large-d limit of E|q.k|: sqrt(2d/pi)."""
    return np.sqrt(2 * np.asarray(d, dtype=np.float64) / np.pi)


@dataclass(frozen=True)
class MeanAbsCurve:
    dims: np.ndarray  # [m] dimensions d
    sampled: np.ndarray  # [m] mean |q.k| over n_samples pairs at each d
    exact: np.ndarray  # [m] E|q.k|
    limit: np.ndarray  # [m] sqrt(2d/pi)
    n_samples: int
    seed: int


def mean_abs_curve(dims: list[int], n_samples: int, seed: int) -> MeanAbsCurve:
    """Sampled and exact mean |q.k| for each d (each d uses `sample_dot_products(d, n, seed)`)."""
    sampled = [np.abs(sample_dot_products(d, n_samples, seed)).mean() for d in dims]
    dims_array = np.asarray(dims)
    return MeanAbsCurve(dims_array, np.asarray(sampled), mean_abs_dot_exact(dims_array),
                        mean_abs_dot_limit(dims_array), n_samples, seed)


def log_grid(low: int, high: int) -> list[int]:
    """Powers of two from low to high (inclusive), the x values of the curves against d."""
    return [2 ** e for e in range(int(np.log2(low)), int(np.log2(high)) + 1)]


def jacobian_norm(weights: np.ndarray) -> np.ndarray:
    """Frobenius norm of the softmax Jacobian diag(p) - p p^T, along the last axis.

    ||J||^2 = sum_i p_i^2 (1 - p_i)^2 + sum_i p_i^2 sum_{j != i} p_j^2. For the largest weight,
    1 - p_i and sum_{j != i} p_j^2 are summed from the other weights instead of subtracted,
    so a saturated softmax gives a tiny norm rather than rounding noise.
    """
    p = np.asarray(weights, dtype=np.float64)
    top = np.argmax(p, axis=-1)[..., None]
    others = p.copy()
    np.put_along_axis(others, top, 0.0, axis=-1)
    one_minus = 1.0 - p
    np.put_along_axis(one_minus, top, others.sum(axis=-1, keepdims=True), axis=-1)
    squares = p ** 2
    rest_squares = squares.sum(axis=-1, keepdims=True) - squares
    np.put_along_axis(rest_squares, top, (others ** 2).sum(axis=-1, keepdims=True), axis=-1)
    return np.sqrt((squares * (one_minus ** 2 + rest_squares)).sum(axis=-1))


def sample_query_scores(d: int, n_keys: int, n_trials: int, seed: int) -> np.ndarray:
    """[n_trials, n_keys] scores q.k_j of one random query against n_keys random keys per trial.

    Given q, the q.k_j are independent N(0, |q|^2) with |q|^2 ~ chi-squared(d): drawing |q|
    and the n_keys normals has exactly the distribution of drawing the vectors, at a cost
    that does not grow with d.
    """
    rng = np.random.default_rng(seed)
    norms = np.sqrt(rng.chisquare(d, size=(n_trials, 1)))
    return norms * rng.standard_normal((n_trials, n_keys))


@dataclass(frozen=True)
class Spread:
    """Median and 10th/90th percentiles over trials, one value per d."""

    median: np.ndarray  # [m]
    low: np.ndarray  # [m]
    high: np.ndarray  # [m]


def spread(values: np.ndarray) -> Spread:
    """values [m, trials] -> Spread over the trials axis."""
    low, median, high = np.percentile(values, [10, 50, 90], axis=-1)
    return Spread(median, low, high)


@dataclass(frozen=True)
class SoftmaxStats:
    max_weight: Spread  # largest softmax weight
    entropy: Spread  # nats
    jacobian_norm: Spread  # Frobenius norm of the softmax Jacobian


@dataclass(frozen=True)
class SoftmaxSweep:
    dims: np.ndarray  # [m]
    n_keys: int
    n_trials: int
    unscaled: SoftmaxStats  # softmax(q.k)
    scaled: SoftmaxStats  # softmax(q.k / sqrt(d))


def _stats(weights: np.ndarray) -> SoftmaxStats:
    # weights [m, trials, n_keys]
    return SoftmaxStats(spread(weights.max(axis=-1)), spread(entropy(weights)), spread(jacobian_norm(weights)))


def softmax_sweep(dims: list[int], n_keys: int, n_trials: int, seed: int) -> SoftmaxSweep:
    """Softmax of one query against n_keys random keys, for each d, with and without the scale."""
    scores = np.stack([sample_query_scores(d, n_keys, n_trials, seed) for d in dims])  # [m, trials, n_keys]
    scale = np.sqrt(np.asarray(dims, dtype=np.float64))[:, None, None]
    return SoftmaxSweep(np.asarray(dims), n_keys, n_trials, _stats(softmax(scores)), _stats(softmax(scores / scale)))


@dataclass(frozen=True)
class Density:
    """A theoretical density drawn over a histogram."""

    x: np.ndarray  # [points]
    y: np.ndarray  # [points]
    label: str


def normal_density(variance: float, label: str, points: int = 241) -> Density:
    """N(0, variance) over +-4 standard deviations."""
    sd = float(np.sqrt(variance))
    x = np.linspace(-4 * sd, 4 * sd, points)
    return Density(x, np.exp(-0.5 * (x / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), label)


@dataclass(frozen=True)
class DotProductSample:
    """One sample of q.k at dimension d, unscaled and scaled, with the figures a reader checks."""

    d: int
    unscaled: np.ndarray  # [n_samples] q.k, theory N(0, d)
    scaled: np.ndarray  # [n_samples] q.k / sqrt(d), theory N(0, 1)

    @property
    def variances(self) -> tuple[float, float]:
        return float(self.unscaled.var()), float(self.scaled.var())

    @property
    def mean_abs(self) -> float:
        """mean |q.k|: the same number `mean_abs_curve` gives at this d, n_samples and seed."""
        return float(np.abs(self.unscaled).mean())

    @property
    def theory(self) -> tuple[Density, Density]:
        return normal_density(self.d, f"N(0, {self.d})"), normal_density(1.0, "N(0, 1)")


def dot_product_sample(d: int, n_samples: int, seed: int) -> DotProductSample:
    dots = sample_dot_products(d, n_samples, seed)
    return DotProductSample(d, dots, dots / np.sqrt(d))


CLASSIC_DIMS, CLASSIC_SAMPLES = (10, 10_000), 100


def classic_demonstration(seed: int) -> MeanAbsCurve:
    """The textbook numbers: mean |q.k| of 100 samples is about 2.5 at d = 10, about 80 at d = 10000."""
    return mean_abs_curve(list(CLASSIC_DIMS), CLASSIC_SAMPLES, seed)


@dataclass(frozen=True)
class TemperatureExample:
    """softmax(q.k_j / t) of one random query against n random keys, keys sorted by score."""

    d: int
    temperature: float
    scores: np.ndarray  # [n_keys] q.k_j, largest first
    weights: np.ndarray  # [n_keys] softmax(scores / temperature)
    standard: np.ndarray  # [n_keys] softmax(scores / sqrt(d)), the transformer's choice

    @property
    def max_weight(self) -> float:
        return float(self.weights.max())

    @property
    def entropy(self) -> float:
        return float(entropy(self.weights))


def temperature_example(d: int, n_keys: int, seed: int, temperature: float) -> TemperatureExample:
    scores = np.sort(sample_query_scores(d, n_keys, 1, seed)[0])[::-1]
    return TemperatureExample(d, temperature, scores, softmax(scores, temperature), softmax(scores, np.sqrt(d)))

"""The live model's scores for the Scaling page: one head's q·k over its visible pairs next to
the random-vector baseline for its d_head, and one query's attention computed step by step."""
from dataclasses import dataclass

import numpy as np

from models.analysis.numerics import softmax
from models.core.scores import ScoreStack
from models.scaling.random_vectors import Density, normal_density


@dataclass(frozen=True)
class NeuronView:
    """How one query token's attention in one head is computed, step by step (k keys)."""

    query: np.ndarray  # [d_head] the query vector q
    keys: np.ndarray  # [k, d_head] the key vectors k_j
    products: np.ndarray  # [k, d_head] q * k_j element by element; each row sums to q.k_j
    dots: np.ndarray  # [k] q.k_j
    scaled: np.ndarray  # [k] q.k_j times the model's scale
    bias: np.ndarray | None  # [k] position bias added by the model (T5)
    visible: np.ndarray  # [k] bool: keys the mask lets this query see
    weights: np.ndarray  # [k] softmax over the visible keys
    scaling: float


def neuron_view(stack: ScoreStack, layer: int, head: int, query_index: int) -> NeuronView:
    q = stack.query[layer, head, query_index]
    keys = stack.key[layer, head]
    bias = stack.head_bias(layer, head)
    return NeuronView(
        query=q,
        keys=keys,
        products=keys * q,
        dots=stack.scores[layer, head, query_index],
        scaled=stack.scaled(layer, head)[query_index],
        bias=None if bias is None else bias[query_index],
        visible=stack.visible(layer, head)[query_index],
        weights=softmax(stack.logits(layer, head)[query_index]),
        scaling=float(stack.scaling[layer]),
    )


@dataclass(frozen=True)
class HeadScores:
    """The scores of one head over the query-key pairs its mask lets through."""

    raw: np.ndarray  # [pairs] q.k
    scaled: np.ndarray  # [pairs] q.k times the model's scale
    d_head: int
    scaling: float

    @property
    def baselines(self) -> tuple[Density, Density]:
        """Random-vector q.k at this d_head, before and after this model's scale."""
        scaled_variance = self.d_head * self.scaling ** 2
        return (normal_density(self.d_head, f"random vectors: N(0, {self.d_head})"),
                normal_density(scaled_variance, f"random vectors: N(0, {scaled_variance:.3g})"))


def head_scores(stack: ScoreStack, layer: int, head: int) -> HeadScores:
    visible = stack.visible(layer, head)
    return HeadScores(stack.scores[layer, head][visible], stack.scaled(layer, head)[visible],
                      stack.d_head, float(stack.scaling[layer]))

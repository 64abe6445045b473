"""A stack of attention matrices reduced to one matrix: head means and maxima, and rollout.

Everything takes the arrays of an AttentionRun / AttentionStack ([layers, heads, q, k], rows are
queries and sum to 1).

    from models.analysis.aggregation import attention_rollout
    rollout = attention_rollout(run.attentions)  # [n, n]
"""
from enum import StrEnum

import numpy as np


class Aggregation(StrEnum):
    """How the focused view reduces a stack to one [q, k] matrix (values: short stable names;
    pages hold the labels shown)."""
    HEAD = "head"
    LAYER_MEAN = "layer-mean"
    LAYER_MAX = "layer-max"
    ALL_MEAN = "all-mean"
    ROLLOUT = "rollout"


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


def aggregate(attentions: np.ndarray, how: Aggregation, layer: int, head: int) -> np.ndarray:
    """The [q, k] matrix the focused view shows for `how`.

    `layer` picks the layer for the per-layer aggregates and is the last layer of the rollout.
    """
    if how == Aggregation.HEAD:
        return attentions[layer, head]
    if how == Aggregation.LAYER_MEAN:
        return attentions[layer].mean(axis=0)
    if how == Aggregation.LAYER_MAX:
        return attentions[layer].max(axis=0)
    if how == Aggregation.ALL_MEAN:
        return mean_over_all(attentions)
    if how == Aggregation.ROLLOUT:
        return rollout_layers(attentions[: layer + 1])[-1]
    raise ValueError(f"unknown aggregation {how!r}; expected one of {[a.value for a in Aggregation]}")

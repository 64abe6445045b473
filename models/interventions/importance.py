"""Head importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?") and the pruning curve.

I_h = E_x |dL(x)/dξ_h| for a gate ξ_h = 1 multiplying head h's output (models.interventions.ablation.gated),
L the language-model loss of models.interventions.loss, the mean over texts taken after the absolute value;
normalised per layer by its l2 norm, as in the paper. The pruning curve switches heads off (zero-ablation)
in order of increasing importance and, as the baseline, in random orders, and follows the loss and the
share of top-1 predictions that still agree with the intact model's.

    importance = head_importance(loaded)                  # [layers, heads] on the built-in corpus
    curve = pruning_curve(loaded, importance, progress=lambda done, total: print(done, total))
"""
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from models.core.loading import LoadedModel
from models.interventions.ablation import Head, ablated, attention_layers, gated
from models.interventions.loss import Text, TokenLosses, loss_terms, token_losses

CORPUS = (
    "The cat sat on the mat because it was warm there.",
    "Paris is the capital of France, and Rome is the capital of Italy.",
    "She opened the door, looked outside, and closed it again.",
    "When the rain stopped, the children ran back into the garden to play.",
    "The committee will meet on Monday to discuss the new budget.",
    "The old lighthouse keeper lit the lamp every night. The old lighthouse keeper lit the lamp",
)  # a few plain sentences; the last repeats a phrase, so induction heads have something to copy
SEEDS = (0, 1, 2)
POINTS = 11  # 0%, 10%, ..., 100% of the heads removed

Progress = Callable[[int, int], None]  # (steps done, steps in all)


def head_importance(loaded: LoadedModel, texts: Sequence[Text] = CORPUS, stack: str | None = None,
                    normalise: bool = True) -> np.ndarray:
    """[layers, heads] float64 importance of each head of `stack` (default the first) on `texts`
    (texts, or token ids [1, n] such as an induction probe).

    normalise=True divides each layer by its l2 norm (Michel et al.); else the raw mean |dL/dξ| in nats.
    Raises LossError for a model without a language-model head (minilm: its sentence embedding
    is at its own optimum at ξ = 1, so every gradient of a distance to it would be 0).
    """
    if not texts:
        raise ValueError("head importance needs at least one text")
    layers = attention_layers(loaded)
    name = layers.stack(stack, loaded.spec)
    shape = (len(layers.heads[name]), max(layers.heads[name]))
    total = torch.zeros(shape, dtype=torch.float64)
    for text in texts:
        gates = torch.ones(shape, requires_grad=True)  # ξ
        with torch.inference_mode(False), torch.enable_grad(), gated(loaded, gates, name):
            loss = loss_terms(loaded, text).losses().mean()
            (gradient,) = torch.autograd.grad(loss, gates)
        total += gradient.abs()
    importance = (total / len(texts)).numpy()
    if normalise:
        importance = importance / np.maximum(np.linalg.norm(importance, axis=1, keepdims=True), 1e-30)
    return importance


@dataclass(frozen=True, eq=False)
class PruningCurve:
    """Loss and top-1 agreement as heads of one stack are switched off, at a few shares of heads."""

    removed: np.ndarray  # [points] int: heads switched off
    total: int  # heads in the stack
    loss: np.ndarray  # [points] mean loss in nats, least important heads first
    agreement: np.ndarray  # [points] share of scored tokens whose top-1 prediction is the intact model's
    random_loss: np.ndarray  # [seeds, points] the same, heads in random orders
    random_agreement: np.ndarray  # [seeds, points]

    @property
    def shares(self) -> np.ndarray:
        """[points] share of the stack's heads switched off, 0 to 1."""
        return self.removed / self.total


def _scores(runs: list[TokenLosses], intact: list[TokenLosses]) -> tuple[float, float]:
    """(mean loss over every scored token of the texts, share of them with the intact top-1)."""
    losses = np.concatenate([run.losses for run in runs])
    scored = np.concatenate([run.top1 >= 0 for run in intact])
    same = np.concatenate([run.top1 == base.top1 for run, base in zip(runs, intact)])
    return float(np.nanmean(losses)), float(same[scored].mean())


def removal_counts(total: int, points: int = POINTS) -> np.ndarray:
    """[<= points] int: how many of `total` heads the pruning curve switches off at each point, 0 to all."""
    return np.unique(np.linspace(0, total, points).round().astype(int))


def curve_runs(total: int, points: int = POINTS, seeds: Sequence[int] = SEEDS) -> int:
    """Forward passes of each text a pruning curve costs: the intact model, then each order at each point."""
    return 1 + (1 + len(seeds)) * len(removal_counts(total, points))


def pruning_curve(loaded: LoadedModel, importance: np.ndarray, texts: Sequence[Text] = CORPUS,
                  stack: str | None = None, points: int = POINTS, seeds: Sequence[int] = SEEDS,
                  progress: Progress | None = None) -> PruningCurve:
    """Switch off round(share x heads) heads for `points` shares from 0 to 1, least important first
    (importance [layers, heads] of `stack`, e.g. head_importance's) and in one random order per seed.

    Costs curve_runs(heads) forward passes of every text; progress(done, total) after each point of an order.
    """
    layers = attention_layers(loaded)
    name = layers.stack(stack, loaded.spec)
    heads: list[Head] = [(layer, head) for layer, count in enumerate(layers.heads[name]) for head in range(count)]
    if importance.shape != (len(layers.heads[name]), max(layers.heads[name])):
        raise ValueError(f"importance is {importance.shape}, the {name} stack has "
                         f"{len(layers.heads[name])} layers x {max(layers.heads[name])} heads")
    intact = [token_losses(loaded, text) for text in texts]
    removed = removal_counts(len(heads), points)
    orders = [np.argsort([importance[head] for head in heads], kind="stable")]
    orders += [np.random.default_rng(seed).permutation(len(heads)) for seed in seeds]
    results = np.zeros((len(orders), len(removed), 2))  # (loss, agreement)
    for o, order in enumerate(orders):
        for p, count in enumerate(removed):
            with ablated(loaded, [heads[i] for i in order[:count]], stack=name):
                results[o, p] = _scores([token_losses(loaded, text) for text in texts], intact)
            if progress is not None:
                progress(o * len(removed) + p + 1, len(orders) * len(removed))
    return PruningCurve(removed=removed, total=len(heads), loss=results[0, :, 0], agreement=results[0, :, 1],
                        random_loss=results[1:, :, 0], random_agreement=results[1:, :, 1])

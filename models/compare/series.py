"""A checkpoint series on one text: every head's statistics across training steps, and how far
each checkpoint's attention still is from the final one's.

    checkpoints, _ = series_checkpoints("data/demo_series/v1-seed0")   # discovery.Checkpoint, by step
    ran = run_series(checkpoints, "The cat sat on the mat.")   # ran.left_out: those that failed, and why
    series = series_statistics(ran.runs, ran.steps)
    series.values[HeadMetric.ENTROPY]  # [steps, layers, heads]
    series.layer_divergence            # [steps, layers] JSD from the final checkpoint, nats
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.analysis.head_stats import METRICS, HeadMetric, Metric, available_metrics, head_statistics
from models.checkpoints.discovery import Checkpoint, SeriesError, find_checkpoints
from models.compare.divergence import head_divergence
from models.core.loading import ModelLoadError, load_model
from models.core.run import (
    AttentionRun,
    RunError,
    check_text,
    cut_notice,
    run_keeping_weights,
)
from models.core.settings import Settings


def series_checkpoints(folder: str | Path, settings: Settings | None = None) -> tuple[list[Checkpoint], list[str]]:
    """(usable checkpoints by step, why the others were left out) of a folder of `checkpoint-N/`
    folders (models.checkpoints.discovery.find_checkpoints). `settings` (a server's deployment settings) keeps the
    listing to its allowed folders.
    """
    if settings is not None and not settings.folder_allowed(Path(folder).expanduser()):
        raise SeriesError(f"This server doesn't read checkpoint series from '{folder}'; ask its host to allow "
                          "the folder (EXPLORER_ALLOWED_FOLDERS).")
    found = find_checkpoints(folder)
    usable = [c for c in found if c.problem is None]
    if len(usable) < 2:
        raise SeriesError(f"'{folder}' holds {len(usable) or 'no'} usable checkpoint-N folder"
                          f"{'s' if not usable else ''}; a series needs at least two.")
    return usable, [c.problem for c in found if c.problem is not None]


@dataclass(frozen=True, eq=False)
class SeriesRuns:
    checkpoints: list[Checkpoint]  # those that ran on the text, by step
    runs: list[AttentionRun]  # one per checkpoint above
    left_out: list[str]  # why the others didn't run, one line each
    notice: str | None = None  # why the runs read only the text's first tokens

    @property
    def steps(self) -> list[int]:
        return [c.step for c in self.checkpoints]


def run_series(checkpoints: list[Checkpoint], text: str, text_pair: str | None = None,
               settings: Settings | None = None) -> SeriesRuns:
    """Every checkpoint run on the text, one model in memory at a time (within `settings`' limits).

    A checkpoint that can't be loaded or run is left out with the reason; an empty or too long
    text raises RunError, and fewer than two runs SeriesError. Every run keeps every weight: a text
    that would make long runs is read up to where they still do (run_keeping_weights), saying so.
    """
    max_chars = settings.max_text_chars if settings is not None else None
    check_text(text, text_pair, max_chars)
    ran, runs, left_out, notice = [], [], [], None
    for checkpoint in checkpoints:
        try:
            loaded = load_model(checkpoint.spec, settings)
            runs.append(run_keeping_weights(loaded, text, text_pair, max_chars))
            ran.append(checkpoint)
            notice = cut_notice("Following every head of every checkpoint", runs[-1], loaded.max_tokens) or notice
        except (ModelLoadError, RunError) as error:
            left_out.append(f"{checkpoint.label}: {error}")
    if len(runs) < 2:
        raise SeriesError(f"{len(runs) or 'None'} of the series' {len(checkpoints)} checkpoints ran on this text; "
                          "a series needs at least two. " + " ".join(left_out))
    return SeriesRuns(ran, runs, left_out, notice)


@dataclass(frozen=True)
class SeriesStatistics:
    steps: list[int]  # S training steps, increasing
    tokens: list[str]  # the n tokens every checkpoint read
    values: dict[HeadMetric, np.ndarray]  # [S, layers, heads] each
    divergence: np.ndarray  # [S, layers, heads] JSD in nats of each head from the same head at the final step
    uniform_entropy: float  # entropy of evenly spread attention on this text (the entropy baseline)

    @property
    def layer_divergence(self) -> np.ndarray:
        """[S, layers]: each layer's mean over heads of `divergence`."""
        return self.divergence.mean(axis=-1)

    def available(self) -> list[Metric]:
        return available_metrics(self.values)


def series_statistics(runs: list[AttentionRun], steps: list[int]) -> SeriesStatistics:
    """Head statistics of every run, and every run's divergence from the last one, head by head."""
    final = runs[-1]
    for step, run in zip(steps, runs):
        if run.tokens != final.tokens or run.attentions.shape != final.attentions.shape:
            raise SeriesError(f"The checkpoint of step {step} doesn't match the final one (tokenizer or shape "
                              "differ): a series is one model saved at several steps.")
    statistics = [head_statistics(run.attentions, run.tokens, run.special_mask, run.causal) for run in runs]
    return SeriesStatistics(
        steps=list(steps),
        tokens=list(final.tokens),
        values={m.key: np.stack([s.values[m.key] for s in statistics]) for m in METRICS},
        divergence=np.stack([head_divergence(run.attentions, final.attentions) for run in runs]),
        uniform_entropy=statistics[-1].uniform_entropy,
    )

"""A checkpoint series on one text: every head's statistics across training steps, and how far
each checkpoint's attention still is from the final one's.

    checkpoints = series_checkpoints("data/demo_series")      # [(step, folder), ...] by step
    runs = run_series(checkpoints, "The cat sat on the mat.")
    series = series_statistics(runs, [step for step, _ in checkpoints])
    series.values["entropy"]        # [steps, layers, heads]
    series.layer_divergence         # [steps, layers] JSD from the final checkpoint, nats
"""
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.analysis import METRICS, Metric, head_statistics
from models.compare import head_divergence
from models.loading import load_model
from models.run import AttentionRun, run_attention

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")  # the Hugging Face Trainer's folder names


class SeriesError(ValueError):
    """The folder is not a usable checkpoint series; str(error) is a message for the user."""


def series_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete `checkpoint-N/` (one with a config.json) under `folder`, by step."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise SeriesError(f"The folder '{folder}' does not exist.")
    found = [(int(match[1]), path) for path in root.iterdir()
             if (match := CHECKPOINT.match(path.name)) and (path / "config.json").is_file()]
    if len(found) < 2:
        raise SeriesError(f"'{folder}' holds {len(found) or 'no'} checkpoint-N folder{'s' if not found else ''}; "
                          "a series needs at least two.")
    return sorted(found)


def run_series(checkpoints: list[tuple[int, Path]], text: str, text_pair: str | None = None) -> list[AttentionRun]:
    """Every checkpoint run on the text, one model in memory at a time."""
    return [run_attention(load_model(str(path)), text, text_pair) for _, path in checkpoints]


@dataclass(frozen=True)
class SeriesStatistics:
    steps: list[int]  # S training steps, increasing
    tokens: list[str]  # the n tokens every checkpoint read
    values: dict[str, np.ndarray]  # metric key (models.analysis.METRICS) -> [S, layers, heads]
    divergence: np.ndarray  # [S, layers, heads] JSD in nats of each head from the same head at the final step
    uniform_entropy: float  # entropy of evenly spread attention on this text (the entropy baseline)

    @property
    def layer_divergence(self) -> np.ndarray:
        """[S, layers]: each layer's mean over heads of `divergence`."""
        return self.divergence.mean(axis=-1)

    def available(self) -> list[Metric]:
        """The metrics that mean something for this text (e.g. no punctuation, no share to it)."""
        return [m for m in METRICS if not np.isnan(self.values[m.key]).all()]


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

"""The same masked text across a series of checkpoints: each one's predictions, and each
candidate's probability and rank over training.

    from models.checkpoints.discovery import find_checkpoints
    from models.checkpoints.series import fill_series, trajectories
    fills = fill_series(find_checkpoints("data/demo_series/v1-seed0"), "The capital of [MASK] is Rome.")
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from models.checkpoints.discovery import Checkpoint
from models.core.loading import ModelLoadError, load_model
from models.core.predictions import Candidate, FillMask, NoMaskError, fill_mask
from models.core.run import RunError, check_text
from models.core.settings import Settings


@dataclass(frozen=True, eq=False)
class CheckpointFill:
    checkpoint: Checkpoint
    result: FillMask | None
    problem: str | None = None  # why there is no result


def fill_checkpoint(checkpoint: Checkpoint, text: str, top_k: int = 5, settings: Settings | None = None,
                    include_special: bool = False) -> CheckpointFill:
    """Load one checkpoint, fill the masks (special tokens only with `include_special`), let the
    model go. What concerns the whole series raises: a text without a mask (NoMaskError), an empty
    or too long text (RunError); anything wrong with this checkpoint becomes its `problem`."""
    max_chars = settings.max_text_chars if settings else None
    check_text(text, max_chars=max_chars)
    if checkpoint.problem:
        return CheckpointFill(checkpoint, None, checkpoint.problem)
    try:
        filled = fill_mask(load_model(checkpoint.spec, settings), text, top_k, max_chars, include_special)
        return CheckpointFill(checkpoint, filled)
    except NoMaskError:
        raise
    except (ModelLoadError, RunError) as error:
        return CheckpointFill(checkpoint, None, str(error))


def fill_series(checkpoints: list[Checkpoint], text: str, top_k: int = 5, settings: Settings | None = None,
                progress: Callable[[int, Checkpoint], None] | None = None,
                include_special: bool = False) -> list[CheckpointFill]:
    """fill_checkpoint for each checkpoint in order, one model in memory at a time."""
    fills = []
    for index, checkpoint in enumerate(checkpoints):
        if progress:
            progress(index, checkpoint)
        fills.append(fill_checkpoint(checkpoint, text, top_k, settings, include_special))
    return fills


# --- across the series ---

@dataclass(frozen=True)
class Trajectories:
    labels: list[str]  # checkpoint labels, the x axis, in series order
    steps: list[int | None]
    tokens: list[str]  # the candidate words, one line each
    probability: np.ndarray  # [candidates, checkpoints]; NaN where a checkpoint has no result
    rank: np.ndarray  # [candidates, checkpoints], 1 = most probable; NaN where no result


def final_top(fills: list[CheckpointFill], mask_index: int = 0) -> list[Candidate]:
    """The top-k of the last checkpoint that has a result (the default candidates)."""
    done = [f.result for f in fills if f.result is not None]
    return done[-1].masks[mask_index].top if done else []


def all_candidates(fills: list[CheckpointFill], mask_index: int = 0) -> list[Candidate]:
    """Every token some checkpoint put in its top-k for this mask, first appearance first."""
    seen: dict[int, Candidate] = {}
    for fill in fills:
        if fill.result is not None:
            for candidate in fill.result.masks[mask_index].top:
                seen.setdefault(candidate.token_id, candidate)
    return list(seen.values())


def trajectories(fills: list[CheckpointFill], candidates: list[Candidate], mask_index: int = 0) -> Trajectories:
    """Probability and rank of each candidate at every checkpoint (same vocabulary assumed)."""
    probability = np.full((len(candidates), len(fills)), np.nan)
    rank = np.full((len(candidates), len(fills)), np.nan)
    for column, fill in enumerate(fills):
        if fill.result is None:
            continue
        prediction = fill.result.masks[mask_index]
        for row, candidate in enumerate(candidates):
            if candidate.token_id < prediction.probabilities.shape[0]:
                probability[row, column] = prediction.probabilities[candidate.token_id]
                rank[row, column] = prediction.rank(candidate.token_id)
    return Trajectories([f.checkpoint.label for f in fills], [f.checkpoint.step for f in fills],
                        [c.token for c in candidates], probability, rank)

"""The training loss a Hugging Face Trainer logged in a checkpoint's trainer_state.json."""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.checkpoints.discovery import TRAINER_STATE, Checkpoint
from models.core.folder_files import reads_inside


@dataclass(frozen=True)
class TrainingLog:
    steps: np.ndarray  # [m] steps at which the Trainer logged the training loss
    loss: np.ndarray  # [m]
    source: str  # the trainer_state.json read


def read_training_log(checkpoints: list[Checkpoint]) -> TrainingLog | None:
    """The loss history of the latest checkpoint with a readable trainer_state.json (it holds the
    whole history up to its step); None when no checkpoint has one."""
    for checkpoint in sorted((c for c in checkpoints if c.step is not None), key=lambda c: -c.step):
        path = Path(checkpoint.spec) / TRAINER_STATE
        if not reads_inside(path, Path(checkpoint.spec)):  # a symlink out of the checkpoint is not its log
            continue
        try:
            history = json.loads(path.read_text(encoding="utf-8"))["log_history"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        points = [(entry["step"], entry["loss"]) for entry in history
                  if isinstance(entry, dict) and "loss" in entry and "step" in entry]
        if points:
            steps, loss = np.array(points, dtype=float).T
            return TrainingLog(steps.astype(int), loss, str(path))
    return None

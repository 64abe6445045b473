"""Trained span runs on disk, so a lecture can open one instantly.

    data_dir()/span_runs/<name>/run.json            configs, vocabulary, training history
    data_dir()/span_runs/<name>/weights.safetensors the model's weights
"""
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.core.storage import data_dir, staged_folder, write_error_message
from models.span.lm import SpanLM, SpanLMConfig, SpanTrainConfig, TrainedRun, TrainingHistory

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
META_FILE = "run.json"
WEIGHTS_FILE = "weights.safetensors"


class SpanRunError(ValueError):
    """A saved run can't be opened; str(error) is a message for the user."""


@dataclass(frozen=True)
class SavedRunInfo:
    """What the run list shows, read from run.json only."""

    name: str
    created: str  # "YYYY-MM-DD HH:MM:SS"
    source: str
    steps: int
    final_loss: float
    mean_span: float  # characters, over all heads at the end


def runs_dir() -> Path:
    return data_dir() / "span_runs"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "run"


def _new_name(source: str) -> str:
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(source)}"
    name, counter = base, 2
    while (runs_dir() / name).exists():
        name, counter = f"{base}-{counter}", counter + 1
    return name


def save_run(run: TrainedRun, name: str | None = None) -> str:
    """Write the run under runs_dir() and return its name (new from the time and source if None)."""
    name = name or _new_name(run.source)
    if not RUN_NAME.match(name):
        raise SpanRunError(f"'{name}' is not a valid run name: use letters, digits, '.', '_' and '-'.")
    meta = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "source": run.source,
        "vocab": run.vocab,
        "train_seconds": run.train_seconds,
        "model_config": asdict(run.model_config),
        "train_config": asdict(run.train_config),
        "history": {
            "steps": run.history.steps,
            "lm_loss": run.history.lm_loss,
            "spans": run.history.spans_array().round(4).tolist(),
        },
    }
    # written whole, then renamed into place: an interrupted or failed save leaves no folder that
    # looks like a run, and a run saved under an existing name replaces it only once it is complete
    try:
        with staged_folder(runs_dir() / name) as staging:
            save_file({key: value.contiguous() for key, value in run.model.state_dict().items()},
                      staging / WEIGHTS_FILE)
            (staging / META_FILE).write_text(json.dumps(meta))
    except (OSError, SafetensorError) as error:  # safetensors reports a full disk as "(os error 28)"
        raise SpanRunError(write_error_message(error, runs_dir())) from error
    return name


def _read_meta(name: str) -> dict:
    path = runs_dir() / name / META_FILE
    if not RUN_NAME.match(name) or not path.is_file():
        raise SpanRunError(f"There is no saved run named '{name}'.")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SpanRunError(f"The saved run '{name}' is damaged ({error}).") from error


def list_runs() -> list[SavedRunInfo]:
    """Saved runs, newest first; damaged ones are skipped."""
    infos = []
    for path in runs_dir().glob(f"*/{META_FILE}"):
        try:
            meta = _read_meta(path.parent.name)
            history = meta["history"]
            infos.append(SavedRunInfo(
                name=path.parent.name,
                created=meta["created"],
                source=meta["source"],
                steps=history["steps"][-1],
                final_loss=history["lm_loss"][-1],
                mean_span=float(np.mean(history["spans"][-1])),
            ))
        except (SpanRunError, KeyError, IndexError, TypeError):
            continue
    return sorted(infos, key=lambda info: (info.created, info.name), reverse=True)


def load_run(name: str) -> TrainedRun:
    """The saved run `name` with its model ready to use; raises SpanRunError."""
    meta = _read_meta(name)
    try:
        model_config = SpanLMConfig(**meta["model_config"])
        model = SpanLM(model_config)
        model.load_state_dict(load_file(runs_dir() / name / WEIGHTS_FILE))
        history = meta["history"]
        return TrainedRun(
            model_config=model_config,
            train_config=SpanTrainConfig(**meta["train_config"]),
            vocab=meta["vocab"],
            source=meta["source"],
            model=model.eval(),
            history=TrainingHistory(
                steps=history["steps"],
                lm_loss=history["lm_loss"],
                spans=[np.array(spans, dtype=np.float32) for spans in history["spans"]],
            ),
            train_seconds=meta["train_seconds"],
        )
    except (OSError, KeyError, TypeError, RuntimeError, ValueError) as error:
        raise SpanRunError(f"The saved run '{name}' can't be opened ({error}).") from error

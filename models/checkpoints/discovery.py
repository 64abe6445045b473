"""A series of training checkpoints: Trainer `checkpoint-N/` folders in a folder, or hub ids.

    from models.checkpoints.discovery import find_checkpoints
    checkpoints = find_checkpoints("data/demo_series/v1-seed0")     # ordered by step
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from huggingface_hub import try_to_load_from_cache

from models.core.loading import hub_reachable, hub_revision

CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")  # the Hugging Face Trainer's folder names
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
TRAINER_STATE = "trainer_state.json"
HUB_STEP = re.compile(r"step[_-]?(\d+)(k?)\b", re.IGNORECASE)  # multiberts-seed_0-step_20k, pythia step143000
# MultiBERTs seed 0: every 20k steps to 200k, then every 100k to 2M (Sellam et al. 2021)
MULTIBERTS_STEPS_K = list(range(0, 200, 20)) + list(range(200, 2001, 100))


def multiberts_ids(seed: int = 0) -> list[str]:
    return [f"google/multiberts-seed_{seed}-step_{k}k" for k in MULTIBERTS_STEPS_K]


class SeriesError(ValueError):
    """The folder can't be read as a series; str(error) is a message for the user."""


@dataclass(frozen=True)
class Checkpoint:
    spec: str  # what load_model gets: a checkpoint folder or a hub id
    step: int | None  # training step, when known
    problem: str | None = None  # why it can't be used, found without loading it

    @property
    def label(self) -> str:
        if self.step is None:
            return self.spec.rsplit("/", 1)[-1]
        return f"step {self.step:,}"


def fingerprint(checkpoint: Checkpoint) -> str:
    """Changes when a checkpoint folder is rewritten (a cache key); empty for hub ids."""
    folder = Path(checkpoint.spec)
    if not folder.is_dir():
        return ""
    return ",".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(folder.iterdir())
                    if p.is_file())


def _checkpoint_problem(folder: Path) -> str | None:
    name = folder.name
    config = folder / "config.json"
    if not config.is_file():
        return f"{name} has no config.json: it is incomplete (a write that never finished?)."
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return f"{name}'s config.json is not valid JSON: the checkpoint is corrupt."
    weights = [folder / w for w in WEIGHT_FILES if (folder / w).is_file()]
    if not weights:
        return f"{name} has no weights file ({WEIGHT_FILES[0]} or {WEIGHT_FILES[1]}): it is incomplete."
    if all(w.stat().st_size == 0 for w in weights):
        return f"{name}'s weights file is empty: the checkpoint is corrupt."
    return None


def find_checkpoints(folder: str | Path) -> list[Checkpoint]:
    """Every `checkpoint-N/` folder under `folder`, ordered by step; broken ones carry a `problem`.

    Hidden folders (the trainer's `.incomplete-checkpoints/` staging area) are not checkpoints.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise SeriesError(f"The folder '{folder}' does not exist." if not root.exists()
                          else f"'{folder}' is a file, not a folder of checkpoints.")
    found = [(int(match[1]), path) for path in root.iterdir()
             if path.is_dir() and (match := CHECKPOINT_DIR.match(path.name))]
    return [Checkpoint(str(path), step, _checkpoint_problem(path)) for step, path in sorted(found)]


def _hub_step(spec: str) -> int | None:
    match = HUB_STEP.search(spec)
    return None if match is None else int(match[1]) * (1000 if match[2] else 1)


def _in_hub_cache(spec: str) -> bool:
    repo_id, revision = hub_revision(spec)
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)
    except ValueError:  # not a valid repo id: load_model will say so
        return False


def hub_checkpoints(specs: list[str], reachable: Callable[[], bool] = hub_reachable) -> list[Checkpoint]:
    """Hub ids (one per checkpoint) as a series, ordered by the step in their names when every
    name has one. Ids neither cached nor reachable carry a problem at once (one network check)."""
    specs = [s.strip() for s in specs if s.strip()]
    online: bool | None = None
    checkpoints = []
    for spec in specs:
        problem = None
        if not _in_hub_cache(spec):
            online = reachable() if online is None else online
            if not online:
                problem = f"'{spec}' is not in the local cache and the Hugging Face hub can't be reached from here."
        checkpoints.append(Checkpoint(spec, _hub_step(spec), problem))
    if all(c.step is not None for c in checkpoints):
        checkpoints.sort(key=lambda c: c.step)
    return checkpoints

"""Masked-LM predictions, and the same text across a series of training checkpoints.

    from models import load_model
    from models.mlm import fill_mask, find_checkpoints, fill_series, trajectories
    loaded = load_model("data/demo_series/v1-seed0/checkpoint-800")
    fill_mask(loaded, "The capital of [MASK] is Rome.").masks[0].top   # like pipeline("fill-mask")
    checkpoints = find_checkpoints("data/demo_series/v1-seed0")     # ordered by step
    fills = fill_series(checkpoints, "The capital of [MASK] is Rome.")  # one model loaded at a time
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from huggingface_hub import try_to_load_from_cache

from models.loading import LoadedModel, ModelLoadError, hub_reachable, hub_revision, load_model
from models.run import RunError, encode
from models.settings import Settings

CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")  # the Hugging Face Trainer's folder names
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
TRAINER_STATE = "trainer_state.json"
HUB_STEP = re.compile(r"step[_-]?(\d+)(k?)\b", re.IGNORECASE)  # multiberts-seed_0-step_20k, pythia step143000
# MultiBERTs seed 0: every 20k steps to 200k, then every 100k to 2M (Sellam et al. 2021)
MULTIBERTS_STEPS_K = list(range(0, 200, 20)) + list(range(200, 2001, 100))


def multiberts_ids(seed: int = 0) -> list[str]:
    return [f"google/multiberts-seed_{seed}-step_{k}k" for k in MULTIBERTS_STEPS_K]


class FillMaskError(RunError):
    """The text or the model can't fill masks; str(error) is a message for the user."""


class NoMaskError(FillMaskError):
    """The text has none of the model's mask tokens: true for every checkpoint of a series."""


class SeriesError(ValueError):
    """The folder can't be read as a series; str(error) is a message for the user."""


# --- fill-mask on one model ---

@dataclass(frozen=True)
class Candidate:
    token_id: int
    token: str  # as the fill-mask pipeline's token_str: tokenizer.decode([token_id])
    score: float  # probability


@dataclass(frozen=True, eq=False)
class MaskPrediction:
    position: int  # index of the mask in FillMask.tokens
    top: list[Candidate]  # the top_k, most probable first
    probabilities: np.ndarray  # [vocab] float32: the whole distribution, for ranks of any token

    def rank(self, token_id: int) -> int:
        """1 for the most probable token; ties share the better rank."""
        return 1 + int((self.probabilities > self.probabilities[token_id]).sum())


@dataclass(frozen=True, eq=False)
class FillMask:
    tokens: list[str]  # the model's tokens of the text
    masks: list[MaskPrediction]  # one per mask token, left to right


def _check_can_fill(loaded: LoadedModel) -> str:
    mask = loaded.tokenizer.mask_token
    if not loaded.has_mlm_head:
        architectures = ", ".join(loaded.config.architectures or []) or type(loaded.model).__name__
        raise FillMaskError(f"'{loaded.spec}' has no masked-LM head ({architectures}), so it can't fill in "
                            "masks: pick a *ForMaskedLM model such as bert-base-uncased or the demo series.")
    if mask is None:
        raise FillMaskError(f"'{loaded.spec}' has no mask token, so it can't fill in masks.")
    return mask


def _no_mask_message(mask: str, text: str, cut_at: int | None) -> str:
    if cut_at is not None:
        return f"The text's {mask} comes after the first {cut_at} tokens, which is all the model reads."
    others = [m for m in ("[MASK]", "<mask>", "[mask]", "<MASK>") if m in text and m != mask]
    hint = f" You wrote {others[0]}, but this model's mask token is {mask}." if others else ""
    return f"The text has no {mask}: write {mask} where the model should fill in a word.{hint}"


def fill_mask(loaded: LoadedModel, text: str, top_k: int = 5, max_chars: int | None = None) -> FillMask:
    """The top_k tokens for every mask in `text`, with the scores of pipeline("fill-mask")."""
    mask = _check_can_fill(loaded)
    encoding, full_length = encode(loaded, text, max_chars=max_chars)
    input_ids = encoding["input_ids"]  # [1, n]
    positions = (input_ids[0] == loaded.tokenizer.mask_token_id).nonzero().flatten().tolist()
    if not positions:
        cut = input_ids.shape[1] if full_length > input_ids.shape[1] and mask in text else None
        raise NoMaskError(_no_mask_message(mask, text, cut))
    inputs = {k: v for k, v in encoding.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.inference_mode():
        logits = loaded.model(**inputs).logits[0, positions]  # [masks, vocab]
    probabilities = logits.float().softmax(dim=-1)
    values, ids = probabilities.topk(min(top_k, probabilities.shape[-1]))
    decode = loaded.tokenizer.decode
    return FillMask(
        tokens=loaded.tokenizer.convert_ids_to_tokens(input_ids[0].tolist()),
        masks=[MaskPrediction(position, [Candidate(i, decode([i]), s) for i, s in zip(row_ids, row_values)],
                              row_probabilities.numpy())
               for position, row_ids, row_values, row_probabilities
               in zip(positions, ids.tolist(), values.tolist(), probabilities)],
    )


# --- checkpoint series ---

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

    Hidden folders (a trainer's `.incomplete/` staging area) are not checkpoints.
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


@dataclass(frozen=True, eq=False)
class CheckpointFill:
    checkpoint: Checkpoint
    result: FillMask | None
    problem: str | None = None  # why there is no result


def fill_checkpoint(checkpoint: Checkpoint, text: str, top_k: int = 5,
                    settings: Settings | None = None) -> CheckpointFill:
    """Load one checkpoint, fill the masks, let the model go. A text without a mask raises
    NoMaskError (it concerns the whole series); anything else wrong with this checkpoint
    becomes its `problem`."""
    if checkpoint.problem:
        return CheckpointFill(checkpoint, None, checkpoint.problem)
    try:
        loaded = load_model(checkpoint.spec, settings)
        return CheckpointFill(checkpoint, fill_mask(loaded, text, top_k,
                                                    settings.max_text_chars if settings else None))
    except NoMaskError:
        raise
    except (ModelLoadError, FillMaskError) as error:
        return CheckpointFill(checkpoint, None, str(error))


def fill_series(checkpoints: list[Checkpoint], text: str, top_k: int = 5, settings: Settings | None = None,
                progress: Callable[[int, Checkpoint], None] | None = None) -> list[CheckpointFill]:
    """fill_checkpoint for each checkpoint in order, one model in memory at a time."""
    fills = []
    for index, checkpoint in enumerate(checkpoints):
        if progress:
            progress(index, checkpoint)
        fills.append(fill_checkpoint(checkpoint, text, top_k, settings))
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


# --- the training log ---

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

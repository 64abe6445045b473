"""Every file a load reads from a model folder lies inside it.

transformers opens whatever a folder names: the shards listed in a weights index
(model.safetensors.index.json's "weight_map"), the tokenizer file tokenizer_config.json picks
("fast_tokenizer_files"), and where a symlink in the folder points. Each is resolved and
checked before anything is loaded. (Vocabulary paths written in tokenizer_config.json, such as
"vocab_file", are ignored by transformers >= 5, which opens the folder's own files.)

    problem = outside_reads(Path("data/runs/checkpoint-800"))   # None, or why the folder is refused
"""
import json
import os
from pathlib import Path

WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_CONFIG = "tokenizer_config.json"


def reading_root(folder: Path) -> Path:
    """The folder a load of `folder` may read from: the folder itself, or for a snapshot in the
    Hugging Face cache (whose files link to ../../blobs) that model's cache folder."""
    real = folder.resolve()
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith("models--"):
        return real.parent.parent
    return real


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def reads_inside(path: Path, folder: Path) -> bool:
    """Does reading `path` (a file of `folder`, perhaps a symlink) stay inside the folder?"""
    return _inside(path, reading_root(folder))


def _links_out(folder: Path, root: Path, recursive: bool) -> list[str]:
    """Symlinks in `folder` and below that resolve outside `root`; only its own files if not `recursive`."""
    found = []
    for where, folders, files in os.walk(folder):  # symlinked folders are listed, never entered
        for name in files + folders if recursive else files:
            path = Path(where, name)
            if path.is_symlink() and not _inside(path, root):
                found.append(f"'{path.relative_to(folder)}' links to '{os.path.realpath(path)}'")
        if not recursive:
            break
    return found


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # transformers says what is wrong with it when it reads it
    return data if isinstance(data, dict) else {}


def _named_out(folder: Path, root: Path, files: tuple[str, ...]) -> list[str]:
    """Files that the JSON files `files` of `folder` name, outside `root`."""
    found = []
    for name in files:
        data = _json(folder / name)
        weight_map = data.get("weight_map")
        named = set(weight_map.values()) if isinstance(weight_map, dict) else set()
        named |= set(data.get("fast_tokenizer_files") or [])
        found += [f"{name} names '{entry}'" for entry in sorted(map(str, named)) if not _inside(folder / entry, root)]
    return found


def outside_reads(folder: Path, tokenizer_only: bool = False) -> str | None:
    """Why loading from `folder` would read a file outside it, or None when it wouldn't.

    `tokenizer_only` checks only what loading its tokenizer reads (the folder's own files, not
    its subfolders): a series folder lending its tokenizer to a checkpoint below it.
    """
    root = reading_root(folder)
    found = _links_out(folder, root, recursive=not tokenizer_only)
    found += _named_out(folder, root, (TOKENIZER_CONFIG,) if tokenizer_only else (*WEIGHT_INDEXES, TOKENIZER_CONFIG))
    if not found:
        return None
    listed = "; ".join(found[:3]) + ("; ..." if len(found) > 3 else "")
    return (f"'{folder}' points outside itself ({listed}), and a model is only ever read from inside its folder. "
            "Copy the files into the folder instead.")

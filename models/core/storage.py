"""Where the app keeps what it makes (trained runs, demo checkpoints, converted models), and
how a folder is written whole or not at all."""
import contextlib
import errno
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STAGING_PREFIX = ".incomplete-"  # a folder being written: hidden, never the name of a run, checkpoint or model
REPLACED_PREFIX = ".replaced-"  # a folder being replaced by a new one saved under its name


def data_dir() -> Path:
    """The app's own data folder: $EXPLORER_DATA_DIR, else `data/` in the project."""
    path = Path(os.environ.get("EXPLORER_DATA_DIR", PROJECT_ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_error_message(error: Exception, where: Path) -> str:
    """What to tell the user when saving under `where` failed with `error` (an OSError, or
    safetensors' SafetensorError, which reports the operating system's error only in its message:
    "I/O error: No space left on device (os error 28)")."""
    os_error = _as_os_error(error)
    if os_error is not None and os_error.errno == errno.ENOSPC:
        return f"The disk is full, so nothing was saved under {where}. Free some space and try again."
    return f"Nothing could be saved under {where}: {(os_error.strerror if os_error else None) or error}."


def _as_os_error(error: Exception) -> OSError | None:
    if isinstance(error, OSError):
        return error
    found = re.search(r"\(os error (\d+)\)", str(error))
    return OSError(int(found.group(1)), os.strerror(int(found.group(1)))) if found else None


def _hidden_beside(final: Path, prefix: str) -> Path:
    return final.parent / f"{prefix}{final.name}-{uuid.uuid4().hex[:8]}"


def move_into_place(staging: Path, final: Path, replace: bool) -> None:
    """Rename `staging` to `final`. A folder already at `final` is moved aside first and removed
    only once the new one is in place (so a failure keeps one of them), or, with replace=False,
    kept as it is (another writer finished first)."""
    if final.exists() and not replace:
        return
    replaced = _hidden_beside(final, REPLACED_PREFIX) if final.exists() else None
    if replaced is not None:
        final.rename(replaced)
    try:
        staging.rename(final)
    except OSError:
        if replaced is not None:
            replaced.rename(final)
        raise
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(final: Path, replace: bool = True) -> Iterator[Path]:
    """A folder written whole or not at all: yields an empty hidden folder beside `final` to write
    into; when the block ends normally it is renamed to `final` (see move_into_place for an
    existing `final`). If the block or the rename raises (a full disk, an interrupt), the staging
    folder is removed, `final` is as it was, and the exception propagates."""
    staging = _hidden_beside(final, STAGING_PREFIX)
    staging.mkdir(parents=True)
    try:
        yield staging
        move_into_place(staging, final, replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

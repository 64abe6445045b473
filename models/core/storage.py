"""Where the app keeps what it makes (trained runs, demo checkpoints)."""
import errno
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The app's own data folder: $EXPLORER_DATA_DIR, else `data/` in the project."""
    path = Path(os.environ.get("EXPLORER_DATA_DIR", PROJECT_ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_error_message(error: OSError, where: Path) -> str:
    """What to tell the user when saving under `where` failed."""
    if error.errno == errno.ENOSPC:
        return f"The disk is full, so nothing was saved under {where}. Free some space and try again."
    return f"Nothing could be saved under {where}: {error.strerror or error}."

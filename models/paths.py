"""Where the app keeps what it makes (trained runs, demo checkpoints)."""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The app's own data folder: $EXPLORER_DATA_DIR, else `data/` in the project."""
    path = Path(os.environ.get("EXPLORER_DATA_DIR", PROJECT_ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path

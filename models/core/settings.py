"""Deployment settings for serving the app to a class, read from the environment.

| variable | meaning | default |
|---|---|---|
| EXPLORER_ALLOWED_FOLDERS | folders (separated by ':') whose models may be loaded; '*' = any | the app's data folder and the Hugging Face cache |
| EXPLORER_ALLOW_HUB | '0' forbids hub ids (only the bundled model and allowed folders) | 1 |
| EXPLORER_MAX_PARAMETERS | largest model, in parameters | 1,000,000,000 |
| EXPLORER_MAX_TEXT_CHARS | longest text accepted, in characters (8,192 tokens of prose take about 40,000) | 100,000 |
| EXPLORER_MAX_MODELS | models kept loaded (shared by all sessions) | 2 |
| EXPLORER_MAX_RUNS | runs kept cached | 16 |
| EXPLORER_MAX_TOKENS | longest run, in tokens (a model's own position limit still applies) | 8,192 |
| EXPLORER_DEVICE | where models run: auto (cuda if available, else mps, else cpu), cpu, cuda or mps | auto |
"""
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants as hub_constants

from models.core.storage import data_dir

DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Settings:
    allowed_folders: tuple[Path, ...] | None  # None: any folder may be loaded
    allow_hub: bool = True
    max_parameters: int = 1_000_000_000
    max_text_chars: int = 100_000
    max_models: int = 2
    max_runs: int = 16
    max_tokens: int = 8_192
    device: str = "auto"  # one of DEVICES

    def folder_allowed(self, folder: Path) -> bool:
        if self.allowed_folders is None:
            return True
        real = folder.resolve()
        return any(real.is_relative_to(root.resolve()) for root in self.allowed_folders)


def _int(environ, name: str, default: int) -> int:
    raw = environ.get(name, "").replace(",", "").replace("_", "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None


def _device(environ) -> str:
    raw = environ.get("EXPLORER_DEVICE", "").strip().lower() or "auto"
    if raw not in DEVICES:
        raise ValueError(f"EXPLORER_DEVICE must be one of {', '.join(DEVICES)}, not {raw!r}")
    return raw


def settings_from_env(environ=os.environ) -> Settings:
    raw_folders = environ.get("EXPLORER_ALLOWED_FOLDERS", "").strip()
    if raw_folders == "*":
        folders = None
    elif raw_folders:
        folders = tuple(Path(p).expanduser() for p in raw_folders.split(os.pathsep) if p)
    else:
        folders = (data_dir(), Path(hub_constants.HF_HUB_CACHE))
    defaults = Settings(allowed_folders=folders)
    return Settings(
        allowed_folders=folders,
        allow_hub=environ.get("EXPLORER_ALLOW_HUB", "1").strip().lower() not in ("0", "false", "no"),
        max_parameters=_int(environ, "EXPLORER_MAX_PARAMETERS", defaults.max_parameters),
        max_text_chars=_int(environ, "EXPLORER_MAX_TEXT_CHARS", defaults.max_text_chars),
        max_models=_int(environ, "EXPLORER_MAX_MODELS", defaults.max_models),
        max_runs=_int(environ, "EXPLORER_MAX_RUNS", defaults.max_runs),
        max_tokens=_int(environ, "EXPLORER_MAX_TOKENS", defaults.max_tokens),
        device=_device(environ),
    )

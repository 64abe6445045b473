"""Shared fixtures: the bundled default model and tiny random-init models of each kind."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for a hub

from tests.tiny_models import save_tiny, save_tiny_1x1  # noqa: E402

TINY_KINDS = ("bert", "distilbert", "roberta", "gpt2", "t5", "bart")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Folders of tiny models by kind, saved once per test session."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: save_tiny(kind, root / kind) for kind in TINY_KINDS}


@pytest.fixture(scope="session")
def tiny_1x1(tmp_path_factory) -> Path:
    """A tiny BERT masked LM with 1 layer of 1 head (tests/tiny_models.save_tiny_1x1)."""
    return save_tiny_1x1(tmp_path_factory.mktemp("tiny-1x1") / "bert-1x1")


@pytest.fixture(scope="session")
def default_model():
    from models import DEFAULT_MODEL, load_model

    return load_model(DEFAULT_MODEL)

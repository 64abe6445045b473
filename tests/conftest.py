"""Shared fixtures: the bundled default model and tiny random-init models of each kind."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for a hub; set before huggingface_hub loads

TINY_KINDS = ("bert", "distilbert", "roberta", "gpt2", "t5", "bart", "llama")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Folders of tiny models by kind, saved once per test session."""
    from tests.tiny_models import save_tiny

    root = tmp_path_factory.mktemp("tiny-models")
    return {kind: save_tiny(kind, root / kind) for kind in TINY_KINDS}


@pytest.fixture(scope="session")
def default_model():
    from models import DEFAULT_MODEL, load_model

    return load_model(DEFAULT_MODEL)

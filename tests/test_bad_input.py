"""Texts that break naive tools run cleanly; weights that would run code are never unpickled."""
import os
import pickle

import numpy as np
import pytest

from models import ModelLoadError, load_model, run_attention
from tests.helpers import ODD_TEXTS


@pytest.mark.parametrize("text", ODD_TEXTS.values(), ids=ODD_TEXTS.keys())
@pytest.mark.parametrize("kind", ["default", "gpt2"])
def test_odd_texts_give_a_valid_run(default_model, tiny_models, kind, text):
    loaded = default_model if kind == "default" else load_model(str(tiny_models[kind]))
    run = run_attention(loaded, text)
    assert run.n == len(run.tokens) > 0
    np.testing.assert_allclose(run.attentions.sum(-1), 1, atol=1e-5)


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


def test_pickled_weights_that_would_run_code_are_refused(tiny_models, tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    for name in os.listdir(tiny_models["bert"]):
        if name != "model.safetensors":
            (folder / name).write_bytes((tiny_models["bert"] / name).read_bytes())
    _RunsCode.marker = tmp_path / "code-ran"
    with open(folder / "pytorch_model.bin", "wb") as weights:
        pickle.dump({"bert.embeddings.word_embeddings.weight": _RunsCode()}, weights)
    with pytest.raises(ModelLoadError):
        load_model(str(folder))
    assert not _RunsCode.marker.exists()

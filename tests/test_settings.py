"""Deployment settings: which folders, whether hub ids, how large a model, how long a text."""
import os
from pathlib import Path

import pytest
import torch

from models import ModelLoadError, RunError, load_model, run_attention
from models.core.loading import resolve_device
from models.core.settings import Settings, settings_from_env
from models.core.storage import data_dir


def test_defaults_allow_only_the_apps_data_and_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path / "data"))
    settings = settings_from_env({})
    assert settings.allowed_folders[0] == data_dir() and "hub" in str(settings.allowed_folders[1])
    assert settings.allow_hub and settings.max_models == 2 and settings.max_runs == 16
    assert settings.folder_allowed(data_dir() / "demo_series" / "checkpoint-5")
    assert not settings.folder_allowed(tmp_path / "elsewhere")


def test_environment_overrides(tmp_path):
    env = {"EXPLORER_ALLOWED_FOLDERS": f"{tmp_path}{os.pathsep}/srv/models", "EXPLORER_ALLOW_HUB": "0",
           "EXPLORER_MAX_PARAMETERS": "5_000_000", "EXPLORER_MAX_TEXT_CHARS": "1,000",
           "EXPLORER_MAX_MODELS": "1", "EXPLORER_MAX_RUNS": "4"}
    assert settings_from_env(env) == Settings((tmp_path, Path("/srv/models")), False, 5_000_000, 1000, 1, 4)
    assert settings_from_env({"EXPLORER_ALLOWED_FOLDERS": "*"}).allowed_folders is None
    with pytest.raises(ValueError, match="EXPLORER_MAX_RUNS"):
        settings_from_env({"EXPLORER_MAX_RUNS": "many"})


def test_a_link_out_of_an_allowed_folder_is_refused(tiny_models, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "escape").symlink_to(tiny_models["bert"])
    with pytest.raises(ModelLoadError, match="doesn't load models from"):
        load_model(str(allowed / "escape"), Settings(allowed_folders=(allowed,)))
    assert load_model(str(tiny_models["bert"]), Settings(allowed_folders=(tiny_models["bert"].parent,)))


def test_hub_ids_can_be_switched_off():
    with pytest.raises(ModelLoadError, match="doesn't load hub models"):
        load_model("gpt2", Settings(allowed_folders=None, allow_hub=False))


def test_models_over_the_parameter_cap_are_refused_before_loading(tiny_models):
    with pytest.raises(ModelLoadError, match=r"parameters; this server loads at most 0M"):
        load_model(str(tiny_models["gpt2"]), Settings(allowed_folders=None, max_parameters=1000))


def test_texts_over_the_cap_are_refused(default_model):
    with pytest.raises(RunError, match="100,000 characters; this server runs at most 20,000"):
        run_attention(default_model, "a" * 100_000, max_chars=20_000)


def test_device_and_longest_run_come_from_the_environment():
    settings = settings_from_env({"EXPLORER_DEVICE": " CPU ", "EXPLORER_MAX_TOKENS": "4,096"})
    assert settings.device == "cpu" and settings.max_tokens == 4096
    defaults = settings_from_env({})
    assert defaults.device == "auto" and defaults.max_tokens == 8192
    with pytest.raises(ValueError, match="EXPLORER_DEVICE must be one of auto, cpu, cuda, mps, not 'tpu'"):
        settings_from_env({"EXPLORER_DEVICE": "tpu"})


def test_auto_device_is_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_a_device_the_machine_lacks_is_a_load_error(tiny_models, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match=r"run models on 'cuda' \(EXPLORER_DEVICE\), which this machine"):
        load_model(str(tiny_models["bert"]), Settings(allowed_folders=None, device="cuda"))


def test_the_longest_run_setting_cuts_texts_under_the_models_own_limit(tiny_models):
    loaded = load_model(str(tiny_models["gpt2"]), Settings(allowed_folders=None, device="cpu", max_tokens=20))
    assert loaded.max_tokens == 20 and loaded.device == torch.device("cpu")
    run = run_attention(loaded, "word " * 50)
    assert run.n == 20 and run.truncated
    assert load_model(str(tiny_models["gpt2"])).max_tokens == 1024  # GPT-2's 1,024 positions

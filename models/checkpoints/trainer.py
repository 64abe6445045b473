"""Train a small BERT masked LM from scratch and keep checkpoints at chosen steps
(command line: `python -m models.checkpoints`).

The output folder gets the tokenizer and `checkpoint-N/` folders (config.json, weights,
trainer_state.json), the layout `models.checkpoints.discovery.find_checkpoints` reads.
"""
import os
import shutil
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tokenizers.pre_tokenizers import BertPreTokenizer
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertTokenizer,
    DataCollatorForLanguageModeling,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from models.core.storage import STAGING_PREFIX, move_into_place

CORPUS_TOKENIZER = "corpus"  # --tokenizer value: build a word-level WordPiece vocab from the text
STAGING = f"{STAGING_PREFIX}checkpoints"  # checkpoints are written here, then renamed into place
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

Progress = Callable[[int, int], None]  # (step done, total steps)


@dataclass
class MLMTrainConfig:
    output_dir: Path
    save_at: list[int]  # steps after which a checkpoint is written
    text_file: Path | None = None  # one example per line
    dataset: str | None = None  # "name:config" of a Hugging Face dataset with a "text" column
    tokenizer: str = CORPUS_TOKENIZER  # CORPUS_TOKENIZER, a folder or a hub id
    vocab_size: int = 8000  # most frequent words kept by the corpus tokenizer
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    dropout: float = 0.1
    init_std: float = 0.02  # std of the initial weights (BERT's initializer_range)
    max_length: int = 64  # tokens per example
    pack: bool = False  # concatenate the text and cut it into max_length blocks
    batch_size: int = 32  # per device
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    mlm_probability: float = 0.15
    logging_steps: int = 10
    seed: int = 0
    quiet: bool = False  # no progress bar or log lines on the console
    extra_args: dict = field(default_factory=dict)  # more TrainingArguments

    @property
    def max_steps(self) -> int:
        return max(self.save_at)


def read_lines(config: MLMTrainConfig) -> list[str]:
    """Non-empty lines of the text file or of the dataset's train split."""
    if config.text_file is not None:
        lines = config.text_file.read_text(encoding="utf-8").splitlines()
    elif config.dataset:
        lines = _dataset_lines(config.dataset)
    else:
        raise SystemExit("Give --text FILE or --dataset NAME:CONFIG.")
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        raise SystemExit("The training text is empty.")
    return lines


def _dataset_lines(name: str) -> list[str]:
    try:
        import datasets  # optional: only needed for hub datasets
    except ImportError:
        raise SystemExit("--dataset needs the 'datasets' package: pip install datasets") from None
    path, _, subset = name.partition(":")
    return list(datasets.load_dataset(path, subset or None, split="train")["text"])


def word_tokenizer(lines: list[str], vocab_size: int) -> BertTokenizer:
    """An uncased WordPiece tokenizer whose vocab is the corpus' most frequent words.

    Single characters and their ##-continuations are in the vocab too, so any other word
    still splits into pieces instead of becoming [UNK].
    """
    split = BertPreTokenizer()  # what BERT splits on: whitespace and punctuation
    counts: dict[str, int] = {}
    for line in lines:
        for word, _ in split.pre_tokenize_str(line.lower()):
            counts[word] = counts.get(word, 0) + 1
    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation) | {c for w in counts for c in w})
    pieces = SPECIAL_TOKENS + chars + ["##" + c for c in chars]
    words = sorted((w for w in counts if w not in pieces), key=lambda w: (-counts[w], w))[:vocab_size]
    return BertTokenizer(vocab={token: i for i, token in enumerate(pieces + words)}, do_lower_case=True)


def load_tokenizer(config: MLMTrainConfig, lines: list[str]) -> PreTrainedTokenizerBase:
    if config.tokenizer == CORPUS_TOKENIZER:
        return word_tokenizer(lines, config.vocab_size)
    return AutoTokenizer.from_pretrained(config.tokenizer)


def tokenize(lines: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int, pack: bool) -> list[dict]:
    """Training examples {"input_ids": [...]}: one per line, or packed blocks of max_length."""
    if not pack:
        ids = tokenizer(lines, truncation=True, max_length=max_length)["input_ids"]
        return [{"input_ids": row} for row in ids]
    stream = [i for row in tokenizer(lines, add_special_tokens=False)["input_ids"] for i in row]
    body = max_length - 2  # room for [CLS] and [SEP] (<s> and </s> in RoBERTa's vocabulary)
    blocks = [stream[start:start + body] for start in range(0, len(stream), body)]
    return [{"input_ids": [tokenizer.cls_token_id, *block, tokenizer.sep_token_id]} for block in blocks]


def small_bert(config: MLMTrainConfig, tokenizer: PreTrainedTokenizerBase) -> BertForMaskedLM:
    bert_config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=4 * config.hidden_size,
        max_position_embeddings=max(config.max_length, 64),
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        initializer_range=config.init_std,
    )
    set_seed(config.seed)  # the initial weights depend on the seed only
    return BertForMaskedLM(bert_config)


class SaveAtSteps(TrainerCallback):
    """Ask the Trainer for a checkpoint after each of the chosen steps."""

    def __init__(self, steps: list[int]):
        self.steps = set(steps)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            control.should_save = True


class ReportProgress(TrainerCallback):
    def __init__(self, progress: Progress):
        self.progress = progress

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.progress(state.global_step, state.max_steps)


class AtomicCheckpointTrainer(Trainer):
    """A Trainer whose `checkpoint-N` folders are always complete.

    Each checkpoint is written under `<output_dir>/.incomplete-checkpoints/` (STAGING) and renamed
    into place once every file is there (models.core.storage.move_into_place), so an interrupted
    write never looks like a checkpoint. The staging folder has one name on every rank (torchrun),
    unlike models.core.storage.staged_folder's, which is why the Trainer doesn't use that.
    """

    _staging = False

    def _get_output_dir(self, trial):
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING) if self._staging else run_dir

    def _save_checkpoint(self, model, trial):
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = False
        self.accelerator.wait_for_everyone()  # every rank has written its RNG state
        if self.args.should_save:
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            run_dir = Path(self._get_output_dir(trial))
            move_into_place(run_dir / STAGING / name, run_dir / name, replace=True)  # replaces an earlier run's
        self.accelerator.wait_for_everyone()


def _cpu_ddp_backend() -> str | None:
    # under torchrun without GPUs the Trainer would run each process alone unless told to use gloo
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return "gloo" if several and not torch.cuda.is_available() else None


def training_arguments(config: MLMTrainConfig) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(config.output_dir),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        weight_decay=0.01,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="no",  # SaveAtSteps decides
        save_only_model=True,  # no optimizer state: checkpoints are for looking at, not resuming
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=config.quiet,
        log_level="error" if config.quiet else "passive",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        ddp_backend=_cpu_ddp_backend(),
        **config.extra_args,
    )


def train_mlm(config: MLMTrainConfig, progress: Progress | None = None) -> Path:
    """Train and write the checkpoints; returns the output folder."""
    lines = read_lines(config)
    tokenizer = load_tokenizer(config, lines)
    trainer = AtomicCheckpointTrainer(
        model=small_bert(config, tokenizer),
        args=training_arguments(config),
        train_dataset=tokenize(lines, tokenizer, config.max_length, config.pack),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=config.mlm_probability),
        callbacks=[SaveAtSteps(config.save_at)] + ([ReportProgress(progress)] if progress else []),
    )
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(config.output_dir)  # checkpoints find it in their parent folder
    if config.quiet:
        trainer.remove_callback(PrinterCallback)  # prints every log line when tqdm is off
    trainer.train()
    if trainer.is_world_process_zero():
        shutil.rmtree(config.output_dir / STAGING, ignore_errors=True)  # empty once every save is renamed
    return config.output_dir

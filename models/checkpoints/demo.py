"""The offline demo series: a small BERT trained on the facts corpus, cached on disk.

    from models.checkpoints.demo import ensure_demo_series
    folder = ensure_demo_series()   # trains once (1-2 minutes on 2 CPU cores), then cached
    # folder/checkpoint-20 ... folder/checkpoint-800, read with models.checkpoints.discovery.find_checkpoints

Early checkpoints answer "The capital of [MASK] is Rome." with frequent words ("the",
"."), middle ones with some country, the last one with "italy".
"""
from pathlib import Path

import torch

from models.checkpoints.demo_corpus import write_corpus
from models.checkpoints.trainer import MLMTrainConfig, Progress, train_mlm
from models.core.storage import data_dir, staged_folder

RECIPE_VERSION = 1  # bump when anything below changes: the cache folder changes with it
SAVE_AT = [20, 50, 100, 200, 350, 500, 650, 800]
N_SENTENCES = 2000


def demo_config(output_dir: Path, corpus: Path, seed: int) -> MLMTrainConfig:
    return MLMTrainConfig(
        output_dir=output_dir,
        save_at=SAVE_AT,
        text_file=corpus,
        hidden_size=128,
        num_layers=2,
        num_heads=4,
        dropout=0.0,  # the corpus is tiny and meant to be memorised
        init_std=0.1,  # larger than BERT's 0.02: attention leaves its uniform start sooner
        batch_size=32,
        learning_rate=1e-3,
        warmup_steps=50,
        mlm_probability=0.25,
        logging_steps=10,
        seed=seed,
        quiet=True,
        extra_args={"max_grad_norm": 0.0},  # clipping slowed the first steps down
    )


def demo_series_dir(seed: int = 0) -> Path:
    return data_dir() / "demo_series" / f"v{RECIPE_VERSION}-seed{seed}"


def demo_series_ready(seed: int = 0) -> bool:
    return demo_series_dir(seed).is_dir()


def ensure_demo_series(seed: int = 0, progress: Progress | None = None) -> Path:
    """The demo series folder, trained first if it isn't cached yet.

    It is built in a hidden staging folder and renamed when complete (models.core.storage.staged_folder),
    so an interrupted build never looks like a series.
    """
    final = demo_series_dir(seed)
    if final.is_dir():
        return final
    threads = torch.get_num_threads()
    try:
        with staged_folder(final, replace=False) as building:  # another session finished first: keep theirs
            corpus = write_corpus(building / "corpus.txt", N_SENTENCES, seed)
            torch.set_num_threads(1)  # tiny matrices: a second thread only adds contention on a shared machine
            train_mlm(demo_config(building, corpus, seed), progress)
    finally:
        torch.set_num_threads(threads)
    return final

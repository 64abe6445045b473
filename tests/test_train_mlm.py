"""models.train_mlm: the checkpoint-series trainer (tiny runs of a few steps), its CLI, its
atomic checkpoint writes, torchrun, and the demo series' cache and interruption."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer

from models import load_model
from models.checkpoints import demo as demo_series
from models.checkpoints.__main__ import main, parse_steps
from models.checkpoints.demo_corpus import FACTS, sentences, write_corpus
from models.checkpoints.discovery import find_checkpoints
from models.checkpoints.trainer import STAGING, MLMTrainConfig, tokenize, train_mlm, word_tokenizer
from models.checkpoints.training_log import read_training_log
from tests.helpers import ROOT

TINY = dict(hidden_size=32, num_layers=2, num_heads=4, batch_size=4, warmup_steps=1, logging_steps=1, quiet=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt", 200, seed=0)


def tiny_config(out: Path, corpus: Path, save_at=(2, 4), **changes) -> MLMTrainConfig:
    return MLMTrainConfig(output_dir=out, save_at=list(save_at), text_file=corpus, **{**TINY, **changes})


def test_the_trainer_writes_checkpoints_with_their_state_and_the_tokenizer(tmp_path, corpus):
    progress = []
    out = train_mlm(tiny_config(tmp_path / "run", corpus), lambda step, total: progress.append((step, total)))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2", "checkpoint-4", "tokenizer.json",
                                                      "tokenizer_config.json"]  # no staging folder left
    for step in (2, 4):
        folder = out / f"checkpoint-{step}"
        assert {"config.json", "model.safetensors", "trainer_state.json"} <= {p.name for p in folder.iterdir()}
        state = json.loads((folder / "trainer_state.json").read_text())
        assert state["global_step"] == step
        assert [e["step"] for e in state["log_history"] if "loss" in e] == list(range(1, step + 1))
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    checkpoints = find_checkpoints(out)
    assert [(c.step, c.problem) for c in checkpoints] == [(2, None), (4, None)]
    log = read_training_log(checkpoints)
    assert log.steps.tolist() == [1, 2, 3, 4] and log.source.endswith("checkpoint-4/trainer_state.json")
    loaded = load_model(str(out / "checkpoint-4"))  # tokenizer found in the folder above
    assert loaded.has_mlm_head and loaded.num_layers == 2 and loaded.num_heads == 4


def test_training_is_deterministic_for_a_seed(tmp_path, corpus):
    def weights(out: Path, seed: int) -> dict:
        train_mlm(tiny_config(out, corpus, save_at=(3,), seed=seed))
        return load_file(out / "checkpoint-3" / "model.safetensors")

    first, again, other = weights(tmp_path / "a", 0), weights(tmp_path / "b", 0), weights(tmp_path / "c", 1)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_an_interrupted_checkpoint_write_never_looks_like_a_checkpoint(tmp_path, corpus, monkeypatch):
    def crash_after_config(self, output_dir, _internal_call=False):
        self.model.config.save_pretrained(output_dir)  # half of a checkpoint, then the machine "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_model", crash_after_config)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_mlm(tiny_config(out, corpus))
    assert not list(out.glob("checkpoint-*"))
    assert (out / STAGING / "checkpoint-2" / "config.json").is_file()  # the partial write stays hidden
    assert find_checkpoints(out) == []


def test_training_again_into_the_same_folder_replaces_its_checkpoints(tmp_path, corpus):
    out = tmp_path / "run"
    train_mlm(tiny_config(out, corpus, save_at=(2,), seed=0))
    first = load_file(out / "checkpoint-2" / "model.safetensors")
    train_mlm(tiny_config(out, corpus, save_at=(2,), seed=1))
    second = load_file(out / "checkpoint-2" / "model.safetensors")
    assert not all(torch.equal(first[name], second[name]) for name in first)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2", "tokenizer.json", "tokenizer_config.json"]


def test_the_corpus_tokenizer_keeps_words_whole_and_spells_unknown_ones():
    tokenizer = word_tokenizer(sentences(300), vocab_size=8000)
    assert tokenizer.tokenize("The capital of [MASK] is Rome.") == ["the", "capital", "of", "[MASK]", "is", "rome", "."]
    assert all(len(tokenizer.tokenize(f.country)) == 1 for f in FACTS)
    pieces = tokenizer.tokenize("zanzibar")
    assert "[UNK]" not in pieces and "".join(p.removeprefix("##") for p in pieces) == "zanzibar"


def test_packing_cuts_the_text_into_full_blocks():
    tokenizer = word_tokenizer(sentences(50), vocab_size=8000)
    blocks = tokenize(sentences(50), tokenizer, max_length=16, pack=True)
    ids = [b["input_ids"] for b in blocks]
    assert all(len(row) == 16 for row in ids[:-1]) and len(ids[-1]) <= 16
    assert all(row[0] == tokenizer.cls_token_id and row[-1] == tokenizer.sep_token_id for row in ids)
    lines = tokenize(sentences(50), tokenizer, max_length=16, pack=False)
    assert len(lines) == 50


def test_the_cli_trains_from_a_text_file(tmp_path, corpus, capsys):
    out = tmp_path / "cli"
    main(["--text", str(corpus), "--out", str(out), "--save-at", "3, 1", "--hidden-size", "32", "--num-layers", "1",
          "--num-heads", "2", "--batch-size", "4", "--quiet"])
    assert capsys.readouterr().out.strip() == str(out)
    assert [c.step for c in find_checkpoints(out)] == [1, 3]
    assert load_model(str(out / "checkpoint-3")).num_layers == 1


def test_the_cli_refuses_bad_steps_and_missing_input(tmp_path):
    with pytest.raises(Exception, match="positive steps"):
        parse_steps("0,10")
    with pytest.raises(SystemExit, match="--text FILE or --dataset"):
        main(["--out", str(tmp_path / "x"), "--save-at", "2"])


def test_the_trainer_runs_under_torchrun_on_two_processes(tmp_path, corpus):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "models.checkpoints",
         "--text", str(corpus), "--out", str(out), "--save-at", "2", "--hidden-size", "32", "--batch-size", "2",
         "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 2 and state["global_step"] == 2
    assert [c.problem for c in find_checkpoints(out)] == [None] and not (out / STAGING).exists()


def test_an_interrupted_demo_build_leaves_no_series(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path))

    def interrupted(config, progress=None):
        (config.output_dir / "checkpoint-20").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_series, "train_mlm", interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo_series.ensure_demo_series()
    assert not demo_series.demo_series_ready()
    assert list((tmp_path / "demo_series").iterdir()) == []


def test_a_cached_demo_series_is_not_trained_again(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(demo_series, "train_mlm", lambda *a, **k: pytest.fail("trained again"))
    demo_series.demo_series_dir().mkdir(parents=True)
    assert demo_series.ensure_demo_series() == demo_series.demo_series_dir()


def test_the_cli_trains_on_the_bundled_bert_vocabulary(tmp_path, corpus):
    out = tmp_path / "bundled"
    main(["--text", str(corpus), "--out", str(out), "--save-at", "1", "--tokenizer", "bundled", "--hidden-size", "32",
          "--batch-size", "2", "--quiet"])
    loaded = load_model(str(out / "checkpoint-1"))
    assert loaded.config.vocab_size == 30522 and loaded.tokenizer.tokenize("Italy") == ["italy"]


def test_a_hub_dataset_without_the_datasets_package_gets_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(SystemExit, match="pip install datasets"):
        main(["--dataset", "wikitext:wikitext-2-raw-v1", "--out", str(tmp_path / "x"), "--save-at", "1"])

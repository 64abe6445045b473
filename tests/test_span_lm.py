"""The adaptive-span language model: training, saved runs, the CLI, the generated corpus."""
import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import SafetensorError

from models.core.storage import STAGING_PREFIX
from models.span import runs as span_runs
from models.span.__main__ import main as train_cli
from models.span.corpus import copy_distance, generate_corpus
from models.span.lm import (
    SpanLM,
    SpanLMConfig,
    SpanTrainConfig,
    TrainingTextError,
    decode_text,
    encode_text,
    train_span_lm,
)

TINY = SpanLMConfig(n_layers=2, n_heads=2, d_model=32, max_span=16, ramp=4, init_fraction=0.5)
FEW_STEPS = SpanTrainConfig(steps=30, batch_size=8, learning_rate=1e-2, span_learning_rate=1e-2, log_every=5)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def tiny_run():
    return train_span_lm(generate_corpus(200), TINY, FEW_STEPS, source="generated corpus")


def test_a_few_steps_lower_the_loss(tiny_run):
    assert tiny_run.history.lm_loss[-1] < tiny_run.history.lm_loss[0] - 0.5


def test_a_few_steps_move_the_spans(tiny_run):
    start, end = tiny_run.history.spans[0], tiny_run.spans()
    np.testing.assert_allclose(start, 0.5 * TINY.max_span)
    assert np.abs(end - start).max() > 1.0


def test_spans_stay_within_zero_and_s(tiny_run):
    spans = tiny_run.history.spans_array()
    assert spans.shape == (len(tiny_run.history.steps), TINY.n_layers, TINY.n_heads)
    assert spans.min() >= 0 and spans.max() <= TINY.max_span


def test_progress_is_reported_at_every_log_and_at_the_end():
    seen = []
    train_span_lm(generate_corpus(50), TINY, SpanTrainConfig(steps=7, batch_size=2, log_every=3), seen.append)
    assert [p.step for p in seen] == [0, 3, 6, 7]
    assert all(p.total_steps == 7 and p.spans.shape == (2, 2) for p in seen)


def test_the_span_mask_is_applied_in_every_head():
    model = SpanLM(SpanLMConfig(vocab_size=5, n_layers=1, n_heads=2, d_model=8, max_span=8, ramp=1,
                                init_fraction=0.0))
    attention, _ = model.blocks[0].attention.weights(torch.randn(1, 8, 8))
    # z = 0 and R = 1: every query keeps only itself
    torch.testing.assert_close(attention[0], torch.eye(8).expand(2, 8, 8), atol=1e-6, rtol=0)


def test_save_and_reload_give_the_same_spans_and_predictions(tiny_run):
    name = span_runs.save_run(tiny_run)
    loaded = span_runs.load_run(name)
    np.testing.assert_array_equal(loaded.spans(), tiny_run.spans())
    ids = encode_text(generate_corpus(5), TINY.max_span)[1][None, : TINY.max_span]
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids), tiny_run.model(ids))
    assert loaded.vocab == tiny_run.vocab and loaded.history.steps == tiny_run.history.steps
    np.testing.assert_allclose(loaded.history.spans_array(), tiny_run.history.spans_array(), atol=1e-4)


def test_saved_runs_are_listed_newest_first(tiny_run):
    older = span_runs.save_run(tiny_run, "z-older")
    meta_path = span_runs.runs_dir() / older / span_runs.META_FILE
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "created": "2001-01-01 00:00:00"}))
    newer = span_runs.save_run(tiny_run)
    infos = span_runs.list_runs()
    assert [info.name for info in infos] == [newer, older]
    assert infos[0].steps == FEW_STEPS.steps and infos[0].source == "generated corpus"
    assert infos[0].mean_span == pytest.approx(float(tiny_run.spans().mean()), abs=1e-3)


def test_a_damaged_run_is_skipped_in_the_list_and_refused_on_load(tiny_run, data_dir):
    name = span_runs.save_run(tiny_run)
    (span_runs.runs_dir() / name / span_runs.META_FILE).write_text("{not json")
    assert span_runs.list_runs() == []
    with pytest.raises(span_runs.SpanRunError, match="damaged"):
        span_runs.load_run(name)


@pytest.mark.parametrize("full", [
    OSError(errno.ENOSPC, "No space left on device"),
    SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),  # what it raises
])
def test_a_full_disk_during_save_says_so_and_leaves_no_run(tiny_run, monkeypatch, full):
    def full_disk(*args, **kwargs):
        raise full

    monkeypatch.setattr(span_runs, "save_file", full_disk)
    with pytest.raises(span_runs.SpanRunError, match="The disk is full, so nothing was saved"):
        span_runs.save_run(tiny_run, "full")
    assert span_runs.list_runs() == [] and not any(span_runs.runs_dir().iterdir())


def test_an_interrupted_save_leaves_nothing_that_looks_like_a_run_and_saving_again_works(tiny_run, monkeypatch):
    real_save_file = span_runs.save_file

    def killed_after_the_weights(tensors, path):  # the process dies between the weights and the meta
        real_save_file(tensors, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(span_runs, "save_file", killed_after_the_weights)
    with pytest.raises(KeyboardInterrupt):
        span_runs.save_run(tiny_run, "interrupted")
    assert span_runs.list_runs() == []
    with pytest.raises(span_runs.SpanRunError, match="no saved run"):
        span_runs.load_run("interrupted")
    monkeypatch.setattr(span_runs, "save_file", real_save_file)
    assert span_runs.save_run(tiny_run, "interrupted") == "interrupted"  # restarted under the same name
    assert [info.name for info in span_runs.list_runs()] == ["interrupted"]
    assert [p.name for p in span_runs.runs_dir().iterdir()] == ["interrupted"]  # the leftover staging is gone


def test_saving_under_an_existing_name_replaces_the_run_and_a_failed_replace_keeps_the_old_one(tiny_run, monkeypatch):
    span_runs.save_run(tiny_run, "same")
    span_runs.save_run(tiny_run, "same")
    assert [p.name for p in span_runs.runs_dir().iterdir()] == ["same"]
    real_rename = Path.rename

    def new_run_refused(path, target):  # e.g. a permission error on the last step
        if path.name.startswith(STAGING_PREFIX):
            raise OSError(errno.EACCES, "Permission denied")
        return real_rename(path, target)

    monkeypatch.setattr(Path, "rename", new_run_refused)
    with pytest.raises(span_runs.SpanRunError):
        span_runs.save_run(tiny_run, "same")
    np.testing.assert_array_equal(span_runs.load_run("same").spans(), tiny_run.spans())
    assert [p.name for p in span_runs.runs_dir().iterdir()] == ["same"]


@pytest.mark.parametrize("name", ["nope", "../etc", "", "a/b"])
def test_loading_an_unknown_or_unsafe_name_is_refused(name):
    with pytest.raises(span_runs.SpanRunError, match="no saved run"):
        span_runs.load_run(name)


def test_a_too_short_text_is_refused_with_a_message():
    with pytest.raises(TrainingTextError, match="at least 34"):
        train_span_lm("short text", TINY, FEW_STEPS)


def test_a_text_with_too_many_characters_is_refused():
    with pytest.raises(TrainingTextError, match="different characters"):
        encode_text("".join(chr(0x4E00 + i) for i in range(600)), 16)


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="divide"):
        SpanLMConfig(n_heads=3, d_model=64)


def test_the_generated_corpus_repeats_each_phrase_at_the_copy_distance():
    line = generate_corpus(1, words_per_phrase=3).rstrip("\n")
    distance = copy_distance(3)
    second_half = range(distance, len(line))
    assert all(line[i] == line[i - distance] for i in second_half)
    assert generate_corpus(20, seed=1) == generate_corpus(20, seed=1) != generate_corpus(20, seed=2)


def test_cli_trains_and_saves_a_run(capsys):
    code = train_cli(["--steps", "3", "--layers", "1", "--heads", "2", "--max-span", "16",
                      "--ramp", "4", "--name", "cli-run"])
    assert code == 0
    assert "saved" in capsys.readouterr().out
    assert span_runs.load_run("cli-run").train_config.steps == 3


def test_cli_trains_on_a_text_file_and_names_the_run_after_it(tmp_path):
    text = tmp_path / "lecture notes.txt"
    text.write_text("attention is all you need. " * 20, encoding="utf-8")
    assert train_cli(["--text", str(text), "--steps", "2", "--layers", "1", "--heads", "1", "--max-span", "16"]) == 0
    (info,) = span_runs.list_runs()
    assert info.source == "lecture notes.txt" and info.name.endswith("-lecture-notes-txt")


def test_cli_reports_bad_settings(capsys):
    assert train_cli(["--heads", "3", "--steps", "1"]) == 2
    assert "divide" in capsys.readouterr().err


def test_cli_reports_a_missing_text_file(tmp_path, capsys):
    assert train_cli(["--text", str(tmp_path / "missing.txt")]) == 2
    assert "Can't read" in capsys.readouterr().err


def test_an_uploaded_file_must_be_utf8_text():
    assert decode_text("héllo".encode("utf-8"), "a.txt") == "héllo"
    with pytest.raises(TrainingTextError, match="photo.png is not UTF-8"):
        decode_text(b"\x89PNG\r\n\x1a\n\xff\xfe", "photo.png")


def test_the_same_seed_gives_the_same_run_and_leaves_the_global_rng_alone():
    config = SpanTrainConfig(steps=3, batch_size=2, log_every=1)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = train_span_lm(generate_corpus(50), TINY, config)
    assert torch.rand(1) == expected_next
    second = train_span_lm(generate_corpus(50), TINY, config)
    assert first.history.lm_loss == second.history.lm_loss
    np.testing.assert_array_equal(first.spans(), second.spans())

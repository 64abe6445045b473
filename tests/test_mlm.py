"""models.mlm: fill-mask against the transformers pipeline, checkpoint series (good, empty,
corrupt, hub ids offline), one model in memory at a time, the training log, trajectories,
and the demo series' story."""
import json
import os
import random
import subprocess
import sys
import weakref
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf
from transformers import pipeline

from models import RunError, load_model, run_attention
from models.checkpoints import series as checkpoint_series
from models.checkpoints.demo_corpus import FACTS, sentences
from models.checkpoints.discovery import Checkpoint, SeriesError, find_checkpoints, hub_checkpoints, multiberts_ids
from models.checkpoints.series import all_candidates, fill_series, final_top, trajectories
from models.checkpoints.trainer import STAGING
from models.checkpoints.training_log import read_training_log
from models.core.predictions import Candidate, FillMaskError, NoMaskError, fill_mask, top_candidates
from models.core.settings import Settings
from tests.helpers import ROOT
from tests.tiny_models import bert_tokenizer, save_tiny_mlm_series, tiny_config

QUESTION = "The capital of [MASK] is Rome."


def pipeline_result(loaded, text: str, top_k: int) -> list[list[dict]]:
    """pipeline("fill-mask") on the very same model, one list per mask."""
    result = pipeline("fill-mask", model=loaded.model, tokenizer=loaded.tokenizer)(text, top_k=top_k)
    return result if isinstance(result[0], list) else [result]


def assert_same_as_pipeline(loaded, text: str, top_k: int) -> None:
    ours, theirs = fill_mask(loaded, text, top_k), pipeline_result(loaded, text, top_k)
    assert len(ours.masks) == len(theirs)
    for mask, expected in zip(ours.masks, theirs):
        assert [c.token_id for c in mask.top] == [e["token"] for e in expected]
        assert [c.token for c in mask.top] == [e["token_str"] for e in expected]
        np.testing.assert_allclose([c.probability for c in mask.top], [e["score"] for e in expected], rtol=1e-6)


@pytest.fixture(scope="module")
def tiny_series(tmp_path_factory) -> Path:
    return save_tiny_mlm_series(tmp_path_factory.mktemp("mlm-series"))


# --- fill-mask on one model ---

@pytest.mark.parametrize("text, top_k", [(QUESTION, 5), ("[MASK] cat sat on the [MASK].", 12)])
def test_fill_mask_equals_the_pipeline_on_a_tiny_model(tiny_models, text, top_k):
    assert_same_as_pipeline(load_model(str(tiny_models["bert"])), text, top_k)


def test_a_bert_pretraining_checkpoint_fills_masks_like_the_pipeline(tmp_path):
    """MultiBERTs are saved as BertForPreTraining: the masked-LM head is in there."""
    config = tiny_config("bert")
    config.architectures = ["BertForPreTraining"]
    torch.manual_seed(0)
    tf.BertForPreTraining(config).save_pretrained(tmp_path)
    bert_tokenizer().save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    assert loaded.has_mlm_head
    assert_same_as_pipeline(loaded, QUESTION, 5)


def test_probabilities_and_ranks_cover_the_whole_vocabulary(tiny_models):
    loaded = load_model(str(tiny_models["bert"]))
    prediction = fill_mask(loaded, QUESTION, top_k=3).masks[0]
    assert prediction.probabilities.shape == (loaded.config.vocab_size,)
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-4)
    assert [prediction.rank(c.token_id) for c in prediction.top] == [1, 2, 3]
    order = np.argsort(-prediction.probabilities)
    assert prediction.rank(int(order[100])) == 101


def test_top_candidates_rank_a_distribution_as_the_pipeline_writes_tokens():
    tokenizer = bert_tokenizer()
    probabilities = torch.zeros(len(tokenizer))
    probabilities[[7, 3, 11]] = torch.tensor([0.2, 0.5, 0.3])
    top = top_candidates(tokenizer, probabilities, 2)
    assert top == [Candidate(3, tokenizer.decode([3]), 0.5), Candidate(11, tokenizer.decode([11]), pytest.approx(0.3))]
    # k beyond the vocabulary: all of it, or all but its special tokens ([PAD] is id 0)
    assert len(top_candidates(tokenizer, probabilities[:5], 10, include_special=True)) == 5
    without_special = [c.token_id for c in top_candidates(tokenizer, probabilities[:5], 10)]
    assert without_special[0] == 3 and sorted(without_special) == [1, 2, 3, 4]


@pytest.mark.parametrize("kind", ["distilbert", "roberta", "gpt2"])
def test_a_model_without_a_masked_lm_head_is_refused(tiny_models, kind):
    with pytest.raises(FillMaskError, match="no masked-LM head"):
        fill_mask(load_model(str(tiny_models[kind])), "The capital of <mask> is [MASK].")


def test_masks_in_sentence_b_are_filled_at_the_runs_positions(tiny_models):
    loaded = load_model(str(tiny_models["bert"]))
    run = run_attention(loaded, "The capital of [MASK].", "It is [MASK].")
    filled = fill_mask(loaded, "The capital of [MASK].", text_pair="It is [MASK].")
    assert filled.tokens == run.tokens
    assert [m.position for m in filled.masks] == [i for i, t in enumerate(run.tokens) if t == "[MASK]"] == [4, 9]


def test_a_text_without_the_models_mask_says_which_token_to_write(tiny_models):
    loaded = load_model(str(tiny_models["bert"]))
    with pytest.raises(NoMaskError, match=r"no \[MASK\].*You wrote <mask>"):
        fill_mask(loaded, "The capital of <mask> is Rome.")
    with pytest.raises(NoMaskError, match="after the first 512 tokens"):
        fill_mask(loaded, "word " * 600 + "[MASK]")


# --- finding checkpoints ---

def _write(path: Path, text: str = "{}") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_find_checkpoints_orders_by_step_and_names_each_broken_one(tmp_path):
    for step in (9, 100, 10):
        _write(tmp_path / f"checkpoint-{step}" / "config.json")
        _write(tmp_path / f"checkpoint-{step}" / "model.safetensors", "x")
    _write(tmp_path / "checkpoint-5" / "model.safetensors", "x")  # no config: half-written
    _write(tmp_path / "checkpoint-7" / "config.json", "{not json")
    _write(tmp_path / "checkpoint-7" / "model.safetensors", "x")
    _write(tmp_path / "checkpoint-8" / "config.json")  # no weights
    _write(tmp_path / "checkpoint-11" / "config.json")
    _write(tmp_path / "checkpoint-11" / "pytorch_model.bin", "")  # empty weights
    _write(tmp_path / STAGING / "checkpoint-12" / "config.json")  # the trainer's staging area
    _write(tmp_path / "checkpoint-13")  # a file, not a folder
    _write(tmp_path / "runs" / "config.json")
    found = find_checkpoints(tmp_path)
    assert [c.step for c in found] == [5, 7, 8, 9, 10, 11, 100]
    assert [c.spec for c in found][3:5] == [str(tmp_path / "checkpoint-9"), str(tmp_path / "checkpoint-10")]
    problems = {c.step: c.problem for c in found}
    assert "no config.json" in problems[5] and "not valid JSON" in problems[7]
    assert "no weights file" in problems[8] and "weights file is empty" in problems[11]
    assert problems[9] is problems[10] is problems[100] is None
    assert [c.label for c in found][-1] == "step 100"


def test_find_checkpoints_on_an_empty_or_missing_folder(tmp_path):
    assert find_checkpoints(tmp_path) == []
    with pytest.raises(SeriesError, match="does not exist"):
        find_checkpoints(tmp_path / "missing")
    _write(tmp_path / "file.txt")
    with pytest.raises(SeriesError, match="is a file"):
        find_checkpoints(tmp_path / "file.txt")


def test_hub_ids_offline_get_a_message_each_after_one_network_check():
    calls = []

    def offline() -> bool:
        calls.append(1)
        return False

    ids = multiberts_ids(0)
    assert len(ids) == 29 and ids[0].endswith("step_0k") and ids[-1].endswith("step_2000k")
    shuffled = random.Random(0).sample(ids, len(ids))
    found = hub_checkpoints(shuffled + ["  "], reachable=offline)
    assert [c.spec for c in found] == ids  # ordered by the step in the name
    assert found[1].step == 20_000 and found[1].label == "step 20,000"
    assert all("can't be reached" in c.problem and c.spec in c.problem for c in found)
    assert len(calls) == 1


def test_hub_ids_without_steps_keep_their_order():
    found = hub_checkpoints(["org/b", "org/a"], reachable=lambda: True)
    assert [(c.spec, c.step, c.problem, c.label) for c in found] == [("org/b", None, None, "b"),
                                                                    ("org/a", None, None, "a")]


# --- a series ---

def test_a_series_fills_every_checkpoint_and_reports_the_broken_ones(tmp_path):
    folder = save_tiny_mlm_series(tmp_path, steps=(10, 20, 30, 40))
    weights = folder / "checkpoint-20" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a half-written file
    (folder / "checkpoint-30" / "model.safetensors").unlink()
    seen = []
    fills = fill_series(find_checkpoints(folder), QUESTION, top_k=4, progress=lambda i, c: seen.append(c.step))
    assert seen == [10, 20, 30, 40]
    assert [f.result is not None for f in fills] == [True, False, False, True]
    assert "Couldn't load" in fills[1].problem and "no weights file" in fills[2].problem
    reference = load_model(str(folder / "checkpoint-40"))
    assert [c.token_id for c in fills[3].result.masks[0].top] == [e["token"] for e in
                                                                 pipeline_result(reference, QUESTION, 4)[0]]


def test_a_checkpoint_that_fails_on_a_server_is_one_problem_and_a_long_text_one_error(tmp_path):
    folder = save_tiny_mlm_series(tmp_path, steps=(10, 20, 30))
    for step, changes in ((10, {"attn_implementation": "flash_attention_2"}), (20, {"hidden_size": 30})):
        config = folder / f"checkpoint-{step}" / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), **changes}))
    server = Settings(allowed_folders=(tmp_path,), max_text_chars=40)
    fills = fill_series(find_checkpoints(folder), QUESTION, settings=server)
    assert [f.result is not None for f in fills] == [True, False, True]  # the app's attention, whatever the config
    assert "counting its parameters failed with ValueError" in fills[1].problem
    with pytest.raises(RunError, match="runs at most 40"):  # the text's problem, said once for the series
        fill_series(find_checkpoints(folder), QUESTION + " " * 40, settings=server)


def test_a_series_refuses_a_text_without_a_mask_once(tiny_series):
    with pytest.raises(NoMaskError):
        fill_series(find_checkpoints(tiny_series), "The capital of Italy is Rome.")


def test_a_series_keeps_one_model_in_memory_at_a_time(tmp_path, monkeypatch):
    folder = save_tiny_mlm_series(tmp_path, steps=tuple(range(1, 31)))
    alive: list[weakref.ref] = []
    most = []

    def tracked_load(spec, settings=None):  # freed by reference counting, no gc.collect() needed
        most.append(sum(ref() is not None for ref in alive))
        loaded = load_model(spec, settings)
        alive.append(weakref.ref(loaded.model))
        return loaded

    monkeypatch.setattr(checkpoint_series, "load_model", tracked_load)
    fills = fill_series(find_checkpoints(folder), QUESTION)
    assert len(fills) == 30 and all(f.result is not None for f in fills)
    assert max(most) == 0 and not any(ref() is not None for ref in alive)


def test_trajectories_follow_each_candidate_across_the_series(tiny_series):
    checkpoints = find_checkpoints(tiny_series) + [Checkpoint("missing", 5000, "gone")]
    fills = fill_series(checkpoints, "[MASK] is the capital of [MASK].", top_k=3)
    candidates = final_top(fills, mask_index=1)
    assert candidates == fills[2].result.masks[1].top  # the last checkpoint with a result
    union = all_candidates(fills, mask_index=1)
    assert len({c.token_id for c in union}) == len(union) >= 3
    assert {c.token_id for c in candidates} <= {c.token_id for c in union}
    paths = trajectories(fills, candidates, mask_index=1)
    assert paths.labels == ["step 10", "step 100", "step 1,000", "step 5,000"]
    assert paths.tokens == [c.token for c in candidates]
    assert paths.rank[:, 2].tolist() == [1, 2, 3]
    np.testing.assert_allclose(paths.probability[:, 2], [c.probability for c in candidates], rtol=1e-6)
    first = fills[0].result.masks[1]
    assert paths.probability[0, 0] == pytest.approx(first.probabilities[candidates[0].token_id])
    assert paths.rank[0, 0] == first.rank(candidates[0].token_id)
    assert np.isnan(paths.probability[:, 3]).all() and np.isnan(paths.rank[:, 3]).all()


# --- the training log ---

def test_the_training_log_comes_from_the_latest_readable_trainer_state(tiny_series, tmp_path):
    log = read_training_log(find_checkpoints(tiny_series))
    assert log.steps[0] == 10 and log.steps[-1] == 1000 and len(log.steps) == len(log.loss) == 100
    assert log.source == str(tiny_series / "checkpoint-1000" / "trainer_state.json")
    folder = save_tiny_mlm_series(tmp_path, steps=(10, 20))
    (folder / "checkpoint-20" / "trainer_state.json").write_text('{"log_history": [')  # cut short
    assert read_training_log(find_checkpoints(folder)).steps.tolist() == [10]
    (folder / "checkpoint-10" / "trainer_state.json").unlink()
    assert read_training_log(find_checkpoints(folder)) is None
    outside = tiny_series / "checkpoint-1000" / "trainer_state.json"  # a log whose losses would be shown
    (folder / "checkpoint-10" / "trainer_state.json").symlink_to(outside)
    assert read_training_log(find_checkpoints(folder)) is None  # only files inside a checkpoint are read


# --- the demo series ---

@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    """The real demo series, built once by the CLI into a tmp data folder."""
    data = tmp_path_factory.mktemp("demo-data")
    result = subprocess.run([sys.executable, "-m", "models.checkpoints", "--demo"], cwd=ROOT, capture_output=True,
                            text=True, timeout=900, env={**os.environ, "EXPLORER_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])


def test_the_demo_series_learns_frequent_words_first_and_the_right_country_last(demo_folder):
    checkpoints = find_checkpoints(demo_folder)
    assert [c.step for c in checkpoints] == [20, 50, 100, 200, 350, 500, 650, 800]
    fills = fill_series(checkpoints, QUESTION, top_k=5)
    first, last = fills[0].result.masks[0], fills[-1].result.masks[0]
    corpus = Counter(" ".join(sentences(2000)).lower().replace(".", " . ").split())
    frequent = {word for word, _ in corpus.most_common(10)}
    assert first.top[0].token in frequent and first.top[0].token != "italy"
    italy = [c for c in all_candidates(fills) if c.token == "italy"][0]
    assert first.rank(italy.token_id) > 5
    assert last.top[0].token == "italy"
    loaded = load_model(checkpoints[-1].spec)  # not memorised for Rome alone: every capital's country
    right = [fill_mask(loaded, f"The capital of [MASK] is {f.capital}.").masks[0].top[0].token == f.country.lower()
             for f in FACTS]
    assert sum(right) >= 0.9 * len(FACTS)


def test_fill_mask_equals_the_pipeline_on_the_demo_series(demo_folder):
    for checkpoint in find_checkpoints(demo_folder)[::3]:
        assert_same_as_pipeline(load_model(checkpoint.spec), "[MASK] is the capital of [MASK].", 8)

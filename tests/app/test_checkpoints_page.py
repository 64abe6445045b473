"""The Checkpoints page through AppTest: a tiny series from a folder, the demo series (built from
the page with a stand-in trainer), hub ids offline, and every kind of bad input."""
import errno

import numpy as np
import pandas as pd
import pytest
import transformers as tf

import pages.checkpoints as checkpoints_page
from models import load_model, run_attention
from models.checkpoints.demo import demo_series_dir
from models.core.predictions import fill_mask
from tests.app.helpers import array, figure, figures, messages, open_app, topk_tables
from tests.tiny_models import save_tiny_mlm_series
from viz.labels import display_token

PAGE = "pages/checkpoints.py"
TEXT = "The capital of [MASK] is Rome."
STEPS = (10, 100, 1000)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return save_tiny_mlm_series(tmp_path_factory.mktemp("checkpoints-page"), steps=STEPS)


def _open_folder(folder, **query):
    return open_app(PAGE, ckpt_source="folder", ckpt_folder=str(folder), **query)


def tables(at) -> list[pd.DataFrame]:
    """The page's top-k tables (HTML) as text frames: a column per checkpoint, a row per rank."""
    return [pd.DataFrame([r[1:] for r in rows[1:]], columns=rows[0][1:], index=[r[0] for r in rows[1:]])
            for rows in topk_tables(at)]


def _healthy(at) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _reference(series, step: int, text: str = TEXT, top_k: int = 5):
    return fill_mask(load_model(str(series / f"checkpoint-{step}")), text, top_k)


def test_the_table_puts_each_checkpoints_top_k_side_by_side_in_step_order(series):
    at = _open_folder(series)
    _healthy(at)
    table = tables(at)[0]
    assert list(table.columns) == ["step 10", "step 100", "step 1,000"]
    for step, column in zip(STEPS, table.columns):
        top = _reference(series, step).masks[0].top
        assert table[column].tolist() == [f"{display_token(c.token)} {c.probability:.1%}" for c in top]


def test_trajectories_default_to_the_final_top_k_and_follow_a_chosen_word(series):
    at = _open_folder(series)
    final = _reference(series, 1000).masks[0]
    assert at.multiselect(key="ckpt_candidates").value == [c.token for c in final.top]
    probability = figure(at, "Probability of each candidate at mask 1")
    assert [t["name"] for t in probability["data"]] == [display_token(c.token) for c in final.top]
    assert probability["layout"]["yaxis"]["type"] == "log" and probability["layout"]["xaxis"]["type"] == "log"
    word = final.top[2]
    at.multiselect(key="ckpt_candidates").set_value([word.token]).run()
    _healthy(at)
    first = _reference(series, 10).masks[0]
    line = figure(at, "Probability of each candidate at mask 1")["data"]
    assert len(line) == 1 and list(line[0]["x"]) == list(STEPS)
    np.testing.assert_allclose(array(line[0]["y"]), [_reference(series, s).masks[0].probabilities[word.token_id]
                                                     for s in STEPS], rtol=1e-5)
    rank = figure(at, "Rank of each candidate at mask 1")
    assert array(rank["data"][0]["y"])[0] == first.rank(word.token_id) and array(rank["data"][0]["y"])[2] == 3
    assert rank["layout"]["yaxis"]["autorange"] == "reversed"
    at.toggle(key="ckpt_log").set_value(False).run()
    assert figure(at, "Probability of each candidate at mask 1")["layout"]["yaxis"]["type"] == "linear"


def test_two_masks_get_a_table_each_and_a_choice_of_mask(series):
    text = "[MASK] is the capital of [MASK]."
    at = _open_folder(series, ckpt_text=text)
    _healthy(at)
    assert len(tables(at)) == 2
    second = _reference(series, 1000, text).masks[1]
    assert tables(at)[1]["step 1,000"].tolist()[0] == f"{display_token(second.top[0].token)} " \
                                                              f"{second.top[0].probability:.1%}"
    at.segmented_control(key="ckpt_mask").set_value("mask 2").run()
    _healthy(at)
    assert [t["name"] for t in figure(at, "Probability of each candidate at mask 2")["data"]] == [display_token(c.token)
                                                                                for c in second.top]


def test_the_loss_curve_marks_every_checkpoint(series):
    at = _open_folder(series)
    loss = figure(at, "Training loss, with the checkpoints marked")["data"]
    assert array(loss[0]["x"])[[0, -1]].tolist() == [10, 1000]
    assert list(loss[1]["x"]) == list(STEPS)
    np.testing.assert_allclose(array(loss[1]["y"]), [6.0 / (1 + s / 50) for s in STEPS], rtol=1e-6)


def test_two_checkpoints_attention_side_by_side_follows_the_focus(series):
    at = _open_folder(series)
    assert at.selectbox(key="ckpt_a").value == "step 10" and at.selectbox(key="ckpt_b").value == "step 1,000"
    figure(at, "step 10: all heads")
    at.selectbox(key="ckpt_a").set_value("step 100").run()
    at.slider(key="ckpt_layer").set_value(1).run()
    at.slider(key="ckpt_head").set_value(3).run()
    _healthy(at)
    heads = []
    for step, label in ((100, "step 100"), (1000, "step 1,000")):
        run = run_attention(load_model(str(series / f"checkpoint-{step}")), TEXT)
        heatmap = figure(at, f"{label}: layer 1, head 3")["data"][0]
        np.testing.assert_allclose(array(heatmap["z"]), run.attentions[1, 3], atol=1e-6)
        heads.append((heatmap["zmax"], run.attentions[1, 3].max()))
    assert heads[0][0] == heads[1][0] == pytest.approx(max(m for _, m in heads))  # one colour scale


def test_a_text_without_a_mask_is_explained_and_kept(series):
    text = "The capital of <mask> is Rome."
    at = _open_folder(series, ckpt_text=text)
    _healthy(at)
    assert "has no [MASK]" in messages(at) and "You wrote <mask>" in messages(at)
    assert at.text_input(key="ckpt_text").value == text
    assert not tables(at) and not figures(at)


def test_broken_checkpoints_are_named_and_the_rest_shown(tmp_path):
    folder = save_tiny_mlm_series(tmp_path / "series", steps=(1, 2, 3, 4))
    weights = folder / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # half-written
    (folder / "checkpoint-3" / "config.json").unlink()
    at = _open_folder(folder)
    _healthy(at)
    warning = messages(at)
    assert "2 of 4 checkpoints can't be shown" in warning
    assert "step 2" in warning and "Couldn't load" in warning and "checkpoint-3 has no config.json" in warning
    assert list(tables(at)[0].columns) == ["step 1", "step 4"]


def test_checkpoints_without_a_masked_lm_head_are_named(tmp_path):
    folder = save_tiny_mlm_series(tmp_path / "series", steps=(5,))
    config = tf.BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=37, architectures=["BertModel"])
    tf.BertModel(config).save_pretrained(folder / "checkpoint-9")
    at = _open_folder(folder)
    _healthy(at)
    assert "step 9" in messages(at)
    assert "no masked-LM head (BertModel)" in messages(at)
    assert list(tables(at)[0].columns) == ["step 5"]


@pytest.mark.parametrize("make, expected", [
    (lambda tmp: tmp, "holds no checkpoint-N folders"),
    (lambda tmp: tmp / "missing", "does not exist"),
])
def test_a_folder_that_is_no_series_is_explained(tmp_path, make, expected):
    at = _open_folder(make(tmp_path))
    assert not at.exception
    assert expected in messages(at)
    assert not tables(at) and not figures(at)


def test_a_folder_outside_the_allowed_ones_is_not_read():
    at = _open_folder("/etc")
    assert "doesn't read '/etc'" in messages(at)


def test_hub_ids_offline_get_a_message_each_quickly():
    at = open_app(PAGE, ckpt_source="hub ids")
    assert "List hub ids" in messages(at)
    at.button[0].click().run()  # the MultiBERTs preset
    assert not at.exception
    text = messages(at)
    assert "29 of 29 checkpoints can't be shown" in text
    assert text.count("can't be reached") == 29 and "google/multiberts-seed_0-step_2000k" in text
    assert "no loss curve" in text and not tables(at)


def test_a_full_disk_while_training_the_demo_series_is_explained(monkeypatch):
    def full_disk(seed=0, progress=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints_page, "ensure_demo_series", full_disk)
    at = open_app(PAGE)
    at.button[0].click().run()
    assert not at.exception
    assert "The disk is full, so nothing was saved" in messages(at)


def test_the_demo_series_is_trained_from_the_page_with_progress(series, monkeypatch):
    at = open_app(PAGE)
    assert "demo series isn't built yet" in messages(at)
    reports = []

    def stand_in(seed=0, progress=None):  # the real training is tested in tests/test_mlm.py
        for step in (1, 2):
            progress(step, 2)
            reports.append(step)
        demo_series_dir().parent.mkdir(parents=True, exist_ok=True)
        demo_series_dir().symlink_to(series, target_is_directory=True)
        return demo_series_dir()

    monkeypatch.setattr(checkpoints_page, "ensure_demo_series", stand_in)
    at.button[0].click().run()
    _healthy(at)
    assert reports == [1, 2]
    assert list(tables(at)[0].columns) == ["step 10", "step 100", "step 1,000"]

"""The Adaptive attention span page through AppTest, with tiny saved runs in a tmp data folder."""
import time

import numpy as np
import pytest

from models.span.corpus import generate_corpus
from models.span.lm import SpanLMConfig, SpanTrainConfig, train_span_lm
from models.span.mask import apply_span
from models.span.runs import list_runs, load_run, save_run
from pages._shared import time_left
from tests.app.helpers import array, figure, messages, open_app

PAGE = "pages/adaptive_span.py"
TINY = SpanLMConfig(n_layers=2, n_heads=2, d_model=16, max_span=16, ramp=4, init_fraction=0.5)
TINY_TRAINING = dict(layers=1, heads=1, S=32, steps=20)  # the page's smallest choices: a second or two


@pytest.fixture
def saved_run() -> str:
    """A tiny run saved in this test's data folder (conftest points EXPLORER_DATA_DIR there)."""
    run = train_span_lm(generate_corpus(100), TINY, SpanTrainConfig(steps=12, batch_size=4, span_learning_rate=0.02, log_every=4),
                source="generated corpus")
    return save_run(run, "tiny-run")


def _traces(fig: dict, name_start: str) -> list[dict]:
    return [t for t in fig["data"] if t.get("name", "").startswith(name_start)]


def _set_training(at, layers: int, heads: int, S: int, steps: int):
    at.slider(key="train_layers").set_value(layers)
    at.select_slider(key="train_heads").set_value(heads)
    at.select_slider(key="train_S").set_value(S)
    at.select_slider(key="train_steps").set_value(steps)
    return at


def test_formula_and_curve_follow_the_sliders():
    at = open_app(PAGE)
    assert not at.exception and not at.error
    assert any("min" in latex.value and "R + z - x" in latex.value for latex in at.latex)
    curve = _traces(figure(at, "Soft span mask"), "focused head")[0]
    np.testing.assert_allclose(array(curve["x"]), [0, 6, 10, 32])
    np.testing.assert_allclose(array(curve["y"]), [1, 1, 0, 0])
    at.slider(key="span_z").set_value(20).run()
    at.slider(key="span_R").set_value(8).run()
    fig = figure(at, "Soft span mask, S = 32, R = 8")
    np.testing.assert_allclose(array(_traces(fig, "focused head")[0]["x"]), [0, 20, 28, 32])
    assert len(_traces(fig, "z = ")) == 3  # the other heads 2, 14, 24


def test_a_smaller_s_clamps_z_and_other_spans_are_drawn_at_s():
    at = open_app(PAGE, span_z="30", span_others="8, 100")
    at.select_slider(key="span_S").set_value(16).run()
    assert at.slider(key="span_z").value == 16
    fig = figure(at, "Soft span mask, S = 16")
    assert array(_traces(fig, "z = 100")[0]["x"]).max() == 16
    assert "drawn at S" in messages(at) and not at.exception


def test_a_bad_other_span_is_named_and_the_page_goes_on():
    at = open_app(PAGE, span_others="4, ten")
    assert "'ten' is not a number" in messages(at)
    assert figure(at, "Before: layer 0, head 0") and not at.exception


def test_the_mask_applied_to_the_live_model_matches_the_formula():
    at = open_app(PAGE, span_z="1", span_R="2", span_layer="2", span_head="5")
    before = array(figure(at, "Before: layer 2, head 5")["data"][0]["z"])
    shown = array(figure(at, "After the span mask (z = 1, R = 2)")["data"][0]["z"])
    effect = apply_span(before, z=1, ramp=2, causal=False)
    np.testing.assert_array_equal(np.isnan(shown), effect.mask == 0)  # cut cells are drawn grey
    after = np.nan_to_num(shown)
    np.testing.assert_allclose(after, effect.after, atol=1e-5)
    np.testing.assert_allclose(after.sum(-1), 1, atol=1e-5)
    assert after[0, 0] > before[0, 0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cells set to zero"] == f"{effect.zeroed_share:.0%}"
    np.testing.assert_allclose(array(figure(at, "Attention mass each query loses")["data"][0]["y"]),
                               effect.removed, atol=1e-4)


def test_a_span_beyond_the_text_changes_nothing():
    at = open_app(PAGE, span_S="64", span_z="64")
    before = array(figure(at, "Before: layer 0, head 0")["data"][0]["z"])
    after = array(figure(at, "After the span mask")["data"][0]["z"])
    np.testing.assert_allclose(after, before, atol=1e-5)
    assert {m.label: m.value for m in at.metric}["Cells set to zero"] == "0%"


def test_a_decoder_masks_by_causal_distance(tiny_models):
    at = open_app(PAGE, model=str(tiny_models["gpt2"]), text="One two three four.", span_z="0", span_R="1")
    after = array(figure(at, "After the span mask")["data"][0]["z"])
    np.testing.assert_allclose(np.nan_to_num(after), np.eye(len(after)), atol=1e-5)  # each token keeps itself
    assert any("causal" in c.value for c in at.caption)


def test_without_runs_the_page_says_how_to_get_one():
    at = open_app(PAGE)
    assert "No trained run" in messages(at)
    assert at.expander[0].proto.expanded  # the training form is open


def test_training_time_is_stated_as_a_range_and_the_bar_estimates_what_is_left():
    at = open_app(PAGE)
    said = " ".join(c.value for c in at.caption) + messages(at)
    assert "about a minute" not in said  # it took 18 min on this shared 2-core machine
    assert "many minutes when other work shares the machine" in said
    assert time_left(time.perf_counter() - 10, 1, 4) == "about 30 s left"  # the pace so far: 10 s a step
    assert time_left(time.perf_counter() - 60, 1, 4) == "about 3 min left"


def test_a_saved_run_opens_with_all_its_views(saved_run):
    at = open_app(PAGE)
    assert at.selectbox(key="span_run").value == saved_run
    spans = load_run(saved_run).spans()
    bars = figure(at, "Learned spans, 2 layers × 2 heads")
    np.testing.assert_allclose([array(trace["y"]) for trace in bars["data"]], spans.T, atol=1e-4)
    assert len(figure(at, "Masking curves of every head")["data"]) == 4
    history = figure(at, "Spans and loss over 12 steps")
    assert len(history["data"]) == 5  # four heads and the loss
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Average span read (z + R, at most S)"].endswith("of 16")
    assert not at.exception and not at.error


def test_a_link_to_a_missing_run_warns_and_shows_the_newest(saved_run):
    at = open_app(PAGE, span_run="no-such-run")
    assert "isn't on this machine" in messages(at)
    assert at.selectbox(key="span_run").value == saved_run


def test_training_from_the_page_saves_and_opens_the_new_run():
    at = open_app(PAGE)
    _set_training(at, **TINY_TRAINING).button[0].click().run()
    assert not at.exception and not at.error
    assert [s.value for s in at.success][0].startswith("Trained in")
    (info,) = list_runs()
    assert at.selectbox(key="span_run").value == info.name and info.steps == 20
    figure(at, "Learned spans, 1 layer × 1 head")


def test_training_on_an_uploaded_text_and_refusing_a_binary_file():
    at = open_app(PAGE, train_text="my text file")
    _set_training(at, **TINY_TRAINING)
    at.file_uploader[0].set_value(("photo.txt", b"\x89PNG\r\n\x1a\n\xff\xfe", "text/plain"))
    at.button[0].click().run()
    assert "photo.txt is not UTF-8" in messages(at) and not list_runs()
    at.file_uploader[0].set_value(("notes.txt", ("the cat sat on the mat. " * 40).encode(), "text/plain"))
    at.button[0].click().run()
    assert [info.source for info in list_runs()] == ["notes.txt"]


def test_choosing_a_text_file_without_one_asks_for_it():
    at = open_app(PAGE, train_text="my text file")
    _set_training(at, **TINY_TRAINING).button[0].click().run()
    assert "Choose a text file" in messages(at) and not list_runs()

"""The Heads page on a long text (issue 19): a tiny Llama at about 1,200 tokens, forced into a long
run (its weights would fit whole: FULL_WEIGHTS_BYTES is set to 0, AppTest runs in-process).

Every view is checked against the run's own exact weights (run.head) or the models.core.tiles
computation it shows; the run is the page's own, read from the shared cache.
"""
import base64
import html
import re

import numpy as np
import pytest
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.scriptrunner_utils.exceptions import StopException

import models.core.run as core_run
from models.analysis.head_stats import HeadMetric, head_statistics
from models.analysis.numerics import block_pooled, pooled
from models.core import tiles
from pages._shared import Slot, cached_run
from tests.app.helpers import array, figure, figures, messages, open_app, set_state
from tests.tiny_models import save_tiny_gpt_oss, save_tiny_llama
from viz.overview import thumbnail_cell, thumbnail_grid

PAGE = None  # the Heads page is app.py's default
TEXT = " ".join(f"word{i % 50} is here." for i in range(150))  # 1,171 tokens of the tiny byte-level tokenizer
POOLED_SIZE = 256  # pages.heads.POOLED_SIZE


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("long-heads")
    return {"llama": str(save_tiny_llama(root / "llama")), "gpt_oss": str(save_tiny_gpt_oss(root / "gpt_oss"))}


@pytest.fixture(autouse=True)
def _long(monkeypatch):
    monkeypatch.setattr(core_run, "FULL_WEIGHTS_BYTES", 0)  # every run past 512 tokens is a long run


@pytest.fixture
def progress_texts(monkeypatch):
    """The text of every progress bar the page draws (the bars are emptied once done)."""
    texts = []
    original = DeltaGenerator.progress

    def recorded(self, value, text=None, **kwargs):
        texts.append(text)
        return original(self, value, text=text, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "progress", recorded)
    return texts


def _run(folder):
    run = cached_run(folder, TEXT, "")  # the page's run, from the shared cache
    assert run.attentions is None and run.n == 1171
    return run


def _png(fig) -> bytes:
    return base64.b64decode(fig["data"][0]["source"].split(",", 1)[1])


def _shaded(at) -> list[tuple[int, float]]:
    """(position, value) of every token of the text view, from its hover titles."""
    body = next(h.proto.body for h in at.get("html") if 'title="0 · ' in h.proto.body)
    return [(int(i), float(v)) for i, v in re.findall(r'title="(\d+) · [a-z ]+ ([0-9.]+)"', html.unescape(body))]


def test_a_long_text_shows_a_progress_bar_and_every_view(folders, progress_texts):
    at = open_app(PAGE, model=folders["llama"], text=TEXT)
    assert not at.exception and not at.error, messages(at)
    assert progress_texts == ["Running layer 1 of 2…", "Running layer 2 of 2…"]
    assert any("A long text: 1,171 tokens" in c.value for c in at.caption)
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert any(t.startswith("All heads") for t in titles)
    assert any("all 1,171 × 1,171 tokens" in t for t in titles) and any("exact" in t for t in titles)
    assert at.get("progress") == []  # the bar is gone once the run is done
    assert any("bertviz draws from every weight" in i.value for i in at.info)  # said before any choice is offered
    assert "bertviz" not in [control.key for control in at.segmented_control]
    at.run()  # cached: no second run, no bar
    assert len(progress_texts) == 2


def test_overview_is_mean_or_max_pooled_from_the_runs_overview(folders):
    at = open_app(PAGE, model=folders["llama"], text=TEXT)
    means, maxima = _run(folders["llama"]).weights().overview()
    cell = thumbnail_cell(2, 6)
    assert _png(figure(at, "All heads")) == thumbnail_grid(pooled(means, cell)).png
    at.segmented_control(key="pool").set_value("max").run()
    assert _png(figure(at, "All heads")) == thumbnail_grid(block_pooled(maxima, cell)[1]).png
    assert any("max-pooled to its cell" in c.value for c in at.caption)


def test_focused_head_is_pooled_whole_and_zoomed_exactly(folders):
    at = open_app(PAGE, model=folders["llama"], text=TEXT, layer="1", head="4", window="64", window_query="600",
                  window_key="500")
    run = _run(folders["llama"])
    pooled_fig = figure(at, "Layer 1, head 4")
    mean, maxima = tiles.pooled_head(run.weights(), 1, 4, POOLED_SIZE)
    z = array(pooled_fig["data"][0]["z"])
    future = np.isnan(z)
    assert future.any() and np.allclose(z[~future], mean[~future]) and np.all(mean[future] == 0)
    outline = pooled_fig["layout"]["shapes"][0]
    assert (outline["x0"], outline["y0"], outline["x1"], outline["y1"]) == (499.5, 599.5, 563.5, 663.5)
    window = next(f for f in figures(at) if "queries 600–663 × keys 500–563, exact" in f["layout"]["title"]["text"])
    expected = run.head(1, 4)[600:664, 500:564]
    shown = array(window["data"][0]["z"])
    assert shown.shape == (64, 64) and window["data"][0]["y"][0].startswith("600 ")
    assert window["layout"]["xaxis"]["tickvals"] == window["data"][0]["x"][::2]  # WINDOW_KEY_TICKS: 32 of 64 keys
    np.testing.assert_allclose(np.nan_to_num(shown), np.tril(expected, 100), atol=1e-6)  # causal: future masked
    at.segmented_control(key="pool").set_value("max").run()
    assert np.allclose(np.nan_to_num(array(figure(at, "Layer 1, head 4")["data"][0]["z"])), maxima)


def test_layer_mean_is_pooled_and_windowed_over_the_layers_heads(folders):
    at = open_app(PAGE, model=folders["llama"], text=TEXT, aggregation="layer mean", layer="0")
    assert at.segmented_control(key="aggregation").options == ["one head", "layer mean", "rollout"]
    run = _run(folders["llama"])
    mean, _ = tiles.pooled_head(run.weights(), 0, None, POOLED_SIZE)
    assert np.allclose(np.nan_to_num(array(figure(at, "Layer 0, mean of its 6 heads")["data"][0]["z"])), mean)
    window = next(f for f in figures(at) if f["layout"]["title"]["text"].endswith("exact"))
    expected = np.mean([run.head(0, h)[:128, :128] for h in range(6)], axis=0)
    np.testing.assert_allclose(np.nan_to_num(array(window["data"][0]["z"])), expected, atol=1e-6)


def test_text_view_shades_the_text_by_a_row_or_a_column(folders):
    at = open_app(PAGE, model=folders["llama"], text=TEXT, layer="1", head="2", text_token="700")
    head = _run(folders["llama"]).head(1, 2)
    row = _shaded(at)
    assert [i for i, _ in row] == list(range(1171))
    np.testing.assert_allclose([v for _, v in row], head[700], atol=5e-5)  # shown with 4 decimals
    at.segmented_control(key="text_view").set_value("attention it receives").run()
    np.testing.assert_allclose([v for _, v in _shaded(at)], head[:, 700], atol=5e-5)


def test_rollout_is_pooled_and_its_row_shaded(folders, progress_texts):
    at = open_app(PAGE, model=folders["llama"], text=TEXT, aggregation="rollout", layer="1", text_token="900")
    weights = _run(folders["llama"]).weights()
    assert np.allclose(np.nan_to_num(array(figure(at, "Attention rollout up to layer 1")["data"][0]["z"])),
                       tiles.pooled_rollout(weights, 1, POOLED_SIZE), atol=1e-6)
    np.testing.assert_allclose([v for _, v in _shaded(at)], tiles.rollout_row(weights, 1, 900), atol=5e-5)
    assert at.segmented_control(key="text_view").options == ["its attention"]
    assert "Computing the rollout: layer 2 of 2…" in progress_texts
    # no zoom window: neither its controls, nor its box, nor words about it
    assert not figure(at, "Attention rollout up to layer 1")["layout"].get("shapes")
    assert not [w for w in at.number_input if w.key in ("window_query", "window_key")]
    assert not [w for w in at.select_slider if w.key == "window"]
    captions = " ".join(c.value for c in at.caption)
    assert "red box" not in captions and "text view below shows one token's row" in captions


def test_head_statistics_are_computed_in_tiles_with_a_progress_bar(folders, progress_texts):
    at = open_app(PAGE, model=folders["llama"], text=TEXT, statistics="true")
    run = _run(folders["llama"])
    whole = np.stack([np.stack([run.head(layer, h) for h in range(6)]) for layer in range(2)])  # [2, 6, n, n]
    expected = head_statistics(whole, run.tokens, run.special_mask, True)
    shown = array(figure(at, "Entropy")["data"][0]["z"])
    np.testing.assert_allclose(shown, expected.values[HeadMetric.ENTROPY], atol=1e-4)
    assert "Computing head statistics: layer 2 of 2…" in progress_texts


def test_a_stopped_run_is_not_cached_and_the_page_recovers(folders, monkeypatch):
    text = TEXT + " A stopped one."
    original = DeltaGenerator.progress
    stops = []

    def stop_once(self, value, text=None, **kwargs):  # what Streamlit does when the text changes mid-run
        if not stops:
            stops.append(text)
            raise StopException()
        return original(self, value, text=text, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "progress", stop_once)
    at = open_app(PAGE, model=folders["llama"], text=text)
    assert stops == ["Running layer 1 of 2…"] and not at.exception
    assert not [f for f in figures(at) if f["layout"]["title"]["text"].startswith("All heads")]
    at.run()
    assert not at.exception and not at.error
    assert figure(at, "All heads") and cached_run(folders["llama"], text, "").n > 512


def test_a_slot_keeps_nothing_from_a_computation_that_raised():
    slot, calls = Slot(), []

    def stopped():
        calls.append("stopped")
        raise StopException()

    with pytest.raises(StopException):
        slot.get(stopped)
    assert slot.get(lambda: calls.append("ran") or 42) == 42 and slot.get(lambda: 0) == 42
    assert calls == ["stopped", "ran"]


def test_a_model_that_cant_be_recomputed_is_cut_with_its_notice(folders):
    at = open_app(PAGE, model=folders["gpt_oss"], text=TEXT)
    notice = messages(at)
    assert "The text is cut to 512 tokens" in notice and "gpt_oss" in notice
    assert "the app runs at most" not in notice  # the notice says why, not the model's limit
    assert figure(at, "Layer 0, head 0")["data"][0]["type"] == "heatmap" and not at.exception


def test_a_text_past_the_servers_limit_gets_a_message_and_stays(folders):
    at = open_app(PAGE, model=folders["llama"], text=TEXT)
    huge = "word " * 20_001
    set_state(at, text=huge)
    assert "100,005 characters; this server runs at most 100,000" in messages(at)
    assert at.session_state["text"] == huge and not at.exception


def test_short_runs_keep_their_views_and_get_max_pooling_and_the_text_view_too():
    text = "The animal didn't cross the street because it was too tired."
    at = open_app(PAGE, text=text, layer="2", head="5", text_token="3", pool="max")
    run = cached_run("minilm", text, "")
    assert run.attentions is not None
    assert _png(figure(at, "All heads")) == thumbnail_grid(block_pooled(run.attentions, thumbnail_cell(6, 12))[1]).png
    assert array(figure(at, "Layer 2, head 5")["data"][0]["z"]).shape == (run.n, run.n)  # today's heatmap
    np.testing.assert_allclose([v for _, v in _shaded(at)], run.attentions[2, 5, 3], atol=5e-5)
    at.segmented_control(key="text_view").set_value("attention it receives").run()
    np.testing.assert_allclose([v for _, v in _shaded(at)], run.attentions[2, 5, :, 3], atol=5e-5)

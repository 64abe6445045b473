"""What the pages compute on a long run (from recomputed heads, in row tiles) equals the same
computation on the whole arrays of the same run kept short."""
import numpy as np
import pytest

from models import load_model, run_attention
from models.compare.divergence import head_divergence, js_divergence, query_divergence, tiled_head_divergence
from models.compare.series import run_series, series_checkpoints
from models.core import run as core_run
from models.core import tiles
from models.core.run import first_tokens, full_weights_tokens
from models.core.tiles import FullWeights
from models.span.mask import apply_span, tiled_span_effect
from models.sparse.enforce import coverage, tiled_coverage
from models.sparse.patterns import HeadPatterns, Pattern
from tests.tiny_models import save_tiny_llama, save_tiny_mlm_series

TEXT = "The cat sat on the mat, and then the cat looked at the dog on the mat. " * 4


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return load_model(str(save_tiny_llama(tmp_path_factory.mktemp("long_pages") / "llama")))


@pytest.fixture(scope="module")
def runs(llama):
    """(long run, short run) of one text: recomputed in tiles of a few rows, and kept whole."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiles, "TILE_ELEMENTS", 2048)
        return run_attention(llama, TEXT, tiled=True), run_attention(llama, TEXT, tiled=False)


@pytest.fixture(autouse=True)
def small_tiles(monkeypatch):
    monkeypatch.setattr(tiles, "TILE_ELEMENTS", 2048)


def test_coverage_in_tiles_equals_coverage_of_the_whole_weights(runs):
    long, short = runs
    patterns = HeadPatterns((Pattern("sliding_window", {"w": 3, "causal": True}), Pattern("strided", {"l": 5})))
    assert long.attentions is None
    expected = coverage(short.attentions, patterns.masks(short.n, short.num_heads))
    np.testing.assert_allclose(tiled_coverage(long.weights(), patterns), expected, atol=1e-5)
    assert 0 < expected.min() and expected.max() < 1  # the heads have mass on both sides of the pattern


@pytest.mark.parametrize("z,ramp", [(3, 2), (40, 8)])
def test_span_in_tiles_equals_the_span_applied_to_the_whole_head(runs, z, ramp):
    long, short = runs
    shown = slice(0, 20)
    whole = apply_span(short.attentions[1, 4], z, ramp, short.causal)
    tiled = tiled_span_effect(long.weights(), 1, 4, z, ramp, shown)
    np.testing.assert_allclose(tiled.removed, whole.removed, atol=1e-5)
    assert tiled.zeroed_share == pytest.approx(whole.zeroed_share)
    np.testing.assert_allclose(tiled.after, whole.after[shown, shown], atol=1e-5)
    np.testing.assert_array_equal(tiled.mask, whole.mask[shown, shown])


def test_divergence_in_tiles_equals_the_whole_arrays(runs):
    long, short = runs
    flipped = np.ascontiguousarray(short.attentions[::-1, ::-1])  # another head at every place
    other = FullWeights(long.weights().name, flipped, True)
    np.testing.assert_allclose(tiled_head_divergence(long.weights(), other), head_divergence(short.attentions, flipped),
                               atol=1e-5)
    np.testing.assert_allclose(query_divergence(long.weights(), other, 1, 2),
                               js_divergence(short.attentions[1, 2], flipped[1, 2]), atol=1e-5)


def test_first_tokens_cuts_the_text_where_every_weight_is_still_kept(llama, monkeypatch):
    assert full_weights_tokens(llama) > core_run.SHORT_TOKENS  # a tiny model keeps every weight further
    monkeypatch.setattr(core_run, "FULL_WEIGHTS_BYTES", 0)
    assert full_weights_tokens(llama) == core_run.SHORT_TOKENS
    run = run_attention(first_tokens(llama, 12), TEXT)
    whole = run_attention(llama, TEXT)
    assert run.n == 12 and run.truncated and run.n_input_tokens == whole.n
    np.testing.assert_allclose(run.attentions, whole.attentions[:, :, :12, :12], atol=1e-5)  # causal: a prefix


def test_a_series_on_a_long_text_reads_its_first_tokens_saying_so(tmp_path, monkeypatch):
    monkeypatch.setattr(core_run, "FULL_WEIGHTS_BYTES", 0)
    folder = save_tiny_mlm_series(tmp_path / "series", steps=(10, 100), positions=1024)
    checkpoints, _ = series_checkpoints(folder)
    text = " ".join(["The capital of Italy is Rome."] * 120)
    ran = run_series(checkpoints, text)
    assert [run.n for run in ran.runs] == [core_run.SHORT_TOKENS] * 2
    assert all(run.attentions is not None for run in ran.runs)
    assert ran.notice == ("Following every head of every checkpoint keeps every weight of every head, so it runs on "
                          f"the first 512 tokens of this {ran.runs[0].n_input_tokens:,}-token text.")
    assert run_series(checkpoints, "The capital of Italy is Rome.").notice is None

"""Long runs (models.core.long_run, models.core.tiles) against transformers' own eager weights.

Every stack is run tiled at a length where eager still fits, with tiles of a few rows so every
tile edge is crossed; recomputed heads, windows, rows, columns, layer means, the overview,
rollout rows and head statistics must equal what the plain eager weights give.
"""
import gc
import weakref

import numpy as np
import pytest
import torch

from models import RunError, attention_stacks, load_model, run_attention
from models.analysis.aggregation import rollout_layers
from models.analysis.head_stats import HeadMetric, head_statistics
from models.analysis.numerics import block_pooled
from models.core import long_run, tiles
from models.core.attention_fn import extra_mask, tiled
from models.core.run import SHORT_TOKENS
from models.core.scores import ScoresUnavailable
from models.core.stacks import named_attentions
from tests.tiny_models import save_tiny_gemma2, save_tiny_gpt_oss, save_tiny_llama

TEXT = ("The animal didn't cross the street because it was too tired. The capital of Italy is Rome, "
        "and Paris is in France! ") * 4
PAIR = "It was late, and the street was empty."
KINDS = ("bert", "gpt2", "llama", "gemma2", "t5", "bart")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def folders(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    return {**tiny_models, "llama": save_tiny_llama(root / "llama"), "gemma2": save_tiny_gemma2(root / "gemma2"),
            "gpt_oss": save_tiny_gpt_oss(root / "gpt_oss")}


def _eager(loaded, run) -> dict[str, np.ndarray]:
    """Every stack's weights from transformers' own eager attention, on the run's token ids."""
    reference = type(loaded.model).from_pretrained(loaded.source, attn_implementation="eager").eval()
    inputs = {"input_ids": torch.tensor([loaded.tokenizer.convert_tokens_to_ids(run.tokens)])}
    if run.decoder_tokens is not None:
        inputs["decoder_input_ids"] = torch.tensor([loaded.tokenizer.convert_tokens_to_ids(run.decoder_tokens)])
    with torch.no_grad():
        outputs = reference(**inputs, output_attentions=True)
    return {name: torch.stack(layers)[:, 0].numpy()
            for name, layers in named_attentions(outputs, run.decoder_tokens is not None).items()}


@pytest.fixture(scope="module")
def runs(folders):
    """kind -> (loaded, tiled run, eager weights by stack), the run made with tiles of a few rows."""
    made = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiles, "TILE_ELEMENTS", 2048)
        for kind in KINDS:
            loaded = load_model(str(folders[kind]))
            run = run_attention(loaded, TEXT, PAIR if kind in ("t5", "bart") else None, tiled=True)
            made[kind] = (loaded, run, _eager(loaded, run))
    return made


@pytest.fixture
def small_tiles(monkeypatch):
    monkeypatch.setattr(tiles, "TILE_ELEMENTS", 2048)


@pytest.mark.parametrize("kind", KINDS)
def test_recomputed_heads_equal_eager_weights(runs, kind):
    _, run, eager = runs[kind]
    assert run.attentions is None and set(run.recomputed) == set(eager)
    assert run.n > tiles.OVERVIEW_SIZE  # long enough for the overview to pool
    for name, expected in eager.items():
        layers, heads, _, _ = expected.shape
        assert run.weights(name).shape == expected.shape
        for layer in range(layers):
            for head in range(heads):
                np.testing.assert_allclose(run.head(layer, head, name), expected[layer, head], atol=TOLERANCE,
                                           err_msg=f"{name} layer {layer} head {head}")


@pytest.mark.parametrize("kind", KINDS)
def test_windows_rows_columns_and_layer_means_equal_eager(runs, kind, small_tiles):
    _, run, eager = runs[kind]
    for name, expected in eager.items():
        weights, last = run.weights(name), expected.shape[0] - 1
        q, k = expected.shape[-2:]
        rows, cols = slice(q // 3, q // 3 + 17), slice(k // 2 - 5, k)
        np.testing.assert_allclose(run.window(last, 1, rows, cols, name), expected[last, 1, rows, cols], atol=TOLERANCE)
        np.testing.assert_allclose(tiles.window(weights, 0, None, rows, cols), expected[0, :, rows, cols].mean(0),
                                   atol=TOLERANCE)
        for token in (0, q // 2, q - 1):
            np.testing.assert_allclose(tiles.query_row(weights, last, 2, token), expected[last, 2, token],
                                       atol=TOLERANCE)
        for token in (0, k // 2, k - 1):
            np.testing.assert_allclose(tiles.key_column(weights, last, 0, token), expected[last, 0, :, token],
                                       atol=TOLERANCE)
            np.testing.assert_allclose(tiles.key_column(weights, last, None, token),
                                       expected[last, :, :, token].mean(0), atol=TOLERANCE)


@pytest.mark.parametrize("kind", KINDS)
def test_overview_is_mean_and_max_pooling_of_eager_weights(runs, kind, small_tiles):
    _, run, eager = runs[kind]
    for name, expected in eager.items():
        weights = run.weights(name)
        mean, maxima = weights.overview()
        expected_mean, expected_max = block_pooled(expected, tiles.OVERVIEW_SIZE)
        np.testing.assert_allclose(mean, expected_mean, atol=1e-6)
        np.testing.assert_allclose(maxima, expected_max, atol=TOLERANCE)
        head_mean, head_max = tiles.pooled_head(weights, 1, 3, 32)
        np.testing.assert_allclose(head_mean, block_pooled(expected[1, 3], 32)[0], atol=1e-6)
        np.testing.assert_allclose(head_max, block_pooled(expected[1, 3], 32)[1], atol=TOLERANCE)
        layer_mean = tiles.pooled_head(weights, 0, None, 32)[0]
        np.testing.assert_allclose(layer_mean, block_pooled(expected[0].mean(0), 32)[0], atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_rollout_rows_and_head_statistics_equal_the_dense_computations(runs, kind, small_tiles):
    _, run, eager = runs[kind]
    tokens = {"decoder": run.decoder_tokens}
    for name, expected in eager.items():
        if name == "cross":
            with pytest.raises(ValueError, match="square"):
                tiles.rollout_row(run.weights(name), 1, 0)
            continue
        weights, n = run.weights(name), expected.shape[-1]
        rollout = rollout_layers(expected)  # [layers, n, n]
        for layer, token in [(0, 3), (1, n - 1), (1, n // 2)]:
            np.testing.assert_allclose(tiles.rollout_row(weights, layer, token), rollout[layer, token], atol=TOLERANCE)
        steps = []
        pooled = tiles.pooled_rollout(weights, 1, 24, progress=lambda done, total: steps.append((done, total)))
        np.testing.assert_allclose(pooled, block_pooled(rollout[1], 24)[0], atol=1e-6)
        special = run.special_mask if name != "decoder" else np.zeros(n, bool)
        stack_tokens = tokens.get(name, run.tokens)
        dense = head_statistics(expected, stack_tokens, special, weights.causal)
        tiled_stats = tiles.head_statistics(weights, stack_tokens, special,
                                            progress=lambda done, total: steps.append((done, total)))
        assert steps == [(1, 2), (2, 2)] * 2  # after each layer: the rollout's two, the statistics' two
        assert tiled_stats.uniform_entropy == pytest.approx(dense.uniform_entropy)
        for metric, values in dense.values.items():
            np.testing.assert_allclose(tiled_stats.values[metric], values, atol=TOLERANCE, err_msg=metric)


def test_views_of_a_short_run_read_its_kept_weights(default_model):
    run = run_attention(default_model, TEXT)
    assert run.recomputed is None and run.num_layers == 6 and run.num_heads == 12
    np.testing.assert_array_equal(run.head(2, 5), run.attentions[2, 5])
    np.testing.assert_array_equal(run.window(1, 0, slice(3, 9), slice(0, 4)), run.attentions[1, 0, 3:9, :4])
    mean, maxima = run.weights().overview()
    np.testing.assert_array_equal(mean, block_pooled(run.attentions, tiles.OVERVIEW_SIZE)[0])
    stats = tiles.head_statistics(run.weights(), run.tokens, run.special_mask).values
    expected = head_statistics(run.attentions, run.tokens, run.special_mask).values
    for metric in HeadMetric:
        np.testing.assert_allclose(stats[metric], expected[metric], rtol=1e-6, err_msg=metric)


def test_masks_are_kept_as_rules_and_grouped_key_heads_once(runs):
    _, llama, _ = runs["llama"]
    layer = llama.weights().layers[0]
    assert layer.query.shape[0] == 6 and layer.key.shape[0] == 2  # 3 query heads per key head, as in SmolLM2
    assert layer.mask.dense is None and layer.mask.rule is not None
    gemma = runs["gemma2"][1].weights()
    assert gemma.layers[0].softcap == pytest.approx(0.01)
    assert gemma.layers[0].mask.visible(slice(10, 11), slice(0, 12))[0].nonzero().flatten().tolist() == [7, 8, 9, 10]
    assert gemma.layers[1].mask.visible(slice(10, 11), slice(0, 12)).sum() == 11  # a global layer


def test_t5_keeps_its_position_bias_once_per_stack(runs):
    _, run, _ = runs["t5"]
    encoder, cross = run.weights("encoder"), run.weights("cross")
    assert encoder.layers[0].bias is not None
    assert encoder.layers[0].bias.data_ptr() == encoder.layers[1].bias.data_ptr()
    assert cross.layers[0].bias is None  # T5's cross-attention bias is all zeros


def test_attention_stacks_of_a_long_run_carry_their_weights(runs):
    _, run, eager = runs["bart"]
    stacks = attention_stacks(run)
    assert [stack.attentions for stack in stacks.values()] == [None, None, None]
    assert stacks["cross"].weights.shape == eager["cross"].shape


def test_kept_bytes_grow_linearly_with_the_length(folders):
    loaded = load_model(str(folders["llama"]))
    text = " ".join(f"w{i}" for i in range(6000))
    growing = {}
    for n in (2048, 4096):
        short = loaded.tokenizer.convert_tokens_to_string(loaded.tokenizer.tokenize(text)[:n])
        run = run_attention(loaded, short, tiled=True)
        assert run.n == n
        kept = long_run.kept_bytes(run.recomputed)
        plan = long_run.call_plan(loaded, {"input_ids": torch.zeros(1, 1, dtype=torch.long)})
        assert kept == long_run.long_kept_bytes(plan, n)  # the estimate the memory check uses
        assert kept < 2 * 6 * n * n * 4 / 50  # under 2% of the weights
        overview = sum(array.nbytes for array in run.weights().overview())  # at most 96 x 96 a head
        growing[n] = kept - overview
    assert growing[4096] == 2 * growing[2048]  # q, k and each row's log-sum-exp: linear in n


def test_progress_reports_every_attention_layer_in_order(folders):
    loaded = load_model(str(folders["bart"]))
    steps = []
    run_attention(loaded, TEXT, PAIR, tiled=True, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(i, 6) for i in range(1, 7)]  # 2 encoder layers; self- and cross-attention of 2 decoder layers


def test_a_stopped_run_keeps_nothing(folders, monkeypatch):
    loaded = load_model(str(folders["llama"]))
    run_attention(loaded, TEXT, tiled=True)  # probed: the stopped run below is the only one
    kept, forwards = [], []

    class Watched(long_run.TiledForward):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            forwards.append(self)

        def __call__(self, *args, **kwargs):
            output = super().__call__(*args, **kwargs)
            kept.extend(weakref.ref(t) for t in (self.kept["self-attention"][-1][0].query, output))
            return output

    class Stop(Exception):
        pass

    def stop_after_first_layer(done, total):
        if done == 2:
            raise Stop

    monkeypatch.setattr(long_run, "TiledForward", Watched)
    with pytest.raises(Stop) as stopped:
        run_attention(loaded, TEXT, tiled=True, progress=stop_after_first_layer)
    del stopped
    gc.collect()
    assert forwards[0].kept == {} and forwards[0].done == 2
    assert kept and all(ref() is None for ref in kept)


def test_a_run_that_would_not_fit_is_refused_before_it_starts(folders, default_model, monkeypatch):
    loaded = load_model(str(folders["llama"]))
    run_attention(loaded, TEXT, tiled=True)  # probed (40 tokens): the long run is what must not start
    text = " ".join(f"w{i}" for i in range(5000))
    monkeypatch.setattr(long_run, "available_memory", lambda: 5 << 20)
    monkeypatch.setattr(long_run, "tiled_forward", lambda *args, **kwargs: pytest.fail("the model ran"))
    with pytest.raises(RunError, match=r"tokens of .* needs about .* GB of memory and 0.0 GB are free"):
        run_attention(loaded, text)
    monkeypatch.setattr(long_run, "available_memory", lambda: 1 << 20)
    with pytest.raises(RunError, match="needs about"):
        run_attention(default_model, TEXT)  # short runs are checked too


def test_a_model_whose_attention_cant_be_recomputed_runs_short_with_a_notice(folders):
    loaded = load_model(str(folders["gpt_oss"]))
    run = run_attention(loaded, " ".join(f"w{i}" for i in range(5000)))
    assert run.n == SHORT_TOKENS and run.truncated and run.attentions.shape == (2, 4, SHORT_TOKENS, SHORT_TOKENS)
    assert "gpt_oss" in run.notice and "layer 0 self-attention weights are up to" in run.notice
    with pytest.raises(RunError, match="can't run in tiles"):
        run_attention(loaded, TEXT, tiled=True)


def test_long_runs_refuse_scores_and_oversized_windows(runs):
    loaded, _, _ = runs["gpt2"]
    with pytest.raises(ScoresUnavailable, match="at most 512 tokens"):
        run_attention(loaded, TEXT, with_scores=True, tiled=True)
    weights = tiles.FullWeights("self-attention", np.zeros((1, 1, 600, 600), np.float32), False)
    assert tiles.window(weights, 0, 0, slice(88, 600), slice(0, 10)).shape == (512, 10)
    with pytest.raises(ValueError, match="at most 512 x 512"):
        tiles.window(weights, 0, 0, slice(87, 600), slice(0, 10))


def test_a_tiled_block_takes_no_extra_mask():
    with extra_mask(lambda module, q, k: None), pytest.raises(ValueError, match="extra mask"):
        with tiled(lambda *args, **kwargs: None):
            pass

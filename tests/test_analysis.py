"""models.analysis and models.lens against hand-computed cases and the model's own attentions."""
import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from models import load_model, run_attention
from models.analysis.aggregation import (
    Aggregation,
    aggregate,
    attention_rollout,
    max_over_heads,
    mean_over_all,
    mean_over_heads,
    rollout_layers,
)
from models.analysis.head_stats import (
    METRICS,
    HeadMetric,
    head_statistics,
    previous_occurrences,
    punctuation_mask,
    uniform_entropy,
)
from models.analysis.matrix_view import matrix_view
from models.analysis.numerics import BlockPool, entropy, pooled
from models.analysis.pairs import has_pair, pair_block, pair_segments
from models.analysis.words import WordSpans

# Two layers of two heads over two tokens, chosen so the head means are simple:
# layer 0 mean [[1, 0], [.5, .5]], layer 1 mean [[.5, .5], [0, 1]].
TWO_LAYERS = np.array([
    [[[1, 0], [1, 0]], [[1, 0], [0, 1]]],
    [[[1, 0], [0, 1]], [[0, 1], [0, 1]]],
], dtype=np.float32)


def _random_stack(layers=3, heads=4, n=7, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(n), size=(layers, heads, n)).astype(np.float32)


def test_rollout_matches_the_hand_computed_case():
    # A'_0 = 0.5 A_0 + 0.5 I = [[1, 0], [.25, .75]]; A'_1 = [[.75, .25], [0, 1]]
    # R_1 = A'_1 A'_0 = [[.75 + .0625, .1875], [.25, .75]]
    np.testing.assert_allclose(rollout_layers(TWO_LAYERS)[0], [[1, 0], [0.25, 0.75]])
    np.testing.assert_allclose(attention_rollout(TWO_LAYERS), [[0.8125, 0.1875], [0.25, 0.75]])


def test_pooled_averages_blocks_by_hand_for_every_head():
    matrix = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(pooled(matrix, 2), [[2.5, 4.5], [10.5, 12.5]])  # one matrix: a sparse mask
    stack = np.stack([matrix, 2 * matrix])[None]  # [1 layer, 2 heads, 4, 4]
    np.testing.assert_array_equal(pooled(stack, 2)[0, 1], 2 * np.array([[2.5, 4.5], [10.5, 12.5]]))
    assert pooled(stack, 8) is stack  # small enough: never upsampled, never copied
    assert pooled(np.ones((2, 3, 512, 40), np.float32), 87).shape == (2, 3, 87, 40)


def _mean_pool_reference(matrix: np.ndarray, size: int) -> np.ndarray:
    """Bin b of n positions is floor(b n / size) .. floor((b + 1) n / size) - 1, by loops."""
    (q, k), rows, cols = matrix.shape, min(size, matrix.shape[0]), min(size, matrix.shape[1])
    return np.array([[matrix[r * q // rows:(r + 1) * q // rows, c * k // cols:(c + 1) * k // cols].mean()
                      for c in range(cols)] for r in range(rows)])


def test_block_pool_takes_tiles_of_any_rows_and_heads():
    """Tiles of 7 rows across row blocks of 4, over two groups of heads and two column ranges (each
    starting at a column-block edge), against the blocks' means and maxima by hand."""
    weights = torch.rand(4, 50, 37)
    pool = BlockPool(4, 50, 37, 13)  # blocks of 4 rows x 3 columns
    for heads in (slice(0, 3), slice(3, 4)):
        for start in range(0, 50, 7):
            rows = slice(start, min(50, start + 7))
            pool.add(weights[heads, rows, :18], rows, slice(0, 18), heads)
            pool.add(weights[heads, rows, 18:], rows, slice(18, 37), heads)
    mean, maxima = pool.result()
    blocks = [[weights[:, r:r + 4, c:c + 3] for c in range(0, 37, 3)] for r in range(0, 50, 4)]
    np.testing.assert_allclose(mean, [[[b[h].mean() for b in row] for row in blocks] for h in range(4)], atol=1e-6)
    np.testing.assert_array_equal(maxima, [[[b[h].max() for b in row] for row in blocks] for h in range(4)])


def test_pooled_bins_are_even_to_one_position():
    """Uneven bins (437 and 300 positions into 85): sizes differ by one at most, spread evenly."""
    rng = np.random.default_rng(0)
    stack = rng.random((2, 3, 437, 300), dtype=np.float32)
    pooled_stack = pooled(stack, 85)
    assert pooled_stack.shape == (2, 3, 85, 85)
    for layer, head in [(0, 0), (1, 2)]:
        np.testing.assert_allclose(pooled_stack[layer, head], _mean_pool_reference(stack[layer, head], 85), rtol=1e-5)
    mask = rng.random((4097, 4097)) < 0.1  # a sparse mask's image: share of active cells per pixel
    np.testing.assert_allclose(pooled(mask, 820), _mean_pool_reference(mask, 820), rtol=1e-5)


def test_entropy_is_scipys_with_zero_log_zero_zero():
    rows = _random_stack(2, 3, 9)
    rows[..., :4] = 0  # zeros, as in the causal rows of a decoder
    rows /= rows.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(entropy(rows), scipy_entropy(rows, axis=-1), rtol=1e-5)
    assert entropy(rows).dtype == np.float32
    assert entropy(np.array([1.0, 0.0, 0.0])) == 0 and entropy(np.full(4, 0.25)) == pytest.approx(np.log(4))


def test_rollout_renormalises_rows_and_keeps_identity():
    stack = _random_stack()
    rollout = rollout_layers(stack)
    np.testing.assert_allclose(rollout.sum(-1), 1, atol=1e-5)
    identity = np.broadcast_to(np.eye(5, dtype=np.float32), (4, 3, 5, 5))
    np.testing.assert_allclose(attention_rollout(identity), np.eye(5), atol=1e-7)
    # rows of a max aggregate don't sum to 1: renormalising must still give a row-stochastic A'
    unnormalised = stack * 3
    np.testing.assert_allclose(rollout_layers(unnormalised)[0].sum(-1), 1, atol=1e-5)


def test_rollout_refuses_cross_attention():
    with pytest.raises(ValueError, match="square"):
        attention_rollout(np.ones((2, 2, 3, 4), dtype=np.float32) / 4)


def test_aggregations_reduce_as_named():
    stack = _random_stack()
    np.testing.assert_allclose(mean_over_heads(stack)[1], sum(stack[1, h] for h in range(4)) / 4, rtol=1e-6)
    np.testing.assert_array_equal(max_over_heads(stack)[2, 3, 4], max(stack[2, h, 3, 4] for h in range(4)))
    np.testing.assert_allclose(mean_over_all(stack), stack.reshape(12, 7, 7).mean(0), rtol=1e-6)
    assert [a.value for a in Aggregation] == ["head", "layer-mean", "layer-max", "all-mean", "rollout"]
    np.testing.assert_array_equal(aggregate(stack, Aggregation.HEAD, 1, 2), stack[1, 2])
    np.testing.assert_allclose(aggregate(stack, Aggregation.LAYER_MEAN, 1, 0), mean_over_heads(stack)[1])
    np.testing.assert_array_equal(aggregate(stack, Aggregation.LAYER_MAX, 2, 0), max_over_heads(stack)[2])
    np.testing.assert_allclose(aggregate(stack, Aggregation.ALL_MEAN, 0, 0), mean_over_all(stack))
    np.testing.assert_allclose(aggregate(stack, Aggregation.ROLLOUT, 1, 0), rollout_layers(stack)[1], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(stack, "median", 0, 0)


# --- head statistics: [CLS] a , [SEP] with three hand-made heads ---
TOKENS, SPECIAL = ["[CLS]", "a", ",", "[SEP]"], np.array([True, False, False, True])
UNIFORM = np.full((4, 4), 0.25)
IDENTITY = np.eye(4)
PREVIOUS = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=float)
EXPECTED = {  # metric -> (uniform, identity, previous-token head)
    HeadMetric.ENTROPY: (np.log(4), 0, 0),
    HeadMetric.MEAN_DISTANCE: (1.25, 0, 0.75),  # uniform rows: 1.5, 1, 1, 1.5
    HeadMetric.TO_FIRST_SPECIAL: (0.25, 0.25, 0.5),
    HeadMetric.TO_SEPARATORS: (0.25, 0.25, 0),
    HeadMetric.TO_PUNCTUATION: (0.25, 0.25, 0.25),
    HeadMetric.TO_SELF: (0.25, 1, 0.25),
    HeadMetric.TO_PREVIOUS: (0.25, 0, 1),  # over queries 1..3
    HeadMetric.TO_NEXT: (0.25, 0, 0),  # over queries 0..2
    HeadMetric.TO_FIRST_TOKEN: (0.25, 0, 1 / 3),  # over queries 1..3
}


def test_head_statistics_match_hand_computed_heads():
    attentions = np.stack([UNIFORM, IDENTITY, PREVIOUS])[None].astype(np.float32)  # [1 layer, 3 heads, 4, 4]
    stats = head_statistics(attentions, TOKENS, SPECIAL)
    assert set(stats.values) == {m.key for m in METRICS}
    for key, expected in EXPECTED.items():
        np.testing.assert_allclose(stats.values[key][0], expected, atol=1e-6, err_msg=key)
    assert stats.uniform_entropy == pytest.approx(np.log(4))
    assert np.isnan(stats.values["induction"]).all()  # no token repeats
    assert [m.key for m in stats.available()] == [m.key for m in METRICS if m.key != "induction"]


def test_induction_score_reads_the_token_after_the_previous_occurrence():
    # <s> A B C A B [SEP] [SEP]: queries 4 (A, seen at 1) and 5 (B, seen at 2) should look at 2 and 3
    tokens = ["<s>", "A", "B", "C", "A", "B", "[SEP]", "[SEP]"]
    special = np.array([True, False, False, False, False, False, True, True])
    assert previous_occurrences(tokens).tolist() == [-1, -1, -1, -1, 1, 2, -1, 6]
    rng = np.random.default_rng(0)
    attentions = rng.dirichlet(np.ones(8), size=(2, 3, 8)).astype(np.float32)  # [2 layers, 3 heads, 8, 8]
    stats = head_statistics(attentions, tokens, special, causal=True)
    expected = (attentions[..., 4, 2] + attentions[..., 5, 3]) / 2  # the repeated [SEP] is no query
    np.testing.assert_allclose(stats.values["induction"], expected, rtol=1e-6)
    np.testing.assert_allclose(stats.values[HeadMetric.TO_FIRST_TOKEN], attentions[..., 1:, 0].mean(-1), rtol=1e-6)
    ranked = sorted(((expected[l, h], l, h) for l in range(2) for h in range(3)), reverse=True)
    assert stats.strongest(HeadMetric.INDUCTION, k=3) == [(l, h, pytest.approx(v)) for v, l, h in ranked[:3]]
    assert stats.strongest(HeadMetric.TO_SEPARATORS, k=3) != [] and len(stats.strongest(HeadMetric.INDUCTION, 9)) == 6


def test_statistics_without_special_tokens_leave_those_metrics_out():
    attentions = np.tril(np.ones((4, 4)))[None, None] / np.arange(1, 5)[:, None]  # causal uniform
    stats = head_statistics(attentions.astype(np.float32), ["Hello", "Ġworld", "Ġ!", "Ġok"],
                            np.zeros(4, dtype=bool), causal=True)
    assert np.isnan(stats.values[HeadMetric.TO_FIRST_SPECIAL]).all()
    assert np.isnan(stats.values[HeadMetric.TO_SEPARATORS]).all()
    assert np.isnan(stats.values[HeadMetric.TO_NEXT]).all()  # masked in a causal model: 0 by construction
    assert HeadMetric.TO_FIRST_SPECIAL not in [m.key for m in stats.available()]
    assert HeadMetric.TO_NEXT not in [m.key for m in stats.available()]
    assert stats.strongest(HeadMetric.TO_NEXT) == []  # no value to rank
    # the causal baseline averages log(i + 1) over queries; uniform causal attention reaches it
    assert stats.uniform_entropy == pytest.approx(np.mean(np.log([1, 2, 3, 4])))
    np.testing.assert_allclose(stats.values[HeadMetric.ENTROPY][0, 0], stats.uniform_entropy, rtol=1e-6)
    np.testing.assert_allclose(stats.values[HeadMetric.TO_PUNCTUATION][0, 0], np.mean([0, 0, 1 / 3, 1 / 4]), rtol=1e-6)
    assert uniform_entropy(4, causal=False) == pytest.approx(np.log(4))


def test_punctuation_is_unicode_punctuation_after_markers():
    tokens = ["[CLS]", "hello", "Ġ,", "##.", "▁!", "it's", "'", "»", "[SEP]"]
    special = np.array([True] + [False] * 7 + [True])
    assert punctuation_mask(tokens, special).tolist() == [False, False, True, True, True, False, True, True, False]


def test_statistics_of_the_bundled_model_agree_with_its_attentions(default_model):
    run = run_attention(default_model, "The cat sat on the mat, and it purred.")
    stats = head_statistics(run.attentions, run.tokens, run.special_mask)
    np.testing.assert_allclose(stats.values[HeadMetric.TO_FIRST_SPECIAL], run.attentions[..., 0].mean(-1), rtol=1e-5)
    sep = run.tokens.index("[SEP]")
    np.testing.assert_allclose(stats.values[HeadMetric.TO_SEPARATORS], run.attentions[..., sep].mean(-1), rtol=1e-5)
    assert (stats.values[HeadMetric.ENTROPY] <= np.log(run.n) + 1e-5).all() and (stats.values[HeadMetric.ENTROPY] >= 0).all()
    for metric in METRICS:
        if metric.unit == "share":
            assert ((stats.values[metric.key] >= 0) & (stats.values[metric.key] <= 1 + 1e-6)).all(), metric.key


# --- sentence pairs ---
PAIR_SEGMENTS = np.array([-1, 0, 0, -1, 1, 1, -1], dtype=np.int8)  # [CLS] a a [SEP] b b [SEP]


def test_pair_segments_give_specials_to_a_neighbour_as_token_type_ids_do():
    assert pair_segments(PAIR_SEGMENTS).tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert pair_segments(np.array([-1, -1])).tolist() == [0, 0]
    assert has_pair(PAIR_SEGMENTS) and not has_pair(np.array([-1, 0, 0, -1]))


def test_pair_blocks_select_query_and_key_sentences():
    rows, cols = pair_block(PAIR_SEGMENTS, "A->B")
    assert rows.tolist() == [0, 1, 2, 3] and cols.tolist() == [4, 5, 6]
    rows, cols = pair_block(PAIR_SEGMENTS, "B->A")
    assert rows.tolist() == [4, 5, 6] and cols.tolist() == [0, 1, 2, 3]
    assert [r.tolist() for r in pair_block(PAIR_SEGMENTS, "all")] == [list(range(7))] * 2
    with pytest.raises(ValueError, match="unknown block"):
        pair_block(PAIR_SEGMENTS, "A->C")


def test_lens_cuts_the_block_at_token_and_word_level():
    tokens = ["[CLS]", "play", "##ing", "[SEP]", "go", "[SEP]"]
    segments = np.array([-1, 0, 0, -1, 1, -1], dtype=np.int8)
    matrix = np.arange(36, dtype=np.float32).reshape(6, 6)
    lens = matrix_view(tokens, tokens, None, None, segments, "A->B")
    assert lens.query_tokens == tokens[:4] and lens.key_tokens == tokens[4:]
    np.testing.assert_array_equal(lens.apply(matrix), matrix[:4, 4:])
    assert lens.sentence_b_start is None  # only the full view has sentence B inside it

    spans = WordSpans(starts=np.array([0, 1, 3, 4, 5]), words=["[CLS]", "playing", "[SEP]", "go", "[SEP]"], n=6)
    words = matrix_view(tokens, tokens, spans, spans, segments, "all")
    assert words.query_tokens == spans.words and words.sentence_b_start == 3
    merged = words.apply(matrix)
    assert merged.shape == (5, 5)
    assert merged[1, 0] == (matrix[1, 0] + matrix[2, 0]) / 2  # query pieces: mean
    assert merged[0, 1] == matrix[0, 1] + matrix[0, 2]  # key pieces: sum
    np.testing.assert_array_equal(matrix_view(tokens, tokens, spans, spans, segments, "B->B").apply(matrix),
                                  merged[3:, 3:])


def test_lens_on_a_real_pair_run(tiny_models):
    run = run_attention(load_model(str(tiny_models["bert"])), "The cat sat.", "It slept.")
    assert run.tokens == ["[CLS]", "the", "cat", "sat", ".", "[SEP]", "it", "slept", ".", "[SEP]"]
    lens = matrix_view(run.tokens, run.tokens, None, None, run.segment_ids, "B->A")
    assert lens.query_tokens == run.tokens[6:] and lens.key_tokens == run.tokens[:6]
    assert matrix_view(run.tokens, run.tokens, None, None, run.segment_ids, "all").sentence_b_start == 6

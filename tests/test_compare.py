"""models.compare and viz.compare: divergence, head matching and word alignment, on hand-made
cases and on tiny models with different tokenizers."""
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from models import load_model, run_attention
from models.compare.alignment import AlignmentError, align_runs, align_words, shared_start, text_words
from models.compare.divergence import head_divergence, js_divergence, match_heads, pairwise_head_divergence
from tests.tiny_models import save_tiny_gemma_style
from viz.compare import (
    difference_heatmap,
    divergence_heatmap,
    matching_heatmap,
    matching_table,
    query_divergence_bars,
    shared_zmax,
)

TEXT = "The animal didn't  cross\nthe café street."
BERT_WORDS = ["The", "animal", "didn", "'t", "cross", "the", "café", "street", "."]


def attention(shape: tuple[int, ...], seed: int, sharpness: float = 4.0) -> np.ndarray:
    """Random peaked attention [..., n, n]; rows sum to 1."""
    logits = sharpness * np.random.default_rng(seed).normal(size=shape)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


# --- divergence ---

def test_js_divergence_matches_scipy():
    p, q = attention((50, 9), 0), attention((50, 9), 1)
    p[:, :3] = 0  # zeros on one side only, as in a causal row
    p /= p.sum(axis=-1, keepdims=True)
    expected = np.array([jensenshannon(a, b) ** 2 for a, b in zip(p, q)])  # scipy gives the distance, in nats
    np.testing.assert_allclose(js_divergence(p, q), expected, rtol=1e-4, atol=1e-6)


def test_js_divergence_hand_cases():
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(np.log(2))
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); KL(p||m) = ln(4/3), KL(q||m) = (ln(2/3) + ln 2) / 2
    expected = 0.5 * np.log(4 / 3) + 0.25 * (np.log(2 / 3) + np.log(2))
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(expected, rel=1e-6)


def test_identical_runs_give_zero_divergence():
    a = attention((3, 4, 7, 7), 0)
    assert (head_divergence(a, a.copy()) == 0).all()
    pairs = pairwise_head_divergence(a, a)
    assert np.allclose(pairs.reshape(12, 12).diagonal(), 0, atol=1e-6)
    assert (pairs.reshape(12, 12) + np.eye(12) > 1e-3).all()  # distinct heads are not "identical"


def test_head_divergence_is_the_mean_over_queries():
    a, b = attention((2, 3, 5, 5), 0), attention((2, 3, 5, 5), 1)
    divergence = head_divergence(a, b)
    assert divergence.shape == (2, 3)
    expected = np.mean([jensenshannon(a[1, 2, i], b[1, 2, i]) ** 2 for i in range(5)])
    assert divergence[1, 2] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="equal shapes"):
        head_divergence(a, b[:, :2])


def test_pairwise_divergence_agrees_with_head_divergence():
    a, b = attention((2, 3, 6, 6), 0), attention((2, 3, 6, 6), 1)
    pairs = pairwise_head_divergence(a, b)  # via mixture entropy, a different formula
    same = np.einsum("lhlh->lh", pairs)
    np.testing.assert_allclose(same, head_divergence(a, b), atol=1e-5)
    np.testing.assert_allclose(pairs[0, 1, 1, 2], head_divergence(a[0:1, 1:2], b[1:2, 2:3])[0, 0], atol=1e-5)


def test_long_texts_are_matched_on_evenly_spaced_queries():
    a, b = attention((1, 2, 20, 20), 0), attention((1, 3, 20, 20), 1)
    queries = np.array([0, 6, 13, 19])  # linspace(0, 19, 4) rounded
    sampled = pairwise_head_divergence(a[:, :, queries], b[:, :, queries], max_queries=100)
    np.testing.assert_allclose(pairwise_head_divergence(a, b, max_queries=4), sampled, atol=1e-6)


def test_a_permuted_head_is_matched():
    a = attention((2, 4, 9, 9), 0)
    layer_order, head_order = [1, 0], [2, 0, 3, 1]
    b = a[layer_order][:, head_order] + 0.02 * attention((2, 4, 9, 9), 5)  # permuted, slightly perturbed
    b /= b.sum(axis=-1, keepdims=True)
    matching = match_heads(a, b)
    for layer in range(2):
        for head in range(4):  # A's head (layer, head) sits in B at (order.index(layer), order.index(head))
            assert (matching.best_layer[layer, head], matching.best_head[layer, head]) == (
                layer_order.index(layer), head_order.index(head))
    assert (matching.best_divergence < 0.01).all()


def test_heads_are_matched_across_models_of_different_shape():
    a = attention((2, 2, 8, 8), 0)
    b = attention((3, 5, 8, 8), 1)  # a bigger model that holds A's heads somewhere
    b[2, 4], b[0, 1], b[1, 0], b[2, 0] = a[0, 0], a[0, 1], a[1, 0], a[1, 1]
    matching = match_heads(a, b)
    assert matching.divergences.shape == (2, 2, 3, 5)
    assert matching.best_layer.tolist() == [[2, 0], [1, 2]]
    assert matching.best_head.tolist() == [[4, 1], [0, 0]]
    assert np.allclose(matching.best_divergence, 0, atol=1e-6)


# --- alignment on tiny models with different tokenizers ---

@pytest.fixture(scope="module")
def tiny(tiny_models):
    return {kind: load_model(str(tiny_models[kind])) for kind in ("bert", "roberta", "gpt2")}


def _aligned(tiny, kind_a, kind_b, text=TEXT, text_pair=None):
    runs = {k: run_attention(tiny[k], text, text_pair) for k in (kind_a, kind_b)}
    return align_runs(tiny[kind_a], runs[kind_a], tiny[kind_b], runs[kind_b], text, text_pair), runs


def test_same_tokenizer_compares_tokens(tiny_models, tiny):
    other = load_model(str(tiny_models["distilbert"]))  # another model on the bert-base vocab
    aligned, runs = _aligned({**tiny, "distilbert": other}, "bert", "distilbert")
    assert aligned.level == "token" and aligned.notice is None
    assert aligned.labels == runs["bert"].tokens
    assert aligned.a is runs["bert"].attentions and aligned.b is runs["distilbert"].attentions


def test_wordpiece_and_byte_level_bpe_are_aligned_by_words(tiny):
    aligned, runs = _aligned(tiny, "bert", "roberta")
    assert aligned.level == "word"
    assert aligned.labels == ["[CLS]/<s>"] + BERT_WORDS + ["[SEP]/</s>"]  # specials sit alike: kept
    assert "word by word" in aligned.notice and "“'t”" in aligned.notice
    for merged in (aligned.a, aligned.b):
        assert merged.shape[-2:] == (11, 11)
        np.testing.assert_allclose(merged.sum(axis=-1), 1, atol=1e-5)
    # BERT: [CLS] the animal didn ' t cross the cafe street . [SEP]; the word "'t" is the pieces "'" and "t"
    bert = runs["bert"].attentions
    assert runs["bert"].tokens[4:6] == ["'", "t"]
    np.testing.assert_allclose(aligned.a[..., 3, 4], bert[..., 3, 4:6].sum(axis=-1), atol=1e-6)  # column: sum
    np.testing.assert_allclose(aligned.a[..., 4, 1], bert[..., 4:6, 1].mean(axis=-1), atol=1e-6)  # row: mean
    # RoBERTa: "café" is Ġca f Ã © (4 pieces), "cross" carries the whitespace-only Ċ
    roberta, tokens = runs["roberta"].attentions, runs["roberta"].tokens
    cafe = slice(tokens.index("Ġca"), tokens.index("Ġca") + 4)
    np.testing.assert_allclose(aligned.b[..., 0, 7], roberta[..., 0, cafe].sum(axis=-1), atol=1e-6)


def test_a_tokenizer_with_degenerate_word_ids_is_aligned_by_its_real_words(tiny, tmp_path):
    gemma_style = load_model(str(save_tiny_gemma_style(tmp_path / "gemma-style")))
    text = "I love my cats"
    runs = [run_attention(loaded, text) for loaded in (gemma_style, tiny["bert"])]
    aligned = align_runs(gemma_style, runs[0], tiny["bert"], runs[1], text)
    assert aligned.labels == ["I", "love", "my", "cats"]  # not one word "I love my cats"
    assert "joins" not in aligned.notice and aligned.a.shape[-1] == 4
    gemma = runs[0].attentions[..., 1:, 1:]  # without <bos>; "cats" is ▁cat s
    query_i = gemma[..., 0, :]
    np.testing.assert_allclose(aligned.a[..., 0, 3], query_i[..., 3:].sum(axis=-1) / query_i.sum(axis=-1), atol=1e-6)


def test_different_special_tokens_are_left_out_and_rows_renormalised(tiny):
    aligned, runs = _aligned(tiny, "bert", "gpt2")  # GPT-2 adds no special tokens
    assert aligned.labels == BERT_WORDS
    assert "special tokens differ ([CLS] [SEP] vs none)" in aligned.notice
    np.testing.assert_allclose(aligned.a.sum(axis=-1), 1, atol=1e-5)
    bert = runs["bert"].attentions[..., 1:-1, 1:-1]  # without [CLS] and [SEP]
    query_the = bert[..., 0, :]
    np.testing.assert_allclose(aligned.a[..., 0, 1], query_the[..., 1] / query_the.sum(axis=-1), atol=1e-5)
    assert np.isnan(aligned.b).sum() == 0 and np.allclose(np.triu(aligned.b[0, 0], 1), 0)  # still causal


def test_sentence_pairs_align_across_tokenizers(tiny):
    aligned, _ = _aligned(tiny, "bert", "roberta", "Hello world.", "Tokens, hello!")
    # [SEP] between the sentences vs </s></s>: placed differently, so specials are left out
    assert aligned.labels == ["Hello", "world", ".", "Tokens", ",", "hello", "!"]
    assert "special tokens differ" in aligned.notice


def test_words_that_do_not_match_are_refused(tiny):
    run_a = run_attention(tiny["bert"], "The cat sat.")
    run_b = run_attention(tiny["roberta"], "The cat sat down.")
    with pytest.raises(AlignmentError, match="where A reads “.”, B reads “down”"):
        align_words(run_a, text_words(tiny["bert"], run_a, "The cat sat.", None),
                    run_b, text_words(tiny["roberta"], run_b, "The cat sat down.", None))


def test_a_text_cut_for_one_model_is_refused(tiny):
    text = "word " * 700  # bert reads 512 tokens, gpt2 1024
    with pytest.raises(AlignmentError, match="too long for model A: it reads only the first 512"):
        _aligned(tiny, "bert", "gpt2", text)


# --- figures ---

def test_difference_heatmap_is_centred_at_zero():
    fig = difference_heatmap(np.array([[0.2, -0.5], [0.1, 0.0]]), ["a", "b"], ["a", "b"], "B − A")
    trace = fig.data[0]
    assert (trace.zmin, trace.zmid, trace.zmax) == (-0.5, 0, 0.5)
    assert trace.colorscale[0][1] != trace.colorscale[-1][1]  # a diverging scale, not Blues


def test_query_divergence_bars_show_each_query():
    a, b = attention((3, 3), 0), attention((3, 3), 1)
    fig = query_divergence_bars(js_divergence(a, b), ["x", "y", "z"], "title")
    np.testing.assert_allclose(fig.data[0].y, [jensenshannon(p, q) ** 2 for p, q in zip(a, b)], rtol=1e-4)
    assert list(fig.data[0].x) == ["0 x", "1 y", "2 z"] and fig.layout.xaxis.title.text == "query"


def test_shared_colour_range_covers_both_heads():
    assert shared_zmax(np.array([[0.3, 0.7]]), np.array([[0.9, 0.1]])) == pytest.approx(0.9)


def test_divergence_heatmap_cells_carry_plain_lists():
    fig = divergence_heatmap(np.array([[0.0, 0.1], [0.2, 0.3]]), (1, 0), "title")
    points = next(t for t in fig.data if t.type == "scatter")
    assert isinstance(points.customdata, (list, tuple)) and list(points.customdata[3]) == [1, 1]  # layer, head


def test_matching_heatmap_rings_the_closest_heads():
    matching = match_heads(*(attention((2, 2, 5, 5), s) for s in (0, 1)))
    fig = matching_heatmap(matching.divergences, matching.best_layer, matching.best_head, "matching")
    rings = next(t for t in fig.data if t.type == "scatter")  # one per row of A, at B's closest head's column
    assert list(rings.x) == (matching.best_layer * 2 + matching.best_head).ravel().tolist()
    assert list(rings.y) == [0, 1, 2, 3]
    assert list(fig.layout.xaxis.ticktext) == ["L0 h0", "L0 h1", "L1 h0", "L1 h1"]
    assert fig.data[0].customdata[2][1] == ["L0 h1", "L1 h0"]  # row 2 (A's L1 h0), column 1 (B's L0 h1)
    table = matching_table(matching.best_layer, matching.best_head, matching.best_divergence, None)
    assert table["closest B head"].tolist() == matching.best_head.ravel().tolist()


def test_shared_start_is_the_whole_text_when_it_fits_and_refuses_when_no_word_does(tiny_models):
    models = [load_model(str(tiny_models[kind])) for kind in ("bert", "gpt2")]
    assert shared_start(models, "The cat sat.", 512) == "The cat sat."
    assert shared_start(models, "The cat sat on the mat.", 6) == "The cat"  # the tiny GPT-2 (a 400-piece BPE) reaches 6 first
    assert shared_start(models[:1] * 2, "The cat sat on the mat.", 6) == "The cat sat on the mat."  # one tokenizer
    with pytest.raises(AlignmentError, match="Not even the text's first word fits in 2 tokens"):
        shared_start(models, "The cat sat.", 2)  # BERT's [CLS] and [SEP] alone

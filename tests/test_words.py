"""models.words: sub-word pieces merged into words, by markers and by the tokenizer's word ids."""
import numpy as np

from models import attention_stacks, load_model, run_attention
from models.analysis.words import (
    merge_words,
    stack_word_spans,
    tokenizer_word_ids,
    word_spans,
    word_spans_for_text,
    word_starts_from_ids,
)


def _words(tokens, special=None):
    special = np.zeros(len(tokens), bool) if special is None else np.array(special)
    return word_spans(tokens, special).words


def test_wordpiece_continuations_join_the_word_before():
    tokens = ["[CLS]", "token", "##ization", "is", "fun", "[SEP]", "##x"]
    spans = word_spans(tokens, np.array([1, 0, 0, 0, 0, 1, 0], bool))
    assert spans.words == ["[CLS]", "tokenization", "is", "fun", "[SEP]", "##x"]  # nothing to join after [SEP]
    assert spans.starts.tolist() == [0, 1, 3, 4, 5, 6] and spans.sizes.tolist() == [1, 2, 1, 1, 1, 1]


def test_byte_level_bpe_marks_word_starts():
    tokens = ["<s>", "The", "Ġcat", "s", "Ġsat", ".", "Ċ", "Next", "</s>"]
    assert _words(tokens, [1, 0, 0, 0, 0, 0, 0, 0, 1]) == ["<s>", "The", "Ġcats", "Ġsat.", "Ċ", "Next", "</s>"]


def test_sentencepiece_marks_word_starts():
    tokens = ["▁The", "▁cat", "s", "▁sat", "</s>"]
    assert _words(tokens, [0, 0, 0, 0, 1]) == ["▁The", "▁cats", "▁sat", "</s>"]


def test_word_ids_win_over_markers():
    tokens = ["Ġdidn", "'t", "Ġgo"]
    ids = [(0, 0), (0, 1), (0, 2)]  # the pre-tokenizer split "'t" off as its own word
    assert word_spans(tokens, np.zeros(3, bool), ids).words == tokens
    assert word_spans(tokens, np.zeros(3, bool)).words == ["Ġdidn't", "Ġgo"]
    # special tokens (None) are words of their own, and sentence B's word 0 is not sentence A's
    assert word_starts_from_ids([None, (0, 0), (0, 0), None, (1, 0), (1, 0)]).tolist() == [1, 1, 0, 1, 1, 0]


def test_merging_sums_key_pieces_and_averages_query_pieces():
    matrix = np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3], [0.0, 0.4, 0.6]], dtype=np.float32)
    spans = word_spans(["a", "b", "##c"], np.zeros(3, bool))  # words: a | bc
    merged = merge_words(matrix, spans, spans)
    expected = np.array([[0.2, 0.3 + 0.5], [(0.6 + 0.0) / 2, (0.1 + 0.3 + 0.4 + 0.6) / 2]])
    np.testing.assert_allclose(merged, expected, rtol=1e-6)
    np.testing.assert_allclose(merged.sum(-1), 1, rtol=1e-6)
    assert merged.dtype == np.float32


def test_a_real_run_merges_with_the_tokenizers_word_ids(tiny_models):
    loaded = load_model(str(tiny_models["bert"]))
    text, pair = "Tokenization is unbelievable.", "Unbelievable!"
    run = run_attention(loaded, text, pair)
    ids = tokenizer_word_ids(loaded, text, pair, run.n)
    assert len(ids) == run.n and ids[0] is None
    spans = word_spans_for_text(loaded, text, pair, run.tokens, run.special_mask)
    assert spans.words == ["[CLS]", "tokenization", "is", "unbelievable", ".", "[SEP]", "unbelievable", "!", "[SEP]"]
    merged = merge_words(run.attentions, spans, spans)
    assert merged.shape == (2, 4, 9, 9)
    np.testing.assert_allclose(merged.sum(-1), 1, rtol=1e-5)


def test_byte_level_run_and_encoder_decoder_stacks(tiny_models):
    loaded = load_model(str(tiny_models["roberta"]))
    run = run_attention(loaded, "Hello world, hello tokens!")
    spans = word_spans_for_text(loaded, "Hello world, hello tokens!", None, run.tokens, run.special_mask)
    assert "".join(spans.words) == "".join(run.tokens) and spans.words[0] == "<s>" and spans.words[-1] == "</s>"

    t5 = load_model(str(tiny_models["t5"]))
    run = run_attention(t5, "The cat sat.", "Le chat.")
    queries, keys = stack_word_spans(t5, run, "cross", "The cat sat.", "Le chat.")
    assert queries.n == len(run.decoder_tokens) and keys.n == len(run.tokens)
    cross = attention_stacks(run)["cross"].attentions
    assert merge_words(cross, queries, keys).shape == (2, 4, len(queries.words), len(keys.words))

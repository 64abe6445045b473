"""models.words: sub-word pieces merged into words, by markers and by the tokenizer's word ids."""
import numpy as np
import pytest

from models import attention_stacks, load_model, run_attention
from models.analysis.words import (
    merge_words,
    spans_whitespace,
    stack_word_spans,
    tokenizer_word_ids,
    whitespace_word_keys,
    word_spans,
    word_spans_for_text,
    word_starts_from_ids,
)
from tests.tiny_models import save_tiny_gemma_style


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
    assert spans.words == ["<s>", "Hello", "world", ",", "hello", "tokens", "!", "</s>"]  # decoded: no "Ġ"
    assert spans.sizes.sum() == run.n

    t5 = load_model(str(tiny_models["t5"]))
    run = run_attention(t5, "The cat sat.", "Le chat.")
    queries, keys = stack_word_spans(t5, run, "cross", "The cat sat.", "Le chat.")
    assert queries.n == len(run.decoder_tokens) and keys.n == len(run.tokens)
    cross = attention_stacks(run)["cross"].attentions
    assert merge_words(cross, queries, keys).shape == (2, 4, len(queries.words), len(keys.words))


# --- word ids that join a whole sentence (SentencePiece without a pre-tokenizer, as Gemma's) ---

@pytest.fixture(scope="module")
def gemma_style(tmp_path_factory):
    return load_model(str(save_tiny_gemma_style(tmp_path_factory.mktemp("gemma-style"))))


def _spans(loaded, text, pair=None):
    run = run_attention(loaded, text, pair)
    return run, word_spans_for_text(loaded, text, pair, run.tokens, run.special_mask)


def test_degenerate_word_ids_are_replaced_by_words_cut_at_whitespace(gemma_style):
    encoding = gemma_style.tokenizer("I love my cat")
    assert encoding.word_ids() == [None, 0, 0, 0, 0]  # what the tokenizer says: one word
    run, spans = _spans(gemma_style, "I love my cat")
    assert run.tokens == ["<bos>", "▁I", "▁love", "▁my", "▁cat"]
    assert spans.starts.tolist() == [0, 1, 2, 3, 4] and len(spans.words) == 5  # <bos>, I, love, my, cat
    run, spans = _spans(gemma_style, "I love my cats")
    assert run.tokens[-2:] == ["▁cat", "s"] and spans.sizes.tolist() == [1, 1, 1, 1, 2]
    run, spans = _spans(gemma_style, "I  love mycat")  # a lone "▁" joins the word after it
    assert run.tokens == ["<bos>", "▁I", "▁", "▁love", "▁my", "c", "a", "t"]
    assert spans.starts.tolist() == [0, 1, 2, 4]
    run, spans = _spans(gemma_style, "I love", "my cat")
    assert spans.starts.tolist() == [0, 1, 2, 3, 4]


def test_word_ids_that_respect_whitespace_are_kept(tiny_models):
    text = "The animal didn't  cross\nthe café street."
    for kind in ("bert", "roberta", "gpt2", "t5"):
        encoding = load_model(str(tiny_models[kind])).tokenizer(text)
        keys = [None if w is None else (0, w) for w in encoding.word_ids()]
        assert not spans_whitespace(keys, encoding.encodings[0].offsets, (text,)), kind


def test_whitespace_word_keys_by_hand():
    text = "ab  cd e"
    offsets = [(0, 0), (0, 1), (1, 2), (2, 3), (3, 5), (5, 6), (6, 8)]  # <bos> "a" "b" " " " c" "d" " e"
    sentences = [None, 0, 0, 0, 0, 0, 0]
    assert whitespace_word_keys(sentences, offsets, (text,)) == [None, (0, 0), (0, 0), (0, 1), (0, 1), (0, 1),
                                                                 (0, 2)]

"""models.core.token_text: labels and words as a reader sees them, decoded by the tokenizer, on
byte-level BPE (GPT-2's split), WordPiece, SentencePiece, and wherever a label is shown or exported."""
import io

import numpy as np
import pytest
import transformers as tf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from models import attention_stacks, load_model, run_attention
from models.analysis.export import matrix_csv, run_npz
from models.analysis.matrix_view import matrix_view
from models.analysis.words import stack_word_spans, word_spans_for_text
from models.compare.alignment import align_runs
from models.core.token_text import pieces_text, token_labels

BYTES_TEXT = "Seán likes 😀 a lot"


def gpt2_split_tokenizer() -> tf.PreTrainedTokenizerFast:
    """Byte-level BPE with the merges that split BYTES_TEXT as GPT-2's tokenizer does: Se|Ã¡n|Ġlikes|ĠðŁĺ|Ģ|Ġa|Ġlot
    (checked against SmolLM2's GPT-2-style tokenizer): "á" is the bytes C3 A1, "😀" is F0 9F 98 80."""
    merges = [("S", "e"), ("Ã", "¡"), ("Ã¡", "n"), ("Ġ", "l"), ("Ġl", "i"), ("Ġli", "k"), ("Ġlik", "e"),
              ("Ġlike", "s"), ("Ġ", "ð"), ("Ġð", "Ł"), ("ĠðŁ", "ĺ"), ("Ġ", "a"), ("Ġl", "o"), ("Ġlo", "t")]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {piece: i for i, piece in enumerate(sorted(alphabet) + ["".join(m) for m in merges])}
    tokenizer = Tokenizer(models.BPE(vocab, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer)


def test_byte_level_pieces_decode_to_characters_and_a_partial_character_to_the_replacement_sign():
    tokenizer = gpt2_split_tokenizer()
    ids = tokenizer(BYTES_TEXT)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == ["Se", "Ã¡n", "Ġlikes", "ĠðŁĺ", "Ģ", "Ġa", "Ġlot"]
    assert token_labels(tokenizer, ids, tokens) == ["Se", "án", "likes", "�", "�", "a", "lot"]
    assert [pieces_text(tokenizer, p) for p in (["Se", "Ã¡n"], ["ĠðŁĺ", "Ģ"], ["Ġlot"])] == ["Seán", "😀", "lot"]


def test_other_families_keep_their_readable_form(tiny_models, default_model):
    bert = default_model.tokenizer
    assert pieces_text(bert, ["play", "##ing"]) == "playing" and pieces_text(bert, ["[CLS]"]) == "[CLS]"
    ids = bert.convert_tokens_to_ids(["##ing", "[SEP]"])
    assert token_labels(bert, ids, ["##ing", "[SEP]"]) == ["##ing", "[SEP]"]  # a continuation stays marked
    roberta = load_model(str(tiny_models["roberta"])).tokenizer
    run_ids = roberta("a\nb")["input_ids"]
    tokens = roberta.convert_ids_to_tokens(run_ids)
    assert "Ċ" in tokens and token_labels(roberta, run_ids, tokens)[tokens.index("Ċ")] == "Ċ"  # whitespace alone


@pytest.fixture(scope="module")
def gpt2(tiny_models):
    return load_model(str(tiny_models["gpt2"]))


def test_a_run_carries_labels_and_its_words_are_the_texts_words(gpt2):
    run = run_attention(gpt2, BYTES_TEXT)
    assert run.tokens[:5] == ["S", "e", "Ã", "¡", "n"]  # the tiny tokenizer: one byte per piece here
    assert run.labels[:5] == ["S", "e", "�", "�", "n"] and "Ã" not in "".join(run.labels)
    stack = attention_stacks(run)["self-attention"]
    assert stack.query_labels == stack.key_labels == run.labels and stack.query_tokens == run.tokens
    spans = word_spans_for_text(gpt2, BYTES_TEXT, None, run.tokens, run.special_mask)
    assert spans.words == BYTES_TEXT.split() == ["Seán", "likes", "😀", "a", "lot"]


def test_the_csv_and_the_npz_carry_the_readable_labels(gpt2):
    run = run_attention(gpt2, BYTES_TEXT)
    spans, _ = stack_word_spans(gpt2, run, "self-attention", BYTES_TEXT, None)
    stack = attention_stacks(run)["self-attention"]
    lens = matrix_view(stack.query_labels, stack.key_labels, spans, spans, run.segment_ids)
    csv = matrix_csv(lens.apply(run.attentions[0, 0]), lens.query_tokens, lens.key_tokens)
    assert csv.splitlines()[0] == "query \\ key,0 Seán,1 likes,2 😀,3 a,4 lot"
    assert [line.split(",")[0] for line in csv.splitlines()[1:]] == ["0 Seán", "1 likes", "2 😀", "3 a", "4 lot"]
    saved = np.load(io.BytesIO(run_npz(run)))
    assert saved["labels"].tolist() == run.labels and saved["tokens"].tolist() == run.tokens


def test_compare_labels_tokens_as_a_reader_sees_them(gpt2, tiny_models):
    other = load_model(str(tiny_models["gpt2"]))
    runs = [run_attention(loaded, BYTES_TEXT) for loaded in (gpt2, other)]
    aligned = align_runs(gpt2, runs[0], other, runs[1], BYTES_TEXT)
    assert aligned.level == "token" and aligned.labels == runs[0].labels


def test_an_encoder_decoder_labels_its_decoder_tokens(tiny_models):
    bart = load_model(str(tiny_models["bart"]))
    run = run_attention(bart, BYTES_TEXT, "Seán")
    assert len(run.decoder_labels) == len(run.decoder_tokens)
    assert "Ã" in "".join(run.decoder_tokens) and "Ã" not in "".join(run.decoder_labels)
    queries, keys = stack_word_spans(bart, run, "cross", BYTES_TEXT, "Seán")
    assert queries.words == ["</s>", "<s>", "Seán"]  # the target's word ids, shifted behind the start token
    assert keys.words == ["<s>", *BYTES_TEXT.split(), "</s>"]

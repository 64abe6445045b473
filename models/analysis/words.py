"""Sub-word tokens merged into words, and attention merged with them.

A word's row is the mean of its pieces' rows (a query word attends as its pieces do on
average) and a word's column is the sum of its pieces' columns (attention paid to any piece
is paid to the word), so merged rows still sum to 1.

    spans = word_spans_for_text(loaded, text, text_pair, run.tokens, run.special_mask)  # the tokenizer's word ids
    merged = merge_words(run.attentions, spans, spans)  # [layers, heads, words, words]
    spans.words                                         # each word's text, decoded by the tokenizer
"""
import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from models.core.loading import LoadedModel
from models.core.run import AttentionRun, decoder_target, encode
from models.core.token_text import pieces_text


@dataclass(frozen=True)
class WordSpans:
    """A split of n tokens into w contiguous words."""

    starts: np.ndarray  # [w] int: index of each word's first token, increasing, starts[0] == 0
    words: list[str]  # w: each word's text, decoded by the tokenizer; without one, its pieces joined ("Ġthe")
    n: int  # tokens

    @property
    def sizes(self) -> np.ndarray:
        """[w] pieces per word."""
        return np.diff(np.append(self.starts, self.n))

    def first_token_values(self, values: np.ndarray) -> np.ndarray:
        """A per-token array [n] (segment ids, special mask) as a per-word one [w]."""
        return np.asarray(values)[self.starts]


def _joined(pieces: list[str]) -> str:
    return pieces[0] + "".join(p.removeprefix("##") for p in pieces[1:])


def spans_from_starts(tokens: list[str], is_start: np.ndarray,
                      text_of: Callable[[list[str]], str] = _joined) -> WordSpans:
    """Words starting where `is_start` [n] is true, each labelled text_of(its pieces)."""
    starts = np.flatnonzero(is_start)
    bounds = np.append(starts, len(tokens))
    words = [text_of(tokens[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return WordSpans(starts=starts, words=words, n=len(tokens))


def word_starts_from_ids(word_ids: list) -> np.ndarray:
    """[n] bool from per-token word keys (None for special tokens, each its own word)."""
    starts = np.ones(len(word_ids), dtype=bool)
    for i in range(1, len(word_ids)):
        starts[i] = word_ids[i] is None or word_ids[i] != word_ids[i - 1]
    return starts


def word_starts_from_markers(tokens: list[str], special_mask: np.ndarray) -> np.ndarray:
    """[n] bool from the tokens' own markers, for tokenizers without word_ids.

    WordPiece marks a continuation ("##ing"); byte-level BPE ("Ġthe") and SentencePiece
    ("▁the") mark a word's start, so a piece without the marker continues the word before.
    """
    special = np.asarray(special_mask, dtype=bool)
    wordpiece = any(t.startswith("##") for t in tokens)
    start_marker = next((m for m in ("Ġ", "▁") if any(t.startswith(m) for t in tokens)), None)
    starts = np.ones(len(tokens), dtype=bool)
    for i in range(1, len(tokens)):
        if special[i] or special[i - 1]:
            continue
        token = tokens[i]
        if wordpiece:
            starts[i] = not token.startswith("##")
        elif start_marker is not None:
            starts[i] = token.startswith((start_marker, "Ċ")) or tokens[i - 1].startswith("Ċ")
    return starts


def word_spans(tokens: list[str], special_mask: np.ndarray, word_ids: list | None = None,
               text_of: Callable[[list[str]], str] = _joined) -> WordSpans:
    """Words of `tokens`: from the tokenizer's word ids when given (more reliable), else from markers;
    each labelled text_of(its pieces) (default: the pieces joined, markers kept)."""
    if word_ids is not None and len(word_ids) == len(tokens):
        return spans_from_starts(tokens, word_starts_from_ids(word_ids), text_of)
    return spans_from_starts(tokens, word_starts_from_markers(tokens, special_mask), text_of)


def _decoded(loaded: LoadedModel) -> Callable[[list[str]], str]:
    return functools.partial(pieces_text, loaded.tokenizer)


def _after_space(texts: tuple[str, ...], sentence: int, previous_end: int, start: int) -> bool:
    """Is there whitespace between the previous token's end and this token's first character?"""
    return any(c.isspace() for c in texts[sentence][previous_end:start + 1])


def spans_whitespace(keys: list, offsets: list[tuple[int, int]], texts: tuple[str, ...]) -> bool:
    """Do the word keys join tokens across whitespace? A SentencePiece tokenizer without a
    pre-tokenizer (Gemma's: its normalizer turns spaces into "▁") numbers every piece of a
    sentence as word 0."""
    return any(keys[i] is not None and keys[i] == keys[i - 1]
               and _after_space(texts, keys[i][0], offsets[i - 1][1], offsets[i][0]) for i in range(1, len(keys)))


def whitespace_word_keys(sentences: list, offsets: list[tuple[int, int]], texts: tuple[str, ...]) -> list:
    """Per-token word keys (sentence, word) from the text itself: a word starts after whitespace
    (a token that is only whitespace, "▁" or "Ġ" alone, joins the word that follows it)."""
    keys, word, blank = [], -1, False  # blank: the current word has covered only whitespace so far
    for i, sentence in enumerate(sentences):
        if sentence is None:
            keys.append(None)
            continue
        start, end = offsets[i]
        continues = keys and keys[-1] is not None and keys[-1][0] == sentence
        if not continues or (not blank and _after_space(texts, sentence, offsets[i - 1][1], start)):
            word += 1
            blank = True
        blank = blank and not texts[sentence][start:end].strip()
        keys.append((sentence, word))
    return keys


def _word_keys(encoding, texts: tuple[str, ...]) -> list:
    """Per-token word keys (sentence, word) of a fast encoding: its word ids, unless they join words
    across whitespace (spans_whitespace); then words cut at whitespace by the character offsets."""
    sentences, words = encoding.sequence_ids(0), encoding.word_ids(0)
    keys = [None if w is None else (s, w) for s, w in zip(sentences, words)]
    offsets = encoding.encodings[0].offsets
    return whitespace_word_keys(sentences, offsets, texts) if spans_whitespace(keys, offsets, texts) else keys


def tokenizer_word_ids(loaded: LoadedModel, text: str, text_pair: str | None, n: int) -> list | None:
    """Per-token word keys (sentence, word) of the run's encoder tokens (see _word_keys), or None
    for slow tokenizers."""
    encoding, _ = encode(loaded, text, text_pair)
    return _word_keys(encoding, (text, text_pair or ""))[:n] if encoding.is_fast else None


def word_spans_for_text(loaded: LoadedModel, text: str, text_pair: str | None,
                        tokens: list[str], special_mask: np.ndarray) -> WordSpans:
    """Words of a run's (encoder) tokens, using the tokenizer's word ids where it has them."""
    ids = tokenizer_word_ids(loaded, text, text_pair, len(tokens))
    return word_spans(tokens, special_mask, ids, _decoded(loaded))


def special_token_mask(loaded: LoadedModel, tokens: list[str]) -> np.ndarray:
    """[n] bool: tokens that are the tokenizer's special tokens (for token lists without a mask)."""
    special = set(loaded.tokenizer.all_special_tokens)
    return np.array([t in special for t in tokens], dtype=bool)


def decoder_word_spans(loaded: LoadedModel, tokens: list[str], target: str) -> WordSpans:
    """Words of an encoder-decoder's decoder tokens: the target's tokens shifted right behind the
    decoder's start token (teacher forcing), so the target's word keys shifted alike; markers
    for slow tokenizers."""
    encoding = loaded.tokenizer(text_target=target, truncation=True, max_length=loaded.max_tokens)
    keys = ([None] + _word_keys(encoding, (target,)))[:len(tokens)] if encoding.is_fast else None
    return word_spans(tokens, special_token_mask(loaded, tokens), keys, _decoded(loaded))


def stack_word_spans(loaded: LoadedModel, run: AttentionRun, stack_name: str, text: str,
                     text_pair: str | None) -> tuple[WordSpans, WordSpans]:
    """(query words, key words) of a stack of models.core.run.attention_stacks(run)."""
    if stack_name in ("decoder", "cross"):
        decoder = decoder_word_spans(loaded, run.decoder_tokens, decoder_target(text, text_pair))
        if stack_name == "decoder":
            return decoder, decoder
        return decoder, word_spans_for_text(loaded, text, text_pair, run.tokens, run.special_mask)
    encoder = word_spans_for_text(loaded, text, text_pair, run.tokens, run.special_mask)
    return encoder, encoder


def merge_words(matrix: np.ndarray, query_spans: WordSpans, key_spans: WordSpans) -> np.ndarray:
    """[..., q, k] -> [..., wq, wk]: sum over a word's key pieces, mean over its query pieces."""
    if len(key_spans.starts) < key_spans.n:
        matrix = np.add.reduceat(matrix, key_spans.starts, axis=-1)
    if len(query_spans.starts) < query_spans.n:
        matrix = np.add.reduceat(matrix, query_spans.starts, axis=-2)
        matrix /= query_spans.sizes.astype(matrix.dtype)[:, None]
    return matrix

"""Two runs on one text put on common positions: tokens, or the words both runs share.

Runs of models with the same tokenizer compare token by token. Otherwise their sub-word pieces
are merged into words, and words are matched by the characters of the text they cover; where
that can't be done an AlignmentError says why.

    aligned = align_runs(loaded_a, run_a, loaded_b, run_b, text, text_pair)
    aligned.a, aligned.b                      # [layers, heads, m, m] on the same m positions

A text too long for either model is compared on its start both read whole (`shared_start`).
"""
import re
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from models.analysis.words import WordSpans, merge_words, spans_from_starts, word_spans_for_text
from models.core.loading import LoadedModel
from models.core.run import AttentionRun, encode

EPS = 1e-12

Level = Literal["token", "word"]
CharSpan = tuple[int, int, int]  # (sentence 0 or 1, first character, end character) in that sentence's text


class AlignmentError(ValueError):
    """Two runs can't be put on common positions; str(error) is a message for the user."""


@dataclass(frozen=True)
class TextWords:
    """A run's tokens grouped into words, and the characters of the text each word covers."""

    spans: WordSpans  # the words as token ranges (models.analysis.words)
    chars: list[CharSpan | None]  # per word; None for a special token ([CLS], </s>)
    texts: tuple[str, ...]  # the texts the character positions point into: (text,) or (text, text_pair)


@dataclass(frozen=True)
class AlignedRuns:
    """A's and B's attention on the same m positions: tokens, or words both runs share."""

    labels: list[str]  # m: the token as a reader sees it (AttentionRun.labels), or the word as written in the text
    a: np.ndarray  # [La, Ha, m, m] rows sum to 1
    b: np.ndarray  # [Lb, Hb, m, m]
    level: Level
    notice: str | None  # what the alignment did, for the reader; None at token level


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def text_words(loaded: LoadedModel, run: AttentionRun, text: str, text_pair: str | None) -> TextWords:
    """The words of a run's (encoder) tokens with their character spans, from the tokenizer's offsets."""
    encoding, _ = encode(loaded, text, text_pair)
    if not encoding.is_fast:
        raise AlignmentError(f"{loaded.spec}'s tokenizer gives no character offsets, so its words can't be "
                             "matched with another tokenizer's.")
    offsets, sentences = encoding.encodings[0].offsets, encoding.encodings[0].sequence_ids
    spans = word_spans_for_text(loaded, text, text_pair, run.tokens, run.special_mask)
    texts = (text, text_pair) if text_pair else (text,)
    chars = []
    for first, size in zip(spans.starts, spans.sizes):
        sentence = sentences[first]
        if run.special_mask[first] or sentence is None:
            chars.append(None)
            continue
        start = min(offsets[i][0] for i in range(first, first + size))
        end = max(offsets[i][1] for i in range(first, first + size))
        chars.append((sentence, *_trimmed(texts[sentence], start, end)))
    return TextWords(spans, chars, texts)


@dataclass
class _Chunk:
    """Consecutive words of one run covering a piece of text (whitespace-only words ride along)."""

    words: list[int]
    start: tuple[int, int]  # (sentence, character)
    end: tuple[int, int]


@dataclass(frozen=True)
class _Unit:
    """A's words and B's words that cover the same characters: one position of the comparison."""

    words_a: list[int]
    words_b: list[int]
    sentence: int
    start: int
    end: int
    joined: bool  # the tokenizers cut this piece of text into different words


def _chunks(words: TextWords) -> list[_Chunk]:
    chunks: list[_Chunk] = []
    pending: list[int] = []  # whitespace-only words before the first real one of a sentence
    for index, span in enumerate(words.chars):
        if span is None:
            continue
        sentence, start, end = span
        if start == end:  # "Ġ" or "Ċ" alone: no character of its own
            (chunks[-1].words if chunks and chunks[-1].end[0] == sentence else pending).append(index)
            continue
        chunks.append(_Chunk(pending + [index], (sentence, start), (sentence, end)))
        pending = []
    if pending and chunks:
        chunks[-1].words.extend(pending)
    return chunks


def _mismatch(words_a: TextWords, words_b: TextWords, a: list[_Chunk], b: list[_Chunk], i: int, j: int) -> str:
    def said(words: TextWords, chunks: list[_Chunk], k: int) -> str:
        if k >= len(chunks):
            return "nothing more"
        (sentence, start), (_, end) = chunks[k].start, chunks[k].end
        return f"“{words.texts[sentence][start:end]}”"

    return (f"The two models don't read the same text: where A reads {said(words_a, a, i)}, B reads "
            f"{said(words_b, b, j)}, so their words can't be lined up.")


def _common_units(words_a: TextWords, words_b: TextWords) -> list[_Unit]:
    """The smallest pieces of text where both runs have a word boundary, in text order.

    "didn't" is one unit when one tokenizer cuts it into didn ' t and the other into didn 't.
    """
    a, b = _chunks(words_a), _chunks(words_b)
    units, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i].start != b[j].start:
            raise AlignmentError(_mismatch(words_a, words_b, a, b, i, j))
        group_a, group_b = [a[i]], [b[j]]
        i, j = i + 1, j + 1
        while group_a[-1].end != group_b[-1].end:
            a_behind = group_a[-1].end < group_b[-1].end
            if (a_behind and i == len(a)) or (not a_behind and j == len(b)):
                raise AlignmentError(_mismatch(words_a, words_b, a, b, i, j))
            if a_behind:
                group_a.append(a[i])
                i += 1
            else:
                group_b.append(b[j])
                j += 1
        (sentence, start), (end_sentence, end) = group_a[0].start, group_a[-1].end
        if sentence != end_sentence:  # a unit never spans the special tokens between sentences
            raise AlignmentError(_mismatch(words_a, words_b, a, b, i - 1, j - 1))
        units.append(_Unit([w for c in group_a for w in c.words], [w for c in group_b for w in c.words],
                           sentence, start, end, joined=len(group_a) + len(group_b) > 2))
    if i < len(a) or j < len(b):
        raise AlignmentError(_mismatch(words_a, words_b, a, b, i, j))
    return units


def _specials(words: TextWords) -> list[int]:
    return [index for index, span in enumerate(words.chars) if span is None]


def _special_gaps(words: TextWords, units: list[list[int]]) -> list[int]:
    """For each special token, how many common units come before it."""
    firsts = sorted(min(unit) for unit in units)
    return [int(np.searchsorted(firsts, index)) for index in _specials(words)]


def _merged(attentions: np.ndarray, tokens: list[str], words: TextWords, units: list[list[int]],
            keep_specials: bool) -> np.ndarray:
    """attentions [L, H, n, n] -> [L, H, m, m] over the units (and the special tokens, if kept)."""
    first_words = sorted([min(unit) for unit in units] + _specials(words))
    is_start = np.zeros(len(tokens), dtype=bool)
    is_start[words.spans.starts[first_words]] = True
    spans = spans_from_starts(tokens, is_start)
    merged = merge_words(attentions, spans, spans)
    if keep_specials:
        return merged
    kept = np.array([words.chars[w] is not None for w in first_words])
    merged = merged[..., kept, :][..., kept]
    return merged / np.maximum(merged.sum(axis=-1, keepdims=True), EPS)  # over the text's words only


def _labels(units: list[_Unit], words_a: TextWords, words_b: TextWords, tokens_a: list[str], tokens_b: list[str],
            keep_specials: bool) -> list[str]:
    """In position order: a unit's text; a special token as both models write it ("[CLS]/<s>")."""
    entries = [(min(u.words_a), words_a.texts[u.sentence][u.start:u.end]) for u in units]
    if keep_specials:
        for wa, wb in zip(_specials(words_a), _specials(words_b)):
            token_a, token_b = tokens_a[words_a.spans.starts[wa]], tokens_b[words_b.spans.starts[wb]]
            entries.append((wa, token_a if token_a == token_b else f"{token_a}/{token_b}"))
    return [label for _, label in sorted(entries)]


def _special_tokens(run: AttentionRun) -> str:
    return " ".join(t for t, special in zip(run.tokens, run.special_mask) if special) or "none"


def align_words(run_a: AttentionRun, words_a: TextWords, run_b: AttentionRun, words_b: TextWords) -> AlignedRuns:
    """Both runs' attention merged onto the words they share (models.analysis.words.merge_words: a word's
    row is the mean of its pieces' rows, its column the sum of its pieces' columns).

    Special tokens are kept when both runs place them alike ([CLS] with <s>); otherwise they are
    left out and every row is renormalised over the text's words.
    """
    for run, name in ((run_a, "A"), (run_b, "B")):
        if run.truncated:
            raise AlignmentError(f"The text is too long for model {name}: it reads only the first {run.n} of "
                                 f"{run.n_input_tokens} tokens, so the two models don't see the same words. "
                                 "Shorten the text to compare them.")
    units = _common_units(words_a, words_b)
    units_a, units_b = [u.words_a for u in units], [u.words_b for u in units]
    gaps_a, gaps_b = _special_gaps(words_a, units_a), _special_gaps(words_b, units_b)
    keep_specials = gaps_a == gaps_b
    joined = [f"“{words_a.texts[u.sentence][u.start:u.end]}”" for u in units if u.joined]
    notice = (f"A and B split the text into different tokens ({run_a.n} and {run_b.n}), so they are compared "
              f"word by word: {len(units)} words. A word's row is the mean of its pieces' rows, its column the sum "
              "of its pieces' columns.")
    if joined:
        verb = "joins" if len(joined) == 1 else "join"
        notice += (f" {len(joined)} of them {verb} words the two tokenizers cut differently: "
                   f"{', '.join(joined[:3])}{', …' if len(joined) > 3 else ''}.")
    if not keep_specials:
        notice += (f" Their special tokens differ ({_special_tokens(run_a)} vs {_special_tokens(run_b)}), so those "
                   "are left out and each row is renormalised over the text's words.")
    return AlignedRuns(_labels(units, words_a, words_b, run_a.tokens, run_b.tokens, keep_specials),
                       _merged(run_a.attentions, run_a.tokens, words_a, units_a, keep_specials),
                       _merged(run_b.attentions, run_b.tokens, words_b, units_b, keep_specials), "word", notice)


def shared_start(models: Sequence[LoadedModel], text: str, limit: int) -> str:
    """The longest start of `text`, ending where a word ends, that every model reads whole in at most
    `limit` tokens (its special tokens counted): models with different tokenizers, each cut to its
    own first `limit` tokens, would read different words. `text` itself when it fits, or when every
    model tokenizes it alike (cut to their first `limit` tokens, they read the same words). Tokenizes
    only, about log2(words) times per model. Raises AlignmentError when not even the first word fits.
    """
    def fits(end: int) -> bool:
        return all(encode(loaded, text[:end])[1] <= limit for loaded in models)

    whole = [encode(loaded, text) for loaded in models]  # (encoding, untruncated count) of each
    if all(count <= limit for _, count in whole) or len({tuple(encoding["input_ids"][0, :limit].tolist())
                                                          for encoding, _ in whole}) == 1:
        return text
    ends = [match.start() for match in re.finditer(r"\s+", text) if match.start()]  # where words end
    fitting = 0  # binary search: the starts ending at ends[:fitting] fit
    high = len(ends)
    while fitting < high:
        middle = (fitting + high) // 2
        fitting, high = (middle + 1, high) if fits(ends[middle]) else (fitting, middle)
    if fitting == 0:
        raise AlignmentError(f"Not even the text's first word fits in {limit:,} tokens of both models.")
    return text[:ends[fitting - 1]]


def align_runs(loaded_a: LoadedModel, run_a: AttentionRun, loaded_b: LoadedModel, run_b: AttentionRun,
               text: str, text_pair: str | None = None) -> AlignedRuns:
    """The two runs' (encoder) self-attention on common positions: tokens when both tokenizers
    wrote the same tokens, else words (raises AlignmentError when the words can't be matched)."""
    if run_a.tokens == run_b.tokens:
        return AlignedRuns(list(run_a.labels), run_a.attentions, run_b.attentions, "token", None)
    return align_words(run_a, text_words(loaded_a, run_a, text, text_pair),
                       run_b, text_words(loaded_b, run_b, text, text_pair))

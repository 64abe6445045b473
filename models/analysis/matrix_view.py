"""How a page looks at a stack: token or word level, and which sentence-pair block.

A MatrixView maps any [..., q, k] matrix of a stack (one head, all heads, an aggregate, the
rollout) to what is shown, so every view of the page agrees on rows and columns.

    lens = matrix_view(stack.query_tokens, stack.key_tokens, spans, spans, run.segment_ids, "A->B")
    shown = lens.apply(stack.attentions)  # [layers, heads, A words, B words]
"""
from dataclasses import dataclass

import numpy as np

from models.analysis.pairs import has_pair, pair_block, pair_segments
from models.analysis.words import WordSpans, merge_words


@dataclass(frozen=True)
class MatrixView:
    query_spans: WordSpans | None  # None: token level
    key_spans: WordSpans | None
    rows: np.ndarray  # kept query positions (in words when word level)
    cols: np.ndarray  # kept key positions
    query_tokens: list[str]  # labels of the kept rows
    key_tokens: list[str]  # labels of the kept columns
    sentence_b_start: int | None  # first row of sentence B (pair runs, block "all"), else None

    def apply(self, matrix: np.ndarray) -> np.ndarray:
        """[..., q, k] (token level) -> [..., len(rows), len(cols)]."""
        if self.query_spans is not None:
            matrix = merge_words(matrix, self.query_spans, self.key_spans)
        if len(self.rows) < matrix.shape[-2]:  # gathers copy the whole stack: only when a block is picked
            matrix = matrix[..., self.rows, :]
        if len(self.cols) < matrix.shape[-1]:
            matrix = matrix[..., self.cols]
        return matrix


def matrix_view(query_tokens: list[str], key_tokens: list[str], query_spans: WordSpans | None,
              key_spans: WordSpans | None, segment_ids: np.ndarray | None, block: str = "all") -> MatrixView:
    """Word level when spans are given; `block` (models.analysis.pairs.PAIR_BLOCKS) needs the stack's
    token-level `segment_ids` and applies to self-attention only."""
    if query_spans is not None:
        query_tokens, key_tokens = query_spans.words, key_spans.words
        if segment_ids is not None:
            segment_ids = query_spans.first_token_values(segment_ids)
    rows, cols = pair_block(segment_ids, block) if segment_ids is not None else (
        np.arange(len(query_tokens)), np.arange(len(key_tokens)))
    b_start = None
    if block == "all" and segment_ids is not None and has_pair(segment_ids):
        b_start = int(np.argmax(pair_segments(segment_ids) == 1))
    return MatrixView(query_spans, key_spans, rows, cols,
                [query_tokens[i] for i in rows], [key_tokens[j] for j in cols], b_start)

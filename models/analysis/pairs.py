"""Sentence pairs: which positions belong to sentence A or B, and the blocks A->A, A->B, B->A, B->B."""
import numpy as np

PAIR_BLOCKS = ("all", "A->A", "A->B", "B->A", "B->B")


def pair_segments(segment_ids: np.ndarray) -> np.ndarray:
    """[n] in {0, 1}: the sentence of each token, special tokens joining a neighbour.

    A special token belongs to the sentence before it ([SEP] closes its sentence), a leading
    one ([CLS], <s>) to the sentence after it: the split BERT's token_type_ids make.
    """
    segments = np.asarray(segment_ids, dtype=np.int64).copy()
    known = np.flatnonzero(segments >= 0)
    if known.size == 0:
        return np.zeros_like(segments)
    before = np.maximum.accumulate(np.where(segments >= 0, np.arange(len(segments)), -1))
    filled = np.where(before >= 0, segments[np.maximum(before, 0)], segments[known[0]])
    return filled


def has_pair(segment_ids: np.ndarray) -> bool:
    return bool((np.asarray(segment_ids) == 1).any())


def pair_block(segment_ids: np.ndarray, block: str) -> tuple[np.ndarray, np.ndarray]:
    """(query positions, key positions) of a block of PAIR_BLOCKS, e.g. "A->B": A's queries, B's keys.

    Slice a matrix with m[np.ix_(queries, keys)]; its rows then show the share of each query's
    attention that lands in the other block (they no longer sum to 1).
    """
    if block not in PAIR_BLOCKS:
        raise ValueError(f"unknown block {block!r}; expected one of {PAIR_BLOCKS}")
    every = np.arange(len(segment_ids))
    if block == "all":
        return every, every
    segments = pair_segments(segment_ids)
    side = {"A": 0, "B": 1}
    source, target = block.split("->")
    return every[segments == side[source]], every[segments == side[target]]

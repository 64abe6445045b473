"""Which heads to switch off: written as text for links ("17.3,18.6" is layer 17 head 3 and layer 18
head 6), toggled one at a time, or picked by a statistic (the k heads with the highest induction score).

    parse_heads("17.3, 18.6, x", counts=(9,) * 30).heads     # [(17, 3), (18, 6)]; .malformed == ["x"]
    heads_text([(18, 6), (17, 3)])                           # "17.3,18.6"
    ranked_heads(induction, 5)                               # [layers, heads] -> the 5 highest, highest first
"""
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from models.interventions.ablation import Head

_HEAD = re.compile(r"(\d+)\.(\d+)")
_SEPARATORS = re.compile(r"[,;\s]+")


@dataclass(frozen=True)
class ParsedHeads:
    heads: list[Head]  # sorted, distinct, each a head of the model
    malformed: list[str]  # parts that aren't layer.head
    out_of_range: list[str]  # layer.head parts the model doesn't have
    rejected: list[str]  # both of the above, in the order they were written (to quote back to the user)


def heads_text(heads: Iterable[Head]) -> str:
    """The heads as "layer.head" separated by commas, sorted and without repeats ("" for none)."""
    return ",".join(f"{layer}.{head}" for layer, head in sorted(set(heads)))


def parse_heads(text: str, counts: tuple[int, ...]) -> ParsedHeads:
    """Heads from text such as "17.3,18.6" (commas, semicolons or spaces between them) for a stack
    with counts[layer] heads in each layer; what can't be read or isn't in the model is listed apart."""
    heads, malformed, out_of_range, rejected = set(), [], [], []
    for part in filter(None, _SEPARATORS.split(text.strip())):
        match = _HEAD.fullmatch(part)
        layer, head = (int(match[1]), int(match[2])) if match else (len(counts), 0)
        if layer < len(counts) and head < counts[layer]:
            heads.add((layer, head))
            continue
        (out_of_range if match else malformed).append(part)
        rejected.append(part)
    return ParsedHeads(sorted(heads), malformed, out_of_range, rejected)


def toggled(heads: Iterable[Head], head: Head) -> list[Head]:
    """The heads with `head` added, or removed if it was there; sorted."""
    return sorted(set(heads) ^ {head})


def ranked_heads(values: np.ndarray, k: int, highest: bool = True) -> list[Head]:
    """The k heads with the highest (or lowest) value of values [layers, heads], that one first.

    NaN values (a statistic a head has no tokens for) are never picked; ties go to the earlier head.
    """
    flat = values.ravel()
    order = [i for i in np.argsort(-flat if highest else flat, kind="stable") if not np.isnan(flat[i])]
    return [tuple(int(x) for x in divmod(int(i), values.shape[1])) for i in order[:max(k, 0)]]

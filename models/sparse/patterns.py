"""Sparse attention patterns as boolean masks [n, n]: query rows i, key columns j, True = may attend.

Each kind follows its paper (and reference code where the two differ, as noted):
- full, causal (j <= i);
- sliding_window: |i - j| <= w, w keys on each side (Longformer; HF `attention_window` = 2w);
- dilated: j = i + k d for |k| <= w (Longformer's dilated window, receptive field w d);
- strided, stride l (Sparse Transformer): A1 = the previous l keys i-l+1 .. i (the reference
  code's band; the paper's set {max(0, i-l) .. i} has l + 1), A2 = {j : (i - j) mod l = 0};
- fixed, block l, c summary cells: A1 = same block, A2 = {j : j mod l >= l - c};
  strided and fixed are causal as in the paper unless causal=False;
- longformer: sliding window w plus symmetric global tokens (their rows and columns are full);
- bigbird: blocks of b; a middle block row sees `window_blocks` blocks around it, the first and
  last blocks (global as rows and columns) and `random_blocks` blocks drawn with `seed` from
  the blocks outside its window and the globals;
- blockwise: i and j in the same block of b.
Masks are built row-block by row-block from index arithmetic, so counting the active cells of
a 16384-token pattern never needs its 16384^2 matrix.
"""
import functools
import inspect
from dataclasses import dataclass, field, replace
from typing import Callable, Literal

import numpy as np

KINDS = ("full", "causal", "sliding_window", "dilated", "strided", "fixed", "longformer", "bigbird", "blockwise")
PARTS = ("A1", "A2", "union")  # the components of strided and fixed
Combine = Literal["union", "intersection"]


class PatternError(ValueError):
    """Parameters that define no pattern; str(error) is a message for the user."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PatternError(message)


def _causal(i: np.ndarray, j: np.ndarray, causal: bool) -> np.ndarray:
    return j <= i if causal else np.ones(np.broadcast_shapes(i.shape, j.shape), bool)


def _full(i, j, n):
    return np.ones(np.broadcast_shapes(i.shape, j.shape), bool)


def _causal_kind(i, j, n):
    return j <= i


def _sliding_window(i, j, n, w: int = 2, causal: bool = False):
    _require(w >= 0, f"The window w must be 0 or more, got {w}.")
    return (np.abs(i - j) <= w) & _causal(i, j, causal)


def _dilated(i, j, n, w: int = 2, d: int = 2, causal: bool = False):
    _require(w >= 0 and d >= 1, f"A dilated window needs w >= 0 and dilation d >= 1, got w={w}, d={d}.")
    return (np.abs(i - j) <= w * d) & (i % d == j % d) & _causal(i, j, causal)


def _component(a1: np.ndarray, a2: np.ndarray, part: str) -> np.ndarray:
    """The mask of `part`: the factorised pattern's set A1, A2, or their union."""
    _require(part in PARTS, f"The component must be one of {', '.join(PARTS)}, got '{part}'.")
    return {"A1": a1, "A2": a2, "union": a1 | a2}[part]


def _strided(i, j, n, l: int = 4, part: str = "union", causal: bool = True):
    _require(l >= 1, f"The stride l must be 1 or more, got {l}.")
    past = _causal(i, j, causal)
    a1 = (np.abs(i - j) < l) & past  # l keys i-l+1 .. i, as in the reference code
    a2 = (i % l == j % l) & past  # (i - j) mod l = 0, without an [r, n] modulo
    return _component(a1, a2, part)


def _fixed(i, j, n, l: int = 4, c: int = 1, part: str = "union", causal: bool = True):
    _require(l >= 1 and 1 <= c <= l, f"The fixed pattern needs l >= 1 and 1 <= c <= l, got l={l}, c={c}.")
    past = _causal(i, j, causal)
    a1 = (j // l == i // l) & past
    a2 = (j % l >= l - c) & past
    return _component(a1, a2, part)


def _global_rows_and_columns(i, j, n, tokens) -> np.ndarray:
    tokens = np.asarray(sorted(set(tokens)), dtype=int)
    _require(tokens.size == 0 or (tokens.min() >= 0 and tokens.max() < n),
             f"Global tokens must be positions 0 to {n - 1}, got {', '.join(map(str, tokens))}.")
    return np.isin(i, tokens) | np.isin(j, tokens)


def _longformer(i, j, n, w: int = 2, global_tokens: tuple[int, ...] = (0,)):
    return _sliding_window(i, j, n, w) | _global_rows_and_columns(i, j, n, global_tokens)


def block_count(n: int, b: int) -> int:
    return -(-n // b)


def bigbird_blocks(num_blocks: int, window_blocks: int = 3, random_blocks: int = 3, seed: int = 0) -> np.ndarray:
    """BigBird's block layout [num_blocks, num_blocks] bool, first and last block global."""
    _require(window_blocks >= 1 and window_blocks % 2 == 1, f"window_blocks must be odd, got {window_blocks}.")
    _require(random_blocks >= 0, f"random_blocks must be 0 or more, got {random_blocks}.")
    rows = np.arange(num_blocks)
    layout = np.abs(rows[:, None] - rows[None, :]) <= window_blocks // 2
    layout[[0, -1], :] = True
    layout[:, [0, -1]] = True
    rng = np.random.default_rng(seed)
    for row in range(1, num_blocks - 1):
        free = np.flatnonzero(~layout[row])  # outside the window and the global blocks
        layout[row, rng.permutation(free)[:random_blocks]] = True
    return layout


def _bigbird(i, j, n, b: int = 4, window_blocks: int = 3, random_blocks: int = 1, seed: int = 0):
    _require(b >= 1, f"The block size b must be 1 or more, got {b}.")
    layout = bigbird_blocks(block_count(n, b), window_blocks, random_blocks, seed)
    return layout[i // b, j // b]


def _blockwise(i, j, n, b: int = 4):
    _require(b >= 1, f"The block size b must be 1 or more, got {b}.")
    return i // b == j // b


Builder = Callable[..., np.ndarray]  # (i [r, 1], j [1, n], n, **params) -> bool [r, n]
BUILDERS: dict[str, Builder] = {
    "full": _full,
    "causal": _causal_kind,
    "sliding_window": _sliding_window,
    "dilated": _dilated,
    "strided": _strided,
    "fixed": _fixed,
    "longformer": _longformer,
    "bigbird": _bigbird,
    "blockwise": _blockwise,
}


def defaults(kind: str) -> dict:
    """The parameters `kind` takes, with their default values."""
    _require(kind in BUILDERS, f"Unknown pattern '{kind}'; choose one of {', '.join(KINDS)}.")
    parameters = list(inspect.signature(BUILDERS[kind]).parameters.values())[3:]  # after i, j, n
    return {p.name: p.default for p in parameters}


def pattern_rows(kind: str, n: int, start: int, stop: int, **params) -> np.ndarray:
    """Rows start .. stop-1 of the pattern: bool [stop - start, n]."""
    _require(kind in BUILDERS, f"Unknown pattern '{kind}'; choose one of {', '.join(KINDS)}.")
    _require(n >= 1, f"A pattern needs at least one position, got n={n}.")
    i = np.arange(start, stop, dtype=np.int32)[:, None]  # int32 halves the work of [r, n] arithmetic
    j = np.arange(n, dtype=np.int32)[None, :]
    try:
        return BUILDERS[kind](i, j, n, **params)
    except TypeError as error:  # an unknown parameter name
        raise PatternError(f"Pattern '{kind}' got parameters it doesn't take: {error}") from error


def build_pattern(kind: str, n: int, **params) -> np.ndarray:
    """The [n, n] bool mask of `kind` (see the module docstring for kinds and parameters)."""
    return pattern_rows(kind, n, 0, n, **params)


@dataclass(frozen=True)
class Pattern:
    """A kind with its parameters, e.g. Pattern("strided", {"l": 8, "part": "A1"})."""

    kind: str
    params: dict = field(default_factory=dict)

    def rows(self, n: int, start: int, stop: int) -> np.ndarray:
        return pattern_rows(self.kind, n, start, stop, **self.params)

    def build(self, n: int) -> np.ndarray:
        return self.rows(n, 0, n)

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.kind,)

    @property
    def settings(self) -> dict:
        """Every parameter of the kind: the given ones, defaults for the rest."""
        return {**defaults(self.kind), **self.params}

    def with_params(self, **changes) -> "Pattern":
        """The same kind with some parameters changed; names the kind doesn't take are ignored."""
        taken = defaults(self.kind)
        return replace(self, params={**self.params, **{k: v for k, v in changes.items() if k in taken}})

    @property
    def label(self) -> str:
        """Short and readable, e.g. 'strided (l=8, union, causal)'."""
        shown = ", ".join(_short(k, v) for k, v in self.params.items())
        return f"{self.kind} ({shown})" if shown else self.kind


def _short(name: str, value) -> str:
    if name == "part":
        return str(value)
    if name == "causal":
        return "causal" if value else "bidirectional"
    if isinstance(value, (tuple, list)):
        return f"{name}=[{' '.join(map(str, value))}]"
    return f"{name}={value}"


@dataclass(frozen=True)
class Combined:
    """The union or intersection of two patterns (cell by cell)."""

    first: "Pattern | Combined"
    second: "Pattern | Combined"
    how: Combine = "union"

    def rows(self, n: int, start: int, stop: int) -> np.ndarray:
        return combine(self.first.rows(n, start, stop), self.second.rows(n, start, stop), self.how)

    def build(self, n: int) -> np.ndarray:
        return self.rows(n, 0, n)

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.first.kinds + self.second.kinds

    @property
    def label(self) -> str:
        sign = "∪" if self.how == "union" else "∩"
        return f"{self.first.label} {sign} {self.second.label}"


AnyPattern = Pattern | Combined


def combine(first: np.ndarray, second: np.ndarray, how: Combine) -> np.ndarray:
    """Union or intersection of two masks of the same shape."""
    _require(how in ("union", "intersection"), f"Combine with 'union' or 'intersection', got '{how}'.")
    return first | second if how == "union" else first & second


@dataclass(frozen=True)
class HeadPatterns:
    """A pattern per head: head h uses patterns[h % len(patterns)] (one entry = every head)."""

    patterns: tuple[AnyPattern, ...]

    def for_head(self, head: int) -> AnyPattern:
        return self.patterns[head % len(self.patterns)]

    def masks(self, n: int, num_heads: int) -> np.ndarray:
        """bool [num_heads, n, n]; each distinct pattern is built once."""
        built = [p.build(n) for p in self.patterns]
        return np.stack([built[h % len(built)] for h in range(num_heads)])

    def union(self) -> AnyPattern:
        """What one layer connects: a position reaches a key if any head may attend to it."""
        first = self.patterns[0]
        parts = {p.params.get("part") for p in self.patterns if isinstance(p, Pattern)}
        if parts >= {"A1", "A2"} and all(p == first.with_params(part=p.params["part"]) for p in self.patterns):
            return first.with_params(part="union")  # A1 and A2 on separate heads: the kind's own union
        return functools.reduce(lambda a, b: Combined(a, b, "union"), self.patterns)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds used, each once, in order."""
        return tuple(dict.fromkeys(k for p in self.patterns for k in p.kinds))

    def group(self, k: int) -> str:
        """Which heads use patterns[k], in words."""
        groups = len(self.patterns)
        if groups == 1:
            return "every head"
        return ("even heads", "odd heads")[k] if groups == 2 else f"heads h with h mod {groups} = {k}"

    @property
    def label(self) -> str:
        if len(self.patterns) == 1:
            return self.patterns[0].label
        return "; ".join(f"{self.group(k)}: {p.label}" for k, p in enumerate(self.patterns))


def parse_positions(text: str) -> tuple[int, ...]:
    """'0, 5 9' -> (0, 5, 9); a PatternError names what isn't a position."""
    items = [item for item in text.replace(",", " ").split() if item]
    bad = [item for item in items if not item.isdigit()]
    _require(not bad, f"Global tokens are positions (whole numbers 0, 1, 2, …); can't read {', '.join(bad)}.")
    return tuple(sorted({int(item) for item in items}))


SPLIT = "split"  # strided/fixed part: A1 on even heads, A2 on odd heads
Arrangement = Literal["none", "union", "intersection", "alternate"]


def head_patterns(first: Pattern, how: Arrangement = "none", second: AnyPattern | None = None) -> HeadPatterns:
    """The heads' patterns: `first` (its A1/A2 on alternating heads when part='split'), alone,
    combined cell by cell with `second`, or alternating with `second` head by head."""
    _require(how == "none" or second is not None, f"'{how}' needs a second pattern.")
    split = first.params.get("part") == SPLIT
    parts = (first.with_params(part="A1"), first.with_params(part="A2")) if split else (first,)
    if how == "none":
        return HeadPatterns(parts)
    if how == "alternate":
        return HeadPatterns(parts + (second,))
    _require(how in ("union", "intersection"), f"Unknown arrangement '{how}'.")
    return HeadPatterns(tuple(Combined(p, second, how) for p in parts))


DESCRIPTIONS = {
    "full": "Every query attends to every key: n² cells.",
    "causal": "Query i attends to keys j ≤ i (a decoder's mask).",
    "sliding_window": "Keys within w positions on each side: |i − j| ≤ w "
                      "(Longformer; its `attention_window` is 2w).",
    "dilated": "A window of w keys on each side with gaps of d: j = i ± k·d for k = 0 … w (Longformer); "
               "receptive field per layer w·d.",
    "strided": "Sparse Transformer, stride l. A1: the previous l keys i−l+1 … i (as in the reference code "
               "openai/sparse_attention; the paper's set max(0, i−l) … i has l + 1). "
               "A2: keys with (i − j) mod l = 0. "
               "Causal as in the paper unless unticked.",
    "fixed": "Sparse Transformer, block l, c summary cells. A1: keys in the query's block, ⌊j/l⌋ = ⌊i/l⌋. "
             "A2: the last c cells of every block, j mod l ∈ {l−c … l−1}. "
             "Causal as in the paper unless unticked.",
    "longformer": "Sliding window w on each side plus global tokens, symmetric: a global token attends to all "
                  "and all attend to it.",
    "bigbird": "BigBird, blocks of b positions: a block row sees its window of blocks, the first and last blocks "
               "(global as rows and columns) and r random blocks outside its window and the globals, "
               "drawn with the seed (same seed, same pattern).",
    "blockwise": "Local blocks: i and j in the same block of b positions, ⌊i/b⌋ = ⌊j/b⌋.",
}

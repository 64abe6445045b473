"""Pattern builders against hand-written masks and the papers' set definitions; counts and growth."""
import itertools

import numpy as np
import pytest

from models.sparse.cost import (
    GROWTH_SIZES,
    active_blocks,
    active_cells,
    counted_in_closed_form,
    density,
    growth,
    sqrt_stride,
)
from models.sparse.patterns import (
    Combined,
    HeadPatterns,
    Pattern,
    PatternError,
    bigbird_blocks,
    build_pattern,
    combine,
    head_patterns,
    parse_positions,
)


def _mask(rows: list[str]) -> np.ndarray:
    return np.array([[c == "x" for c in row.replace(" ", "")] for row in rows])


def _from_sets(n: int, allowed) -> np.ndarray:
    """The mask of a set definition allowed(i, j) -> bool, cell by cell in plain Python."""
    return np.array([[bool(allowed(i, j)) for j in range(n)] for i in range(n)])


# ---- hand-written masks ----

def test_full_and_causal():
    assert build_pattern("full", 3).all()
    assert (build_pattern("causal", 4) == _mask(["x...", "xx..", "xxx.", "xxxx"])).all()


def test_sliding_window_keeps_w_keys_on_each_side():
    expected = _mask(["xx...", "xxx..", ".xxx.", "..xxx", "...xx"])
    assert (build_pattern("sliding_window", 5, w=1) == expected).all()
    assert (build_pattern("sliding_window", 5, w=1, causal=True) == np.tril(expected)).all()


def test_dilated_window_skips_d_minus_one_keys():
    expected = _mask([
        "x.x....",
        ".x.x...",
        "x.x.x..",
        ".x.x.x.",
        "..x.x.x",
        "...x.x.",
        "....x.x",
    ])
    assert (build_pattern("dilated", 7, w=1, d=2) == expected).all()


def test_strided_components_follow_the_reference_code():
    a1 = _mask(["x......", "xx.....", "xxx....", ".xxx...", "..xxx..", "...xxx.", "....xxx"])
    a2 = _mask(["x......", ".x.....", "..x....", "x..x...", ".x..x..", "..x..x.", "x..x..x"])
    assert (build_pattern("strided", 7, l=3, part="A1") == a1).all()  # l = 3 keys: i-2 .. i
    assert (build_pattern("strided", 7, l=3, part="A2") == a2).all()
    assert (build_pattern("strided", 7, l=3) == (a1 | a2)).all()


def test_fixed_components():
    a1 = _mask(["x.......", "xx......", "xxx.....", "xxxx....", "....x...", "....xx..", "....xxx.", "....xxxx"])
    a2 = _mask(["........", "........", "........", "...x....", "...x....", "...x....", "...x....", "...x...x"])
    assert (build_pattern("fixed", 8, l=4, c=1, part="A1") == a1).all()
    assert (build_pattern("fixed", 8, l=4, c=1, part="A2") == a2).all()
    assert (build_pattern("fixed", 8, l=4, c=1) == (a1 | a2)).all()


def test_longformer_global_tokens_are_symmetric():
    expected = _mask(["xxxxxx", "xxx...", "xxxx..", "x.xxx.", "x..xxx", "x...xx"])
    assert (build_pattern("longformer", 6, w=1, global_tokens=(0,)) == expected).all()


def test_blockwise():
    assert (build_pattern("blockwise", 5, b=2) == _mask(["xx...", "xx...", "..xx.", "..xx.", "....x"])).all()


def test_bigbird_without_random_blocks_is_window_plus_globals():
    blocks = _mask(["xxxxxx", "xxx..x", "xxxx.x", "x.xxxx", "x..xxx", "xxxxxx"])
    assert (bigbird_blocks(6, window_blocks=3, random_blocks=0) == blocks).all()
    mask = build_pattern("bigbird", 11, b=2, window_blocks=3, random_blocks=0)  # the last block holds one position
    assert (mask == np.kron(blocks, np.ones((2, 2), bool))[:11, :11]).all()


# ---- the papers' set definitions ----

@pytest.mark.parametrize("n,l", [(20, 3), (17, 4), (16, 16), (9, 1)])
def test_strided_matches_the_paper_sets(n, l):
    a1 = _from_sets(n, lambda i, j: max(0, i - l + 1) <= j <= i)  # the reference code's l keys
    a2 = _from_sets(n, lambda i, j: j <= i and (i - j) % l == 0)
    paper_a1 = _from_sets(n, lambda i, j: max(0, i - l) <= j <= i)  # the paper's {t .. i}, t = max(0, i - l)
    assert (build_pattern("strided", n, l=l, part="A1") == a1).all()
    assert (build_pattern("strided", n, l=l, part="A2") == a2).all()
    assert (paper_a1 & ~a1).sum() == sum(1 for i in range(n) if i - l >= 0)  # exactly the key i - l more
    bidirectional = _from_sets(n, lambda i, j: (i - j) % l == 0)
    assert (build_pattern("strided", n, l=l, causal=False, part="A2") == bidirectional).all()


@pytest.mark.parametrize("n,l,c", [(20, 4, 1), (21, 5, 2), (12, 3, 3), (7, 8, 2)])
def test_fixed_matches_the_paper_sets(n, l, c):
    a1 = _from_sets(n, lambda i, j: j <= i and j // l == i // l)
    a2 = _from_sets(n, lambda i, j: j <= i and j % l in range(l - c, l))
    assert (build_pattern("fixed", n, l=l, c=c, part="A1") == a1).all()
    assert (build_pattern("fixed", n, l=l, c=c, part="A2") == a2).all()
    assert (build_pattern("fixed", n, l=l, c=c, causal=False) == _from_sets(
        n, lambda i, j: j // l == i // l or j % l >= l - c)).all()


def test_dilated_matches_its_set_and_receptive_field():
    n, w, d = 40, 3, 4
    expected = _from_sets(n, lambda i, j: any(j == i + k * d for k in range(-w, w + 1)))
    mask = build_pattern("dilated", n, w=w, d=d)
    assert (mask == expected).all()
    assert np.flatnonzero(mask[20]).tolist() == [8, 12, 16, 20, 24, 28, 32]  # reach w d = 12 on each side


def test_bigbird_random_blocks_lie_outside_window_and_globals_and_follow_the_seed():
    layout = bigbird_blocks(16, window_blocks=3, random_blocks=2, seed=7)
    for row in range(1, 15):
        chosen = set(np.flatnonzero(layout[row])) - {0, 15, row - 1, row, row + 1}
        assert len(chosen) == 2
    assert layout[[0, -1]].all() and layout[:, [0, -1]].all()
    assert (bigbird_blocks(16, 3, 2, seed=7) == layout).all()  # reproducible by seed
    assert (bigbird_blocks(16, 3, 2, seed=8) != layout).any()
    again = build_pattern("bigbird", 64, b=4, random_blocks=2, seed=7)
    assert (again == np.kron(layout, np.ones((4, 4), bool))).all()


def test_bigbird_takes_what_is_left_when_fewer_blocks_are_free():
    layout = bigbird_blocks(6, window_blocks=3, random_blocks=5, seed=0)
    assert layout.all()  # every middle row gets all its free blocks


# ---- counts and densities ----

COUNTED = [
    ("full", {}), ("causal", {}),
    ("sliding_window", dict(w=3)), ("sliding_window", dict(w=2, causal=True)), ("sliding_window", dict(w=0)),
    ("dilated", dict(w=2, d=3)), ("dilated", dict(w=3, d=2, causal=True)),
    *[("strided", dict(l=l, part=p, causal=c))
      for l, p, c in itertools.product((1, 3, 5), ("A1", "A2", "union"), (True, False))],
    *[("fixed", dict(l=l, c=c, part=p, causal=k))
      for (l, c), p, k in itertools.product(((4, 1), (5, 2), (3, 3)), ("A1", "A2", "union"), (True, False))],
    ("longformer", dict(w=2, global_tokens=(0, 4, 9))), ("longformer", dict(w=0, global_tokens=())),
    ("bigbird", dict(b=3, random_blocks=2, seed=1)), ("bigbird", dict(b=4, window_blocks=5, random_blocks=1)),
    ("blockwise", dict(b=3)), ("blockwise", dict(b=7)),
]


@pytest.mark.parametrize("kind,params", COUNTED, ids=lambda v: str(v))
@pytest.mark.parametrize("n", [1, 10, 23, 64])
def test_closed_form_counts_equal_the_built_mask(kind, params, n):
    if kind == "longformer" and max(params["global_tokens"], default=0) >= n:
        params = {**params, "global_tokens": tuple(t for t in params["global_tokens"] if t < n)}
    pattern = Pattern(kind, params)
    assert counted_in_closed_form(pattern)
    assert active_cells(pattern, n) == build_pattern(kind, n, **params).sum()


def test_combinations_are_counted_from_rows():
    a, b = Pattern("sliding_window", {"w": 1}), Pattern("strided", {"l": 4, "causal": False, "part": "A2"})
    for how in ("union", "intersection"):
        both = Combined(a, b, how)
        assert not counted_in_closed_form(both)
        expected = combine(a.build(1100), b.build(1100), how)
        assert (both.build(1100) == expected).all()
        assert active_cells(both, 1100) == expected.sum()  # spans three row blocks


def test_density_of_known_patterns():
    assert density(Pattern("full"), 50) == 1
    assert density(Pattern("causal"), 4) == 10 / 16
    assert density(Pattern("blockwise", {"b": 4}), 16) == 0.25


@pytest.mark.parametrize("pattern,scale,expected", [
    (Pattern("sliding_window", {"w": 4}), False, 1.0),
    (Pattern("longformer", {"w": 4, "global_tokens": (0, 1)}), False, 1.0),
    (Pattern("bigbird", {"b": 4, "random_blocks": 2}), False, 1.0),
    (Pattern("strided", {"l": 8}), True, 1.5),
    (Pattern("fixed", {"l": 8, "c": 1}), True, 1.5),
    (Pattern("full"), False, 2.0),
])
def test_growth_exponents(pattern, scale, expected):
    result = growth(pattern, scale_stride=scale)
    assert result.sizes.tolist() == list(GROWTH_SIZES)
    assert result.exponent == pytest.approx(expected, abs=0.06)


def test_sqrt_stride_sets_l_and_keeps_c_within_it():
    assert sqrt_stride(Pattern("strided", {"l": 3}), 1024).params["l"] == 32
    assert sqrt_stride(Pattern("fixed", {"l": 3, "c": 9}), 16).params == {"l": 4, "c": 4}
    assert sqrt_stride(Pattern("sliding_window", {"w": 3}), 1024) == Pattern("sliding_window", {"w": 3})


def test_active_blocks():
    mask = np.zeros((10, 10), bool)
    mask[0, 0] = mask[9, 9] = mask[5, 0] = True  # blocks (0,0), (2,2), (1,0) of 4 x 4
    assert active_blocks(mask, 4) == 3
    assert active_blocks(build_pattern("full", 10), 4) == 9


# ---- combinations and heads ----

def test_union_and_intersection():
    a, b = build_pattern("sliding_window", 6, w=1), build_pattern("causal", 6)
    assert (combine(a, b, "union") == (a | b)).all()
    assert (combine(a, b, "intersection") == np.tril(a)).all()
    with pytest.raises(PatternError):
        combine(a, b, "xor")


def test_head_patterns_cycle_over_heads():
    split = head_patterns(Pattern("strided", {"l": 3, "part": "split"}))
    masks = split.masks(9, 4)
    a1, a2 = build_pattern("strided", 9, l=3, part="A1"), build_pattern("strided", 9, l=3, part="A2")
    assert [(m == a1).all() for m in masks] == [True, False, True, False]
    assert [(m == a2).all() for m in masks] == [False, True, False, True]
    assert split.union() == Pattern("strided", {"l": 3, "part": "union"})
    assert split.group(0) == "even heads"


def test_head_pattern_arrangements():
    window, globals_ = Pattern("sliding_window", {"w": 1}), Pattern("longformer", {"w": 0, "global_tokens": (0,)})
    assert head_patterns(window).patterns == (window,)
    assert head_patterns(window, "alternate", globals_).patterns == (window, globals_)
    merged = head_patterns(window, "intersection", globals_)
    assert (merged.masks(5, 1)[0] == (window.build(5) & globals_.build(5))).all()
    mixed = HeadPatterns((window, globals_, Pattern("full")))
    assert (mixed.union().build(6) == build_pattern("full", 6)).all()
    assert mixed.kinds == ("sliding_window", "longformer", "full")


# ---- bad parameters get messages ----

@pytest.mark.parametrize("kind,params,message", [
    ("nope", {}, "Unknown pattern"),
    ("fixed", dict(l=4, c=5), "1 <= c <= l"),
    ("strided", dict(l=0), "stride l"),
    ("longformer", dict(global_tokens=(3, 12)), "positions 0 to 9"),
    ("bigbird", dict(window_blocks=2), "odd"),
    ("sliding_window", dict(width=3), "doesn't take"),
    ("strided", dict(part="A3"), "A1, A2, union"),
])
def test_bad_parameters_raise_pattern_errors(kind, params, message):
    with pytest.raises(PatternError, match=message):
        build_pattern(kind, 10, **params)
    if kind != "nope":
        with pytest.raises(PatternError, match=message):
            active_cells(Pattern(kind, params), 10)


def test_parse_positions():
    assert parse_positions(" 5, 0 5 ,9") == (0, 5, 9)
    assert parse_positions("") == ()
    with pytest.raises(PatternError, match="can't read -1, x"):
        parse_positions("-1, x")

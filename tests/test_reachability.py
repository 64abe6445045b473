"""Shortest paths over stacked layers: hand cases, known diameters, and a brute-force reference."""
import numpy as np
import pytest

from models.sparse.patterns import build_pattern
from models.sparse.reachability import (
    UNREACHABLE,
    UnreachablePairError,
    is_causal,
    max_path_length,
    path,
    reachability,
    shortest_paths,
)


def _layers_by_matrix_powers(mask: np.ndarray) -> np.ndarray:
    """Reference: after L layers query i holds key j iff (I + M)^L has (i, j) > 0."""
    n = len(mask)
    step = (mask | np.eye(n, dtype=bool)).astype(np.int64)
    held, distance = np.eye(n, dtype=np.int64), np.full((n, n), UNREACHABLE)
    for layers in range(n):
        distance[(held > 0) & (distance == UNREACHABLE)] = layers
        held = np.minimum(held @ step, 1)
    return distance


def test_the_window_example_seven_five_three():
    mask = build_pattern("sliding_window", 10, w=2)
    assert not mask[7, 3] and mask[7, 5] and mask[5, 3]
    assert path(mask, 7, 3) == [7, 5, 3]
    assert shortest_paths(mask)[7, 3] == 2
    assert path(mask, 4, 4) == [4]


@pytest.mark.parametrize("seed", range(4))
def test_distances_match_matrix_powers_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((25, 25)) < 0.08
    distance = shortest_paths(mask)
    assert (distance == _layers_by_matrix_powers(mask)).all()
    for query, key in [(0, 24), (24, 0), (12, 3)]:
        route = path(mask, query, key)
        if distance[query, key] == UNREACHABLE:
            assert route is None
        else:
            assert len(route) - 1 == distance[query, key]
            assert all(mask[a, b] for a, b in zip(route, route[1:]))


@pytest.mark.parametrize("n,w", [(10, 2), (33, 4), (64, 1)])
def test_window_diameter_is_the_distance_over_the_width(n, w):
    assert max_path_length(build_pattern("sliding_window", n, w=w)) == -(-(n - 1) // w)


@pytest.mark.parametrize("kind,params", [
    ("longformer", dict(w=1, global_tokens=(0,))),
    ("longformer", dict(w=0, global_tokens=(17,))),
    ("bigbird", dict(b=4, random_blocks=0)),
])
def test_global_tokens_give_diameter_two(kind, params):
    mask = build_pattern(kind, 64, **params)
    assert max_path_length(mask) == 2
    found = reachability(mask)
    assert found.layers_needed == 2 and found.reach_by_layer[-1] == 1.0


@pytest.mark.parametrize("kind,params", [("strided", dict(l=8)), ("fixed", dict(l=8, c=1))])
def test_sparse_transformer_patterns_connect_the_past_in_two_layers(kind, params):
    assert max_path_length(build_pattern(kind, 64, **params)) == 2


@pytest.mark.parametrize("kind,params", [
    ("causal", {}), ("strided", dict(l=4)), ("fixed", dict(l=4, c=1)), ("sliding_window", dict(w=2, causal=True)),
])
def test_a_causal_pattern_never_reaches_the_future(kind, params):
    mask = build_pattern(kind, 20, **params)
    distance = shortest_paths(mask)
    assert is_causal(mask)
    assert (distance[np.triu_indices(20, k=1)] == UNREACHABLE).all()
    assert path(mask, 3, 9) is None
    found = reachability(mask)
    assert found.past_only and found.diameter is not None
    with pytest.raises(UnreachablePairError, match="never receives"):
        max_path_length(mask, past_only=False)


def test_disconnected_blocks_have_no_diameter():
    mask = build_pattern("blockwise", 8, b=4)
    with pytest.raises(UnreachablePairError) as error:
        max_path_length(mask)
    assert error.value.count == 32 and error.value.query == 0 and error.value.key == 4
    found = reachability(mask)
    assert found.diameter is None and found.layers_needed is None and found.unreachable == 32
    assert found.reach_by_layer[-1] == 0.5


def test_reach_by_layer_counts_pairs():
    found = reachability(build_pattern("sliding_window", 4, w=1))
    # distances |i - j|: 4 pairs at 0, 6 at 1, 4 at 2, 2 at 3 of 16
    assert found.reach_by_layer.tolist() == [4 / 16, 10 / 16, 14 / 16, 1.0]
    assert found.diameter == 3
    assert found.connected_after(1) == 10 / 16 and found.connected_after(99) == 1.0


def test_path_rejects_positions_outside_the_mask():
    with pytest.raises(ValueError, match="0 to 3"):
        path(build_pattern("full", 4), 0, 4)

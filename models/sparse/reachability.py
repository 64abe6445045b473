"""How information flows through a sparse pattern stacked over layers.

A mask [n, n] is a directed graph with an edge i -> j when query i may attend to key j: after
one layer position i holds information from j. Residual connections keep what a position
already holds, so after L layers i holds j exactly when the shortest path i -> j has at most
L edges. The path 7 -> 5 -> 3 means: layer 1 moves 3 into 5, layer 2 moves 5 into 7.
"""
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, shortest_path

UNREACHABLE = -1  # in distance matrices: j can never reach i, however many layers


class UnreachablePairError(ValueError):
    """Some pair never connects, so the pattern has no finite diameter."""

    def __init__(self, query: int, key: int, count: int):
        self.query, self.key, self.count = query, key, count
        super().__init__(f"{count} (query, key) pairs never connect, however many layers are stacked; "
                         f"e.g. query {query} never receives key {key}.")


def is_causal(mask: np.ndarray) -> bool:
    """No query sees a later key (the mask is lower-triangular)."""
    return not np.triu(mask, k=1).any()


def shortest_paths(mask: np.ndarray) -> np.ndarray:
    """int32 [n, n]: layers needed for query i to receive key j (0 on the diagonal, -1 never)."""
    graph = csr_matrix(mask.astype(np.int8))
    distance = shortest_path(graph, method="D", directed=True, unweighted=True)
    return np.where(np.isinf(distance), UNREACHABLE, distance).astype(np.int32)


def pairs_in_scope(n: int, past_only: bool) -> np.ndarray:
    """bool [n, n]: the pairs a diameter is taken over (j <= i for causal patterns)."""
    return np.tril(np.ones((n, n), bool)) if past_only else np.ones((n, n), bool)


@dataclass(frozen=True)
class Reachability:
    distance: np.ndarray  # [n, n] int32, layers for query i to receive key j, -1 never
    past_only: bool  # pairs in scope are j <= i (a causal pattern can never reach the future)
    diameter: int | None  # the largest distance in scope; None if some pair in scope never connects
    unreachable: int  # pairs in scope that never connect
    reach_by_layer: np.ndarray  # [diameter or max finite + 1]: share of pairs in scope connected after L layers

    @property
    def layers_needed(self) -> int | None:
        """Layers until every position holds every other one in scope (= the diameter)."""
        return self.diameter

    def connected_after(self, layers: int) -> float:
        """Share of the pairs in scope connected after `layers` stacked layers."""
        return float(self.reach_by_layer[min(layers, len(self.reach_by_layer) - 1)])


def _scope(mask: np.ndarray, past_only: bool | None) -> bool:
    return is_causal(mask) if past_only is None else past_only


def reachability(mask: np.ndarray, past_only: bool | None = None) -> Reachability:
    """Distances, diameter and reach per layer; past_only=None means 'if the mask is causal'."""
    past_only = _scope(mask, past_only)
    distance = shortest_paths(mask)
    scope = pairs_in_scope(len(mask), past_only)
    in_scope = distance[scope]
    unreachable = int((in_scope == UNREACHABLE).sum())
    longest = int(in_scope.max())
    counts = np.bincount(in_scope[in_scope >= 0], minlength=longest + 1)
    return Reachability(
        distance=distance,
        past_only=past_only,
        diameter=None if unreachable else longest,
        unreachable=unreachable,
        reach_by_layer=np.cumsum(counts) / in_scope.size,
    )


def max_path_length(mask: np.ndarray, past_only: bool | None = None) -> int:
    """The pattern's diameter: the most layers any pair in scope needs.

    Scope is all pairs, or j <= i for causal masks (past_only=None decides from the mask).
    Raises UnreachablePairError, naming a pair, when some pair in scope never connects.
    """
    found = reachability(mask, past_only)
    if found.diameter is None:
        never = (found.distance == UNREACHABLE) & pairs_in_scope(len(mask), found.past_only)
        query, key = np.argwhere(never)[0]
        raise UnreachablePairError(int(query), int(key), found.unreachable)
    return found.diameter


def path(mask: np.ndarray, query: int, key: int) -> list[int] | None:
    """A shortest path [query, ..., key] along the mask's edges, or None if there is none."""
    n = len(mask)
    if not (0 <= query < n and 0 <= key < n):
        raise ValueError(f"Positions must be 0 to {n - 1}, got query {query} and key {key}.")
    _, predecessors = breadth_first_order(csr_matrix(mask.astype(np.int8)), query, directed=True)
    if key != query and predecessors[key] < 0:
        return None
    steps = [key]
    while steps[-1] != query:
        steps.append(int(predecessors[steps[-1]]))
    return steps[::-1]

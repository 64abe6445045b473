"""What a sparse pattern costs: active cells and their growth with n, and measured run time.

Counts come from closed forms per row (a [n] vector, never the [n, n] mask) for every kind;
unions and intersections are counted in row blocks of the mask, which bounds memory.
The measurement shows the honest point: masking a dense kernel computes every cell anyway
(plus the mask), so only a kernel that skips inactive blocks can save time and memory.

    python -m models.sparse strided l=32     # prints the dense vs masked timing table
"""
import contextlib
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from models.sparse.patterns import AnyPattern, Combined, Pattern, bigbird_blocks, block_count

GROWTH_SIZES = tuple(2 ** k for k in range(6, 15))  # 64 ... 16384
ROW_BLOCK = 512  # rows per block when a count has to look at mask rows
ROWWISE_MAX_N = 4096  # counting mask rows is ~n^2 work: growth of combinations stops here
TIMING_SIZES = (256, 512, 1024, 2048)


def _window_counts(i: np.ndarray, n: int, w: int, causal: bool = False) -> np.ndarray:
    hi = i if causal else np.minimum(n - 1, i + w)
    return hi - np.maximum(0, i - w) + 1


def _block_sizes(n: int, b: int) -> np.ndarray:
    return np.diff(np.minimum(np.arange(block_count(n, b) + 1) * b, n))


def _component_count(a1: np.ndarray, a2: np.ndarray, both: np.ndarray, part: str) -> np.ndarray:
    """Active keys per row of `part` from the rows' counts in A1, A2 and both (union: inclusion-exclusion)."""
    return {"A1": a1, "A2": a2, "union": a1 + a2 - both}[part]


def _strided_counts(i, n, l, part, causal):
    if causal:
        a1, a2 = np.minimum(l, i + 1), i // l + 1
    else:
        a1, a2 = _window_counts(i, n, l - 1), (n - 1 - i % l) // l + 1
    return _component_count(a1, a2, np.ones_like(i), part)  # the two sets share only j = i


def _fixed_counts(i, n, l, c, part, causal):
    offset = i % l
    if causal:
        a1 = offset + 1
        a2 = (i // l) * c + np.maximum(0, offset - (l - c) + 1)
        both = np.maximum(0, offset - (l - c) + 1)
    else:
        a1 = np.minimum(l, n - (i // l) * l)
        a2 = np.full_like(i, (n // l) * c + max(0, n % l - (l - c)))
        both = np.maximum(0, a1 - (l - c))
    return _component_count(a1, a2, both, part)


def _longformer_counts(i, n, w, global_tokens):
    tokens = np.asarray(sorted(set(global_tokens)), dtype=int)
    outside = (np.abs(i[:, None] - tokens[None, :]) > w).sum(axis=1)  # globals beyond the window
    return np.where(np.isin(i, tokens), n, _window_counts(i, n, w) + outside)


def _dilated_counts(i, n, w, d, causal):
    after = 0 if causal else np.minimum(w, (n - 1 - i) // d)
    return np.minimum(w, i // d) + after + 1


ROW_COUNTS = {  # (i [n] int64, n, **every parameter) -> active cells of each row [n]
    "full": lambda i, n: np.full_like(i, n),
    "causal": lambda i, n: i + 1,
    "sliding_window": lambda i, n, w, causal: _window_counts(i, n, w, causal),
    "dilated": _dilated_counts,
    "strided": _strided_counts,
    "fixed": _fixed_counts,
    "longformer": _longformer_counts,
}


def _block_layout_cells(n: int, b: int, layout: np.ndarray) -> int:
    sizes = _block_sizes(n, b)
    return int(sizes @ layout.astype(np.int64) @ sizes)


def counted_in_closed_form(pattern: AnyPattern) -> bool:
    return isinstance(pattern, Pattern)


def active_cells(pattern: AnyPattern, n: int) -> int:
    """Number of True cells of pattern.build(n), computed without building the [n, n] mask."""
    pattern.rows(n, 0, 1)  # validates the parameters with the pattern's own messages
    if not counted_in_closed_form(pattern):
        return _counted_by_rows(pattern, n)
    p = pattern.settings
    if pattern.kind in ROW_COUNTS:
        return int(ROW_COUNTS[pattern.kind](np.arange(n, dtype=np.int64), n, **p).sum())
    if pattern.kind == "bigbird":
        layout = bigbird_blocks(block_count(n, p["b"]), p["window_blocks"], p["random_blocks"], p["seed"])
        return _block_layout_cells(n, p["b"], layout)
    if pattern.kind == "blockwise":
        return int((_block_sizes(n, p["b"]) ** 2).sum())
    return _counted_by_rows(pattern, n)


def _counted_by_rows(pattern: AnyPattern, n: int) -> int:
    return sum(int(pattern.rows(n, start, min(n, start + ROW_BLOCK)).sum()) for start in range(0, n, ROW_BLOCK))


def density(pattern: AnyPattern, n: int) -> float:
    return active_cells(pattern, n) / n**2


def sqrt_stride(pattern: AnyPattern, n: int) -> AnyPattern:
    """The pattern with its stride or block length l set to round(sqrt(n)) (and c kept <= l)."""
    if isinstance(pattern, Combined):
        return replace(pattern, first=sqrt_stride(pattern.first, n), second=sqrt_stride(pattern.second, n))
    settings, l = pattern.settings, max(1, round(n**0.5))
    return pattern.with_params(l=l, c=min(settings.get("c", 1), l)) if "l" in settings else pattern


@dataclass(frozen=True)
class Growth:
    sizes: np.ndarray  # [k] sequence lengths n
    cells: np.ndarray  # [k] active cells at each n
    exponent: float  # slope of log(cells) against log(n): cells ~ n^exponent


def fitted_exponent(sizes: np.ndarray, cells: np.ndarray) -> float:
    """Least-squares slope in log-log coordinates."""
    slope, _ = np.polyfit(np.log(sizes), np.log(cells), 1)
    return float(slope)


def growth(pattern: AnyPattern, sizes=GROWTH_SIZES, scale_stride: bool = False) -> Growth:
    """Active cells for each n in `sizes` (l = sqrt(n) at each n when scale_stride).

    Combinations are counted row block by row block, so only sizes up to ROWWISE_MAX_N are used.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if not counted_in_closed_form(pattern):
        sizes = sizes[sizes <= ROWWISE_MAX_N]
    cells = np.array([active_cells(sqrt_stride(pattern, n) if scale_stride else pattern, int(n)) for n in sizes],
                     dtype=np.int64)
    return Growth(sizes=sizes, cells=cells, exponent=fitted_exponent(sizes, cells))


def active_blocks(mask: np.ndarray, block: int) -> int:
    """Blocks of block x block cells holding at least one True: what a block-sparse kernel computes."""
    n = len(mask)
    padded = np.zeros((block_count(n, block) * block,) * 2, bool)
    padded[:n, :n] = mask
    tiles = padded.reshape(len(padded) // block, block, -1, block)
    return int(tiles.any(axis=(1, 3)).sum())


@dataclass(frozen=True)
class CostPoint:
    """One sequence length, attention of `heads` heads of width `d_head` on this machine."""

    n: int
    dense_seconds: float  # fastest of repeated calls on one thread: softmax(q k^T / sqrt(d)) v
    masked_seconds: float  # the same with the additive mask added before softmax
    dense_bytes: int  # peak bytes torch allocates during the dense call
    masked_bytes: int  # the same for the masked call, plus the [n, n] float32 mask it needs
    block_share: float  # active blocks / all blocks
    block_sparse_seconds: float  # estimate: dense_seconds x block_share
    block_sparse_bytes: int  # estimate: dense_bytes x block_share


def _attention(q, k, v, mask: torch.Tensor | None) -> torch.Tensor:
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5  # [heads, n, n]
    if mask is not None:
        scores = scores + mask
    return torch.softmax(scores, dim=-1) @ v


def _best_seconds(fn, min_repeats: int = 3, budget_seconds: float = 0.5, max_repeats: int = 20) -> float:
    """The fastest of several calls: the one least disturbed by other work on a shared machine."""
    fn()  # warm-up
    times, spent = [], 0.0
    while len(times) < min_repeats or (spent < budget_seconds and len(times) < max_repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return min(times)


def _peak_bytes(fn) -> int:
    """Peak of torch's CPU allocations during fn(), from the profiler's memory events."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        fn()
    events = sorted(profiler.events(), key=lambda event: event.time_range.start)
    return int(np.cumsum([event.self_cpu_memory_usage for event in events]).max(initial=0))


@contextlib.contextmanager
def _one_thread():
    """Time on one CPU thread: on a busy machine, threads waiting for each other add noise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def measure_point(pattern: AnyPattern, n: int, heads: int = 4, d_head: int = 64, block: int = 32) -> CostPoint:
    """Time dense and masked attention at n and estimate a block-sparse kernel from active blocks."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(heads, n, d_head, generator=generator) for _ in range(3))
    mask = pattern.build(n)
    additive = torch.zeros(n, n).masked_fill_(torch.from_numpy(~mask), torch.finfo(torch.float32).min)
    share = active_blocks(mask, block) / block_count(n, block) ** 2
    with torch.inference_mode(), _one_thread():
        dense, masked = (lambda: _attention(q, k, v, None)), (lambda: _attention(q, k, v, additive))
        dense_seconds, masked_seconds = _best_seconds(dense), _best_seconds(masked)
        dense_bytes = _peak_bytes(dense)
        masked_bytes = _peak_bytes(masked) + additive.numel() * additive.element_size()
    return CostPoint(
        n=n,
        dense_seconds=dense_seconds,
        masked_seconds=masked_seconds,
        dense_bytes=dense_bytes,
        masked_bytes=masked_bytes,
        block_share=share,
        block_sparse_seconds=dense_seconds * share,
        block_sparse_bytes=int(dense_bytes * share),
    )


def measure_cost(pattern: AnyPattern, sizes=TIMING_SIZES, **kwargs) -> list[CostPoint]:
    return [measure_point(pattern, n, **kwargs) for n in sizes]

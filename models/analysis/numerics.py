"""Numerical building blocks shared by the analyses: softmax, entropy, pooling of attention matrices."""
import warnings

import numpy as np
import torch


def _bins(n: int, size: int) -> torch.Tensor:
    """[n] bin of each position: `size` consecutive bins, bin i starting at floor(i * n / size),
    so their sizes differ by at most one."""
    return ((torch.arange(n) + 1) * size - 1) // n


def readonly_tensor(array: np.ndarray) -> torch.Tensor:
    """A float32 tensor sharing a (read-only) run array's memory; torch only reads it."""
    with warnings.catch_warnings():  # runs are read-only; torch only reads them here
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def pooled(attentions: np.ndarray, size: int) -> np.ndarray:
    """[..., q, k] -> [..., min(size, q), min(size, k)]: every matrix mean-pooled, for the thumbnails of
    heads and the images of sparse masks (bool masks give the share of active cells under each pixel).

    Summed into row bins, then column bins, with index_add (whole rows of keys at a time): 10 ms
    for 72 heads at 512 tokens, where torch's adaptive average pooling took 16 ms.
    """
    *lead, q, k = attentions.shape
    if q <= size and k <= size:
        return attentions
    rows, cols = min(size, q), min(size, k)
    flat = readonly_tensor(attentions).reshape(-1, q, k)
    row_bins, col_bins = _bins(q, rows), _bins(k, cols)
    with torch.inference_mode():
        by_rows = torch.zeros(len(flat), rows, k).index_add_(1, row_bins, flat)  # [m, rows, k]
        summed = torch.zeros(len(flat), rows, cols).index_add_(2, col_bins, by_rows)  # [m, rows, cols]
        counts = torch.outer(torch.bincount(row_bins, minlength=rows), torch.bincount(col_bins, minlength=cols))
        return (summed / counts).reshape(*lead, rows, cols).numpy()


def block_size(n: int, size: int) -> int:
    """Positions per block when n positions are pooled to at most `size` blocks of equal length
    (the last may be shorter): block pooling, which row tiles of a long run can do by reshaping."""
    return max(1, -(-n // size))


def block_count(n: int, size: int) -> int:
    """Blocks of block_size(n, size) positions that n positions make (at most `size`)."""
    return -(-n // block_size(n, size))


def block_reduce(x: torch.Tensor, dim: int, block: int, how: str) -> torch.Tensor:
    """x summed ("sum") or maximised ("amax") over consecutive blocks of `block` positions along `dim`."""
    reduce = getattr(torch, how)
    length = x.shape[dim]
    full = length // block * block
    parts = [reduce(x.narrow(dim, 0, full).unflatten(dim, (-1, block)), dim + 1)] if full else []
    if full < length:
        parts.append(reduce(x.narrow(dim, full, length - full), dim, keepdim=True))
    return torch.cat(parts, dim) if len(parts) > 1 else parts[0]


def _block_counts(n: int, block: int) -> torch.Tensor:
    """[ceil(n / block)] positions in each block."""
    blocks = -(-n // block)
    counts = torch.full((blocks,), block)
    counts[-1] = n - (blocks - 1) * block
    return counts


class BlockPool:
    """Mean- and max-pooling of [m, q, k] matrices over blocks of block_size(q, size) queries x
    block_size(k, size) keys, accumulated from tiles of rows (a long run never holds a whole head).

    A tile may start at any row; its columns must start at a column-block edge (`align`).
    Columns left out of every tile count as zero weight.
    """

    def __init__(self, m: int, q: int, k: int, size: int, device: torch.device | str = "cpu"):
        self.q, self.k = q, k
        self.rows, self.cols = block_size(q, size), block_size(k, size)
        shape = (m, block_count(q, size), block_count(k, size))
        self.sums = torch.zeros(shape, device=device)
        self.maxima = torch.zeros(shape, device=device)

    def align(self, cols: slice) -> slice:
        """cols widened to column-block edges (or the last key)."""
        return slice(cols.start // self.cols * self.cols, min(self.k, -(-cols.stop // self.cols) * self.cols))

    def add(self, tile: torch.Tensor, rows: slice, cols: slice, matrices: slice = slice(None)) -> None:
        """Pool tile [h, r, c] (rows x cols of the `matrices` of the m) in."""
        first_col = cols.start // self.cols
        for block in range(rows.start // self.rows, (rows.stop - 1) // self.rows + 1):
            first, last = max(rows.start, block * self.rows), min(rows.stop, (block + 1) * self.rows)
            part = tile[:, first - rows.start:last - rows.start]  # [h, rows of this block, c]
            # rows first: a reduction across rows runs along contiguous keys, far faster than within short blocks
            sums = block_reduce(part.sum(1), 1, self.cols, "sum")  # [h, column blocks]
            maxima = block_reduce(part.amax(1), 1, self.cols, "amax")
            where = (matrices, block, slice(first_col, first_col + sums.shape[1]))
            self.sums[where] += sums
            self.maxima[where] = torch.maximum(self.maxima[where], maxima)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, max) float32 [m, row blocks, column blocks] on the CPU."""
        counts = torch.outer(_block_counts(self.q, self.rows), _block_counts(self.k, self.cols))
        return (self.sums.cpu() / counts).numpy(), self.maxima.cpu().numpy()


def block_pooled(attentions: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """[..., q, k] -> (mean, max) [..., ceil(q / bq), ceil(k / bk)] pooled over blocks of
    bq = block_size(q, size) queries x bk = block_size(k, size) keys: the overview of a run
    (max-pooling keeps a sharp head visible where the mean would wash it out)."""
    *lead, q, k = attentions.shape
    with torch.inference_mode():
        flat = readonly_tensor(attentions).reshape(-1, q, k)
        pool = BlockPool(len(flat), q, k, size)
        pool.add(flat, slice(0, q), slice(0, k))
        mean, maxima = pool.result()
    return mean.reshape(*lead, *mean.shape[1:]), maxima.reshape(*lead, *maxima.shape[1:])


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(scores / temperature) along the last axis, in float64."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def entropy(weights: np.ndarray) -> np.ndarray:
    """Shannon entropy -sum_j p_j log p_j along the last axis, in nats, with 0 log 0 = 0 (the
    convention of scipy.stats.entropy, which also renormalises: rows here are taken as they are).

    weights [..., k] float -> [...] in their dtype.
    """
    logs = np.maximum(weights, np.finfo(weights.dtype).tiny)  # log(tiny) is finite, so 0 log 0 = 0
    np.log(logs, out=logs)  # numpy's vectorised log, not scipy.special.entr's scalar loop: head matching's hot loop
    return -np.einsum("...k,...k->...", weights, logs)

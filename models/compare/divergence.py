"""How far two attention stacks are apart, head by head: Jensen-Shannon divergence of their rows,
and for models of different shapes, each head of A matched to B's closest head.

    head_divergence(aligned.a, aligned.b)     # [layers, heads] JSD, same shapes only
    matching = match_heads(aligned.a, aligned.b)
    matching.best_layer, matching.best_head   # [layers A, heads A]: B's most similar head
    run_divergence(intact_run, ablated_run)   # {"self-attention": [layers, heads]}, runs on the same tokens
"""
from dataclasses import dataclass

import numpy as np

from models.analysis.numerics import entropy
from models.core.run import AttentionRun, attention_stacks
from models.core.tiles import Progress, StackWeights, row_tiles

MATCH_QUERIES = 64  # head matching compares every pair of heads: on longer texts it reads this many queries


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in nats of distributions along the last axis: [..., k] -> [...].

    JSD = KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2; 0 for equal rows, at most ln 2.
    """
    p, q = np.asarray(p, dtype=np.float32), np.asarray(q, dtype=np.float32)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / m), 0.0) + np.where(q > 0, q * np.log(q / m), 0.0)
    return np.clip(0.5 * terms.sum(axis=-1), 0.0, np.log(2))  # float error can step just outside


def head_divergence(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per head, the JSD of A's and B's attention rows averaged over queries.

    a, b: [layers, heads, n, n] on the same positions -> [layers, heads] in nats.
    """
    if a.shape != b.shape:
        raise ValueError(f"head-by-head divergence needs equal shapes, got {a.shape} and {b.shape}")
    return np.stack([js_divergence(a[layer], b[layer]).mean(axis=-1) for layer in range(a.shape[0])])


def _rows(weights: StackWeights, layer: int, heads: slice, rows: slice) -> np.ndarray:
    return weights.block(layer, heads, rows, slice(0, weights.shape[3])).numpy()  # [h, r, k]


def tiled_head_divergence(a: StackWeights, b: StackWeights, progress: Progress | None = None) -> np.ndarray:
    """head_divergence of two stacks kept whole or recomputed (long runs), in row tiles: [layers, heads] nats.
    `progress(done, total)` after each layer; what it raises stops the computation."""
    if a.shape != b.shape:
        raise ValueError(f"head-by-head divergence needs equal shapes, got {a.shape} and {b.shape}")
    layers, heads, q, _ = a.shape
    total = np.zeros((layers, heads))
    for layer in range(layers):
        for rows in row_tiles(a, heads):
            every = slice(0, heads)
            total[layer] += js_divergence(_rows(a, layer, every, rows), _rows(b, layer, every, rows)).sum(-1)
        if progress is not None:
            progress(layer + 1, layers)
    return (total / q).astype(np.float32)


def query_divergence(a: StackWeights, b: StackWeights, layer: int, head: int) -> np.ndarray:
    """[q]: js_divergence of one head's rows in two stacks on the same tokens, in row tiles."""
    one = slice(head, head + 1)
    return np.concatenate([js_divergence(_rows(a, layer, one, rows), _rows(b, layer, one, rows))[0]
                           for rows in row_tiles(a, 1)])


def _query_sample(n: int, limit: int) -> np.ndarray:
    return np.arange(n) if n <= limit else np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def _mixture_entropy(head: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Mean row entropy of (head + each of heads) / 2: [q, n], [h, q, n] -> [h]; in place, it is the hot loop."""
    mixture = np.add(head, heads)
    mixture *= 0.5
    return entropy(mixture).mean(axis=-1)


def pairwise_head_divergence(a: np.ndarray, b: np.ndarray, max_queries: int = MATCH_QUERIES) -> np.ndarray:
    """Mean JSD between every head of A and every head of B: [La, Ha, n, n], [Lb, Hb, n, n] -> [La, Ha, Lb, Hb].

    Uses JSD(p, q) = H((p + q) / 2) - (H(p) + H(q)) / 2, so only the mixture's entropy is paid
    per pair; on texts longer than `max_queries` tokens the mean is over that many evenly
    spaced queries (every pair of heads costs queries x n logarithms).
    """
    if a.shape[2:] != b.shape[2:]:
        raise ValueError(f"the runs must be on the same positions, got {a.shape[2:]} and {b.shape[2:]}")
    queries = _query_sample(a.shape[2], max_queries)
    a_heads = a[:, :, queries].reshape(-1, len(queries), a.shape[3]).astype(np.float32)  # [La*Ha, q, n]
    b_heads = b[:, :, queries].reshape(-1, len(queries), b.shape[3]).astype(np.float32)  # [Lb*Hb, q, n]
    own = 0.5 * (entropy(a_heads).mean(axis=-1)[:, None] + entropy(b_heads).mean(axis=-1)[None, :])
    mixed = np.stack([_mixture_entropy(head, b_heads) for head in a_heads])  # [La*Ha, Lb*Hb]
    return np.clip(mixed - own, 0.0, np.log(2)).reshape(a.shape[:2] + b.shape[:2])


@dataclass(frozen=True)
class HeadMatching:
    """For each head of A, the head of B whose attention is closest (least JSD) on this text."""

    divergences: np.ndarray  # [La, Ha, Lb, Hb] mean JSD in nats of every pair of heads
    best_layer: np.ndarray  # [La, Ha] int: layer of B's closest head
    best_head: np.ndarray  # [La, Ha] int: head of B's closest head
    best_divergence: np.ndarray  # [La, Ha] its JSD in nats


def match_heads(a: np.ndarray, b: np.ndarray, max_queries: int = MATCH_QUERIES) -> HeadMatching:
    """Match each head of A ([La, Ha, n, n]) to its closest head of B ([Lb, Hb, n, n]); shapes may differ."""
    divergences = pairwise_head_divergence(a, b, max_queries)
    flat = divergences.reshape(a.shape[:2] + (-1,))
    best = flat.argmin(axis=-1)  # [La, Ha] index into B's heads
    best_layer, best_head = np.divmod(best, b.shape[1])
    return HeadMatching(divergences, best_layer, best_head, np.take_along_axis(flat, best[..., None], -1)[..., 0])


def run_divergence(a: AttentionRun, b: AttentionRun, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """head_divergence of every stack (attention_stacks) of two runs on the same tokens, e.g. of the
    intact model and the model with heads switched off or compressed: name -> [layers, heads] nats.
    `progress(done, total)` after each layer of a long run's stack (tiled_head_divergence)."""
    if a.tokens != b.tokens or a.decoder_tokens != b.decoder_tokens:
        raise ValueError("run_divergence compares runs on the same tokens; align runs of different tokenizers first")
    if a is b:  # the same run (no head switched off): nothing to read
        return {name: np.zeros(stack.weights.shape[:2], np.float32) for name, stack in attention_stacks(a).items()}
    stacks_b = attention_stacks(b)
    return {name: tiled_head_divergence(stack.weights, stacks_b[name].weights, progress) if stack.attentions is None
            else head_divergence(stack.attentions, stacks_b[name].attentions)
            for name, stack in attention_stacks(a).items()}

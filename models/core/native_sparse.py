"""Models with native sparse attention, as the query x key matrices every view expects.

Longformer (Beltagy et al. 2020): transformers returns each layer's `attentions` as
[batch, heads, n, x + w + 1]: the weights on the x global tokens' keys, then the band of keys
i - w/2 ... i + w/2 relative to query i (w = attention_window, even; index x + w/2 is the
query itself). A band entry on a global key is 0 (its weight is among the first x), and a
global query's row is 0: its weights are in `global_attentions` [batch, heads, n', x], one
column per global token (n' = n padded to a multiple of w).

BigBird (Zaheer et al. 2020), block sparse: transformers returns [batch, heads, n', n'] (n'
padded to a multiple of the block size b). In eval mode it picks every random block as the
first block, and the matrix it builds writes the random blocks' weights over the first
block's instead of adding them: rows of blocks 1 to the second last keep 1 / (1 + r) of
their weight on the first block (r = num_random_blocks). `bigbird_square` adds it back and
checks that every row sums to 1 (tested against a recomputation from the layer's q and k).
On a text of at most (5 + 2r) b tokens transformers switches the model to full attention for
good, and then reports no weights at all (its output recorders stay on the replaced modules):
such a text is refused before it runs (`check_length`).
"""
import numpy as np
import torch
from transformers import PretrainedConfig

ROW_SUM_TOLERANCE = 1e-4


class NativeSparseError(ValueError):
    """A native sparse model's weights can't be drawn as query x key; str(error) says why."""


def is_native_sparse(config: PretrainedConfig) -> bool:
    """Does the model compute its own sparse attention (never through the explorer's attention function)?"""
    return config.model_type == "longformer" or (
        config.model_type == "big_bird" and config.attention_type == "block_sparse")


def check_length(model: torch.nn.Module, n: int) -> None:
    """Refuse a text too short for BigBird's blocks before transformers switches the shared model."""
    config = model.config
    shortest = (5 + 2 * config.num_random_blocks) * config.block_size + 1 if config.model_type == "big_bird" else 0
    if n < shortest and model.base_model.attention_type == "block_sparse":
        raise NativeSparseError(f"BigBird's block-sparse attention needs at least {shortest} tokens and this text has "
                                f"{n}: on a shorter text transformers switches the model to full attention and then "
                                "reports no weights. Type a longer text.")


def longformer_square(local: np.ndarray, global_weights: np.ndarray | None, global_positions: np.ndarray) -> np.ndarray:
    """One Longformer layer's weights as [heads, n, n].

    local [heads, n, x + w + 1] (the layer's `attentions`), global_weights [heads, n', x] (its
    `global_attentions`, None without global tokens), global_positions [x] ascending, as in
    the global_attention_mask.
    """
    heads, n, width = local.shape
    x = len(global_positions)
    half, odd = divmod(width - x - 1, 2)
    if half < 0 or odd:
        raise NativeSparseError(f"Longformer weights of width {width} don't fit {x} global tokens and an even window.")
    square = np.zeros((heads, n, n), dtype=local.dtype)
    queries = np.arange(n)
    for offset in range(-half, half + 1):
        keys = queries + offset
        inside = (keys >= 0) & (keys < n)
        square[:, queries[inside], keys[inside]] = local[:, inside, x + half + offset]
    if x:
        square[:, :, global_positions] = local[:, :, :x]
        square[:, global_positions, :] = global_weights[:, :n, :].transpose(0, 2, 1)
    return square


def bigbird_square(attentions: np.ndarray, n: int, block_size: int, random_blocks: int) -> np.ndarray:
    """BigBird block-sparse weights [..., n', n'] as returned in eval mode -> [..., n, n] summing to 1 per row."""
    square = attentions.copy()
    square[..., block_size:-block_size, :block_size] *= 1 + random_blocks
    square = square[..., :n, :n]
    if not np.allclose(square.sum(-1), 1, atol=ROW_SUM_TOLERANCE):
        raise NativeSparseError("BigBird's block-sparse weights, as this version of transformers returns them, don't "
                                "add up to 1 per query even with its random blocks counted, so they aren't drawn.")
    return square


def _numpy(layers: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    return [layer[0].float().cpu().numpy() for layer in layers]  # batch of one


def self_attentions(model: torch.nn.Module, outputs, n: int, global_mask: torch.Tensor | None) -> np.ndarray:
    """[layers, heads, n, n] float32 weights of a native sparse model's forward pass (is_native_sparse).

    global_mask: the Longformer's global_attention_mask input, if one was given.
    """
    if model.config.model_type == "longformer":
        positions = np.array([], dtype=int) if global_mask is None else global_mask[0].nonzero().flatten().cpu().numpy()
        if outputs.global_attentions is not None and not len(positions):
            raise NativeSparseError("This Longformer chose its own global tokens: their positions aren't known here.")
        globals_ = [None] * len(outputs.attentions) if outputs.global_attentions is None else _numpy(
            outputs.global_attentions)
        return np.stack([longformer_square(local, glob, positions)
                         for local, glob in zip(_numpy(outputs.attentions), globals_)])
    weights = np.stack(_numpy(outputs.attentions))  # [layers, heads, n', n']
    if model.base_model.attention_type != "block_sparse":  # switched to full attention (a short text)
        return weights[..., :n, :n]
    return bigbird_square(weights, n, model.config.block_size, model.config.num_random_blocks)

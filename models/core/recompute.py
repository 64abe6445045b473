"""What one attention call combines, kept so any block of its weights can be recomputed exactly.

A long run keeps, per layer, the inputs of the model's eager attention (transformers'
`eager_attention_forward`: query, key, scale, Gemma-2's soft-capping, T5's position bias, the
mask) instead of its [heads, q, k] weights. `AttentionInputs.logits` repeats that formula for
any block of heads, query rows and key columns; with the log-sum-exp of every row, kept from
the forward pass, any single weight costs one dot product.
"""
from dataclasses import dataclass
from typing import Callable

import torch
from transformers.masking_utils import and_masks, padding_mask_function, prepare_padding_mask

BLOCKED = torch.finfo(torch.float32).min  # what eager masks add to a hidden key's score


@dataclass(frozen=True, eq=False)
class KeyMask:
    """Which keys each query may see, evaluated block by block instead of stored n x n.

    `rule` is transformers' mask function (masking_utils: causal, sliding window, padding, ...
    combined), the compact description transformers itself builds its masks from; it must
    broadcast over index tensors. `dense` is a materialised bool [q, k] mask, kept only for
    masks whose rule needs torch.vmap. Masks are evaluated on the CPU.
    """

    rule: Callable | None = None  # (batch, head, q_idx, kv_idx) -> bool, broadcasting
    dense: torch.Tensor | None = None  # bool [q, k]
    q_offset: int = 0
    kv_offset: int = 0

    def visible(self, rows: slice, cols: slice) -> torch.Tensor:
        """bool [r, c]: may query i (of rows) see key j (of cols)."""
        if self.dense is not None:
            return self.dense[rows, cols]
        zero = torch.zeros(1, dtype=torch.long)
        q_idx = torch.arange(rows.start, rows.stop) + self.q_offset
        kv_idx = torch.arange(cols.start, cols.stop) + self.kv_offset
        seen = self.rule(zero[:, None, None, None], zero[None, :, None, None], q_idx[None, None, :, None],
                         kv_idx[None, None, None, :])
        return seen.expand(1, 1, len(q_idx), len(kv_idx))[0, 0]


def grouped_matmul(left: torch.Tensor, right: torch.Tensor, heads: slice, group: int,
                   alpha: float = 1.0) -> torch.Tensor:
    """alpha * [h, r, x] @ [kv_heads, x, y] -> [h, r, y]: query head heads.start + i times key/value
    head (heads.start + i) // group, without repeating the key/value heads (grouped-query attention)."""
    out = left.new_empty(left.shape[0], left.shape[1], right.shape[-1])
    for kv_head in range(heads.start // group, (heads.stop - 1) // group + 1):
        first = max(heads.start, kv_head * group) - heads.start
        last = min(heads.stop, (kv_head + 1) * group) - heads.start
        # the heads sharing a key head as one matrix: one large product, not a batch of small ones
        out[first:last].view(-1, out.shape[-1]).addmm_(left[first:last].flatten(0, 1), right[kv_head],
                                                       beta=0, alpha=alpha)
    return out


@dataclass(frozen=True, eq=False)
class TileKeys:
    """The keys a tile of query rows attends, worked out once for every head of the tile.

    Scores are computed over `cols`; within them, `hidden` bool [r, p] marks, over the columns
    `partial` (relative to cols.start), the keys some row can't see (a causal tile's diagonal block).
    """

    cols: slice
    partial: slice | None = None
    hidden: torch.Tensor | None = None

    @classmethod
    def of(cls, visible: torch.Tensor, cols: slice | None, align: Callable[[slice], slice],
           device: torch.device) -> "TileKeys":
        """visible bool [r, c]: which keys of cols each row may see. cols None: visible covers every
        key, and the tile keeps the keys from the first to the last any row may see, widened by align."""
        seen_by = visible.sum(0, dtype=torch.int32)  # [c] rows that see each key
        if cols is None:
            seen = seen_by.nonzero()
            cols = align(slice(int(seen[0]), int(seen[-1]) + 1) if len(seen) else slice(0, visible.shape[1]))
            visible, seen_by = visible[:, cols], seen_by[cols]
        some = (seen_by < visible.shape[0]).nonzero()  # keys some row can't see
        if not len(some):
            return cls(cols)
        partial = slice(int(some[0]), int(some[-1]) + 1)
        return cls(cols, partial, (~visible[:, partial]).to(device))


def mask_rule(q_length: int, kv_length: int, q_offset: int = 0, kv_offset: int = 0, mask_function=None,
              attention_mask: torch.Tensor | None = None, allow_is_bidirectional_skip: bool = False,
              local_size: int | None = None, **_) -> KeyMask | None:
    """The KeyMask for the keywords transformers passes a mask interface (masking_utils.sdpa_mask's),
    or None where eager_mask would give none (full attention, no padding)."""
    padding = prepare_padding_mask(attention_mask, kv_length, kv_offset)
    unpadded = padding is None or bool(padding.all())
    if allow_is_bidirectional_skip and unpadded and (local_size is None or kv_length < local_size):
        return None
    rule = mask_function if unpadded else and_masks(mask_function, padding_mask_function(padding.cpu()))
    return KeyMask(rule=rule, q_offset=q_offset, kv_offset=kv_offset)


@dataclass(frozen=True, eq=False)
class AttentionInputs:
    """One attention call (one layer of one stack), float32: on the model's device while the
    forward pass runs, kept on the CPU. Query head h reads key head h // (heads // kv_heads):
    grouped-query attention (Ainslie et al. 2023) stores each key head once.
    """

    query: torch.Tensor  # [heads, q, d_head], after rotary embeddings where the model has them
    key: torch.Tensor  # [kv_heads, k, d_head]
    scaling: float  # the factor q.k is multiplied by
    softcap: float | None = None  # Gemma-2: scores -> softcap * tanh(scores / softcap)
    bias: torch.Tensor | None = None  # [heads, q, k] additive position bias (T5), shared by a stack's layers
    mask: KeyMask | None = None  # None: every query sees every key

    @property
    def shape(self) -> tuple[int, int, int]:
        """(heads, q, k)"""
        return self.query.shape[0], self.query.shape[1], self.key.shape[1]

    @property
    def group(self) -> int:
        """Query heads per key head."""
        return self.query.shape[0] // self.key.shape[0]

    def head_groups(self) -> list[slice]:
        """The query heads sharing each key/value head, in order."""
        return [slice(first, first + self.group) for first in range(0, self.query.shape[0], self.group)]

    def keys_of(self, rows: slice, cols: slice | None = None,
                align: Callable[[slice], slice] = lambda cols: cols) -> TileKeys:
        """The keys rows attend: `cols`, or without it whole rows: the keys from the first to the
        last any of these rows may see (widened by `align`; the others' weight is 0)."""
        if self.mask is None:
            return TileKeys(slice(0, self.key.shape[1]) if cols is None else cols)
        visible = self.mask.visible(rows, slice(0, self.key.shape[1]) if cols is None else cols)  # [r, c]
        return TileKeys.of(visible, cols, align, self.query.device)

    def logits(self, heads: slice, rows: slice, keys: TileKeys) -> torch.Tensor:
        """float32 [h, r, c]: what softmax sees over keys.cols, computed as the model's eager attention does."""
        cols = keys.cols
        # the scale applied inside the product (as sdpa does), not in a pass of its own
        scores = grouped_matmul(self.query[heads, rows], self.key[:, cols].transpose(-1, -2), heads,
                                self.group, self.scaling)
        if self.softcap is not None:
            scores.div_(self.softcap).tanh_().mul_(self.softcap)
        if self.bias is not None:
            scores.add_(self.bias[heads, rows, cols])
        if keys.partial is not None:
            scores[..., keys.partial].masked_fill_(keys.hidden, BLOCKED)
        return scores

    def row_weights(self, heads: slice, rows: slice, keys: TileKeys) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole rows, keys from self.keys_of(rows): (logits, weights), both float32 [h, r, c],
        softmax over keys.cols."""
        logits = self.logits(heads, rows, keys)
        return logits, torch.softmax(logits, dim=-1)

    def weights(self, lse: torch.Tensor, heads: slice, rows: slice, cols: slice) -> torch.Tensor:
        """float32 [h, r, c] softmax weights, given the log-sum-exp of every row: float64 [heads, q].

        logit - lse is formed in float64 (the two are close where weights matter), so a block of
        columns is exact to float32 rounding without the rest of its rows.
        """
        logits = self.logits(heads, rows, self.keys_of(rows, cols))
        return (logits.double() - lse[heads, rows, None]).float().exp_()

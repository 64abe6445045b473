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


def grouped_matmul(left: torch.Tensor, right: torch.Tensor, heads: slice, group: int) -> torch.Tensor:
    """[h, r, x] @ [kv_heads, x, y] -> [h, r, y]: query head heads.start + i times key/value head
    (heads.start + i) // group, without repeating the key/value heads (grouped-query attention)."""
    out = left.new_empty(left.shape[0], left.shape[1], right.shape[-1])
    for kv_head in range(heads.start // group, (heads.stop - 1) // group + 1):
        first = max(heads.start, kv_head * group) - heads.start
        last = min(heads.stop, (kv_head + 1) * group) - heads.start
        torch.matmul(left[first:last], right[kv_head], out=out[first:last])
    return out


def seen_keys(visible: torch.Tensor | None, n_keys: int) -> slice:
    """The keys from the first to the last that any row of visible [r, k] may see (all without a mask)."""
    seen = None if visible is None else visible.any(0).nonzero()
    return slice(int(seen[0]), int(seen[-1]) + 1) if seen is not None and len(seen) else slice(0, n_keys)


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

    def visible(self, rows: slice) -> torch.Tensor | None:
        """bool [r, k]: which keys the queries of `rows` may see; None without a mask (all)."""
        return None if self.mask is None else self.mask.visible(rows, slice(0, self.key.shape[1]))

    def logits(self, heads: slice, rows: slice, cols: slice, visible: torch.Tensor | None = None) -> torch.Tensor:
        """float32 [h, r, c]: what softmax sees, computed as the model's eager attention does.
        `visible` [r, c]: the mask's block, where the caller has it already."""
        keys = self.key[:, cols].transpose(-1, -2)  # [kv_heads, d_head, c]
        scores = grouped_matmul(self.query[heads, rows], keys, heads, self.group).mul_(self.scaling)
        if self.softcap is not None:
            scores.div_(self.softcap).tanh_().mul_(self.softcap)
        if self.bias is not None:
            scores.add_(self.bias[heads, rows, cols])
        if self.mask is not None:
            self._mask(scores, self.mask.visible(rows, cols) if visible is None else visible)
        return scores

    @staticmethod
    def _mask(scores: torch.Tensor, visible: torch.Tensor) -> None:
        # only the columns some query can't see are written: a causal tile's diagonal block
        hidden = ~visible.to(scores.device)  # [r, c]
        partial = hidden.any(0).nonzero()
        if len(partial):
            first, last = int(partial[0]), int(partial[-1]) + 1
            scores[..., first:last].masked_fill_(hidden[:, first:last], BLOCKED)

    def row_weights(self, heads: slice, rows: slice, align: Callable[[slice], slice] = lambda cols: cols):
        """Whole rows: (cols, logits, weights), both float32 [h, r, c], softmax over the keys cols
        from the first to the last these rows may see (widened by `align`); the other keys' weight
        is 0. A causal tile stops at its last row."""
        visible = self.visible(rows)  # [r, k], None without a mask
        cols = align(seen_keys(visible, self.key.shape[1]))
        logits = self.logits(heads, rows, cols, None if visible is None else visible[:, cols])
        return cols, logits, torch.softmax(logits, dim=-1)

    def weights(self, lse: torch.Tensor, heads: slice, rows: slice, cols: slice) -> torch.Tensor:
        """float32 [h, r, c] softmax weights, given the log-sum-exp of every row: float64 [heads, q].

        logit - lse is formed in float64 (the two are close where weights matter), so a block of
        columns is exact to float32 rounding without the rest of its rows.
        """
        return (self.logits(heads, rows, cols).double() - lse[heads, rows, None]).float().exp_()

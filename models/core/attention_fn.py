"""The attention function every model is loaded with.

It calls the model family's own `eager_attention_forward`, so the weights are exactly
those of attn_implementation="eager". A caller can switch on these hooks for the forward
passes it runs in its own thread (a context variable, so concurrent sessions sharing
one model never see each other's hooks):
- `recording()`: keep q, k, the scale and the weights of every attention call;
- `extra_mask(fn)`: add an extra additive mask to the scores before softmax;
- `head_gate(fn)`: pass each call's output, per head, through fn before the output projection;
- `tiled(fn)`: hand every call to fn, which attends in row tiles (models.core.long_run), and
  build masks as rules (models.core.recompute.KeyMask), so nothing is n x n.
"""
import contextlib
import contextvars
import sys
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import eager_mask
from transformers.models.bert.modeling_bert import eager_attention_forward as generic_eager

from models.core.recompute import mask_rule

IMPLEMENTATION = "attention_explorer"

# fn(module, q_len, k_len) -> additive mask broadcastable to [batch, heads, q_len, k_len], or None
ExtraMask = Callable[[torch.nn.Module, int, int], "torch.Tensor | None"]
# fn(module, output [batch, q_len, heads, d_head]) -> output of the same shape (models.interventions)
HeadGate = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
# fn(module, query, key, value, mask, scaling, **kwargs) -> attn_output [batch, q_len, heads, d_head]
TiledAttention = Callable[..., torch.Tensor]


@dataclass
class AttentionCall:
    """One call of an attention module, in call order (encoder layers first, then decoder)."""

    module: torch.nn.Module
    query: torch.Tensor  # [batch, heads, q_len, d_head]
    key: torch.Tensor  # [batch, heads, k_len, d_head], key/value heads repeated to match
    scaling: float  # the factor applied to q.k before softmax
    bias: torch.Tensor | None  # additive position bias (T5) [batch|1, heads, q_len, k_len]
    mask: torch.Tensor | None  # additive mask actually used [batch, 1|heads, q_len, k_len]
    weights: torch.Tensor  # [batch, heads, q_len, k_len], the softmax output


@dataclass
class _Hooks:
    calls: list[AttentionCall] | None = None
    extra_mask: ExtraMask | None = None
    head_gate: HeadGate | None = None
    tiled: TiledAttention | None = None


_hooks: contextvars.ContextVar[_Hooks | None] = contextvars.ContextVar("attention_hooks", default=None)


@contextlib.contextmanager
def _with_hooks(**changes) -> Iterator[_Hooks]:
    current = _hooks.get() or _Hooks()
    hooks = _Hooks(**{**vars(current), **changes})
    token = _hooks.set(hooks)
    try:
        yield hooks
    finally:
        _hooks.reset(token)


@contextlib.contextmanager
def recording() -> Iterator[list[AttentionCall]]:
    """Record every attention call made inside the block (this thread only)."""
    with _with_hooks(calls=[]) as hooks:
        yield hooks.calls


@contextlib.contextmanager
def extra_mask(fn: ExtraMask) -> Iterator[None]:
    """Add fn(module, q_len, k_len) to the scores of every attention call in the block."""
    with _with_hooks(extra_mask=fn):
        yield


@contextlib.contextmanager
def head_gate(fn: HeadGate) -> Iterator[None]:
    """Replace every attention call's output by fn(module, output) in the block; nested gates compose."""
    outer = (_hooks.get() or _Hooks()).head_gate
    combined = fn if outer is None else (lambda module, output: fn(module, outer(module, output)))
    with _with_hooks(head_gate=combined):
        yield


@contextlib.contextmanager
def tiled(fn: TiledAttention) -> Iterator[None]:
    """Hand every attention call made inside the block to fn (this thread only); it returns no weights."""
    current = _hooks.get()
    if current is not None and current.extra_mask is not None:
        raise ValueError("A tiled run doesn't take an extra mask: its recomputed weights wouldn't see it.")
    with _with_hooks(tiled=fn):
        yield


def _family_eager(module: torch.nn.Module) -> Callable:
    """The eager attention of the module's own model file (T5 adds its position bias there)."""
    return getattr(sys.modules[type(module).__module__], "eager_attention_forward", generic_eager)


def _repeat_heads(key: torch.Tensor, n_heads: int) -> torch.Tensor:
    # grouped-query attention shares key heads between query heads
    return key.repeat_interleave(n_heads // key.shape[1], dim=1) if key.shape[1] != n_heads else key


def _combine(mask: torch.Tensor | None, extra: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    extra = extra.to(dtype)
    combined = extra if mask is None else mask + extra
    # two "minus infinity" masks added would overflow to -inf and give NaN rows
    return combined.clamp(min=torch.finfo(dtype).min)


def explorer_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Same signature and result as transformers' eager_attention_forward."""
    hooks = _hooks.get()
    if hooks is not None and hooks.tiled is not None:
        output, weights = hooks.tiled(module, query, key, value, attention_mask, scaling, **kwargs), None
    else:
        if hooks is not None and hooks.extra_mask is not None:
            extra = hooks.extra_mask(module, query.shape[-2], key.shape[-2])
            if extra is not None:
                attention_mask = _combine(attention_mask, extra, query.dtype)
        output, weights = _family_eager(module)(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    if hooks is not None and hooks.head_gate is not None:
        output = hooks.head_gate(module, output)  # heads' outputs, before the output projection mixes them
    if hooks is not None and hooks.calls is not None and weights is not None:
        hooks.calls.append(
            AttentionCall(
                module=module,
                query=query.detach(),
                key=_repeat_heads(key.detach(), query.shape[1]),
                scaling=float(query.shape[-1] ** -0.5 if scaling is None else scaling),
                bias=kwargs.get("position_bias"),
                mask=attention_mask,
                weights=weights.detach(),
            )
        )
    return output, weights


def explorer_mask(**kwargs):
    """transformers' eager mask; in a tiled block the mask's rule (a KeyMask) wherever it broadcasts."""
    hooks = _hooks.get()
    if hooks is not None and hooks.tiled is not None and not kwargs.get("use_vmap"):
        return mask_rule(**kwargs)
    return eager_mask(**kwargs)


AttentionInterface.register(IMPLEMENTATION, explorer_attention)
AttentionMaskInterface.register(IMPLEMENTATION, explorer_mask)

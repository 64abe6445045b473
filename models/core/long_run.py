"""Runs of any length: each layer keeps its queries and keys instead of its n x n weights.

The forward pass runs under attention_fn.tiled(TiledForward(...)): every attention call is
computed with the eager formula (models.core.recompute) in row tiles of at most
tiles.TILE_ELEMENTS scores, and keeps what recomputes it (AttentionInputs), the log-sum-exp of
each row, and each head block-pooled (mean and max) for the overview. What a run keeps grows
as n: q and k, each grouped key head once, plus T5's position bias (heads x n x n, once per
stack, as the model computes it; T5's tokenizer stops at 512 tokens).

Before its first long run a model is probed on the first PROBE_TOKENS tokens of the text: run
plain (eager weights) and tiled, every recomputed head must match. The probe also gives the
call plan, which stack and layer each attention call is (matched by tensor identity, as in
models.core.scores). A model that fails gets NotRecomputable, saying where, and runs short.
"""
import contextlib
import weakref
from dataclasses import dataclass, replace

import numpy as np
import psutil
import torch

from models.analysis.numerics import BlockPool, block_count
from models.core import tiles
from models.core.attention_fn import recording, tiled
from models.core.loading import LoadedModel
from models.core.recompute import BLOCKED, AttentionInputs, KeyMask, grouped_matmul
from models.core.scores import IDENTITY_TOLERANCE, tensor_id
from models.core.stacks import CROSS, DECODER, ENCODER, SELF, is_causal, named_attentions

PROBE_TOKENS = 40
PROBE_TILE_ROWS = 8  # several tiles even on the probe, so tile edges are checked too


class NotRecomputable(Exception):
    """The model's attention can't be recomputed from its queries and keys; str(error) says why."""


@dataclass(frozen=True)
class StackShape:
    layers: int
    heads: int
    kv_heads: int
    d_head: int
    bias: bool  # an additive position bias (T5), kept heads x q x k once per stack


@dataclass(frozen=True)
class CallPlan:
    """Which stack and layer each attention call of a forward pass is, in call order."""

    calls: tuple[tuple[str, int], ...]  # (stack name, layer)
    modules: tuple[int, ...]  # id() of each call's module: a forward that calls differently is caught
    shapes: dict[str, StackShape] | None = None  # filled in by the probe's tiled run


@dataclass(frozen=True, eq=False)
class RecomputedStack:
    """One stack of a long run (models.core.tiles.StackWeights): weights recomputed on demand."""

    name: str
    layers: tuple[AttentionInputs, ...]
    lse: torch.Tensor  # float64 [layers, heads, q]: log-sum-exp of every row's logits
    pooled: tuple[np.ndarray, np.ndarray]  # (mean, max) float32 [layers, heads, ...]: the overview
    causal: bool

    def __post_init__(self):
        for array in self.pooled:
            array.setflags(write=False)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.layers), *self.layers[0].shape)

    def block(self, layer: int, heads: slice, rows: slice, cols: slice) -> torch.Tensor:
        """float32 [h, r, c], recomputed in row tiles: whole rows by softmax, as the forward pass
        did, other blocks from the kept log-sum-exp (float64 logits: 2 tiles' bytes)."""
        inputs, whole = self.layers[layer], cols == slice(0, self.shape[3])
        out = (torch.zeros if whole else torch.empty)(heads.stop - heads.start, rows.stop - rows.start,
                                                       cols.stop - cols.start)
        step = max(1, tiles.TILE_ELEMENTS // 2 // (out.shape[0] * out.shape[2]))
        for start in range(rows.start, rows.stop, step):
            part = slice(start, min(rows.stop, start + step))
            into = out[:, part.start - rows.start:part.stop - rows.start]
            if whole:
                keys = inputs.keys_of(part)
                into[..., keys.cols] = inputs.row_weights(heads, part, keys)[1]
            else:
                into[...] = inputs.weights(self.lse[layer], heads, part, cols)
        return out

    def overview(self) -> tuple[np.ndarray, np.ndarray]:
        return self.pooled

    def kept_tensors(self) -> list[torch.Tensor]:
        """Every tensor the stack keeps (a shared position bias or mask appears once per layer)."""
        masks = [inputs.mask.dense for inputs in self.layers if inputs.mask is not None]
        per_layer = [t for inputs in self.layers for t in (inputs.query, inputs.key, inputs.bias)]
        return [t for t in (self.lse, *map(torch.from_numpy, self.pooled), *per_layer, *masks) if t is not None]


def kept_bytes(stacks: dict[str, RecomputedStack]) -> int:
    """Bytes of memory the stacks hold, each buffer counted once."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for stack in stacks.values() for t in stack.kept_tensors()}
    return sum(storages.values())


def _own(tensor: torch.Tensor) -> torch.Tensor:
    """tensor on the CPU, holding its own elements only (not a view into a larger buffer, as GPT-2's q is)."""
    tensor = tensor.to("cpu").contiguous()
    whole = tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    return tensor if whole else tensor.clone()


def _key_mask(mask) -> KeyMask | None:
    """What the attention function was given as a mask, as a KeyMask."""
    if mask is None or isinstance(mask, KeyMask):
        return mask
    if mask.dim() != 4 or mask.shape[:2] != (1, 1):
        raise NotRecomputable(f"it masks each head differently (a {tuple(mask.shape)} mask)")
    return KeyMask(dense=(mask[0, 0] > BLOCKED / 2).cpu())


def attend_in_tiles(inputs: AttentionInputs, value: torch.Tensor, tile_rows: int | None = None):
    """The eager attention of one call in tiles: (output [q, heads, d_v], lse float64 [heads, q]
    on the CPU, the heads' BlockPool). value [kv_heads, k, d_v]; inputs on value's device.

    A tile is `tile_rows` query rows of the heads sharing one key/value head, over the keys its
    rows may see (widened to the overview's column blocks); it holds at most tiles.TILE_ELEMENTS
    weights, so its softmax, pooling and product with the values read it from cache.
    LSE = row max - log(largest weight): the largest weight is 1 / sum(exp(logit - row max)), as
    softmax computed it.
    """
    heads, q, k = inputs.shape
    pool = BlockPool(heads, q, k, tiles.OVERVIEW_SIZE, value.device)
    step = tile_rows or max(1, tiles.tile_budget(q, k) // (inputs.group * k))
    output = value.new_empty(q, heads, value.shape[-1])
    lse = torch.empty(heads, q, dtype=torch.float64)  # on the CPU: MPS has no float64
    for start in range(0, q, step):
        rows = slice(start, min(q, start + step))
        keys = inputs.keys_of(rows, align=pool.align)  # the mask worked out once for every head
        for group in inputs.head_groups():
            logits, weights = inputs.row_weights(group, rows, keys)  # [g, r, c]
            output[rows, group] = grouped_matmul(weights, value[:, keys.cols], group, inputs.group).transpose(0, 1)
            pool.add(weights, rows, keys.cols, group)
            lse[group, rows] = logits.amax(-1).cpu().double() - weights.amax(-1).cpu().double().log()
    return output, lse, pool


class TiledForward:
    """attention_fn.tiled's hook for one forward pass: attends each call in row tiles and keeps
    what recomputes it, stack by stack."""

    def __init__(self, plan: CallPlan, progress: tiles.Progress | None = None, tile_rows: int | None = None):
        self.plan, self.progress, self.tile_rows = plan, progress, tile_rows
        self.kept: dict[str, list] = {}  # stack -> [(AttentionInputs on the CPU, lse, (mean, max))]
        self.biases: dict[int, torch.Tensor | None] = {}  # data_ptr -> kept bias (None: all zero)
        self.done = 0

    def _bias(self, bias: torch.Tensor | None, heads: int) -> torch.Tensor | None:
        # T5 hands every layer the same bias tensor: kept once; its cross-attention's is all zero
        if bias is None:
            return None
        if bias.data_ptr() not in self.biases:
            self.biases[bias.data_ptr()] = _own(bias[0]).expand(heads, -1, -1) if bias.any() else None
        return self.biases[bias.data_ptr()]

    def __call__(self, module, query, key, value, mask, scaling, **kwargs) -> torch.Tensor:
        if self.done >= len(self.plan.calls) or id(module) != self.plan.modules[self.done]:
            raise NotRecomputable("its attention calls differ from those of the probe")
        stack = self.plan.calls[self.done][0]
        scaling = float(query.shape[-1] ** -0.5 if scaling is None else scaling)
        bias = self._bias(kwargs.get("position_bias"), query.shape[1])
        inputs = AttentionInputs(query[0], key[0], scaling, kwargs.get("softcap"),
                                 None if bias is None else bias.to(query.device), _key_mask(mask))
        output, lse, pool = attend_in_tiles(inputs, value[0], self.tile_rows)
        kept = replace(inputs, query=_own(query[0]), key=_own(key[0]), bias=bias)
        self.kept.setdefault(stack, []).append((kept, lse, pool.result()))
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, len(self.plan.calls))
        return output[None]

    def stacks(self, decoder_only: bool) -> dict[str, RecomputedStack]:
        stacks = {}
        for name, layers in self.kept.items():
            inputs, lse, pooled = zip(*layers)
            stacks[name] = RecomputedStack(name, inputs, torch.stack(lse),
                                           tuple(np.stack(part) for part in zip(*pooled)),
                                           is_causal(name, decoder_only))
        return stacks


def tiled_forward(loaded: LoadedModel, inputs: dict[str, torch.Tensor], plan: CallPlan,
                  progress: tiles.Progress | None = None,
                  tile_rows: int | None = None) -> tuple[dict[str, RecomputedStack], torch.Tensor | None]:
    """Run the model (without its LM head) on inputs in tiled mode: (its stacks by name, the base
    model's last_hidden_state [1, n, hidden], None where its outputs have none).

    Whatever `progress` raises stops the run and propagates; what was kept is dropped first.
    """
    recorder = TiledForward(plan, progress, tile_rows)
    try:
        with torch.inference_mode(), tiled(recorder):
            outputs = loaded.model.base_model(**inputs, use_cache=False)
        if recorder.done != len(plan.calls):
            raise NotRecomputable(f"it made {recorder.done} attention calls where the probe made {len(plan.calls)}")
        return recorder.stacks(loaded.kind == "decoder"), getattr(outputs, "last_hidden_state", None)
    finally:
        recorder.kept.clear()
        recorder.biases.clear()


def _call_plan(calls, named: dict[str, tuple]) -> CallPlan | str:
    """The plan matching recorded calls to the outputs' stacks, or why they don't match."""
    if not any(named.values()):
        return "it reports no attention weights"
    by_tensor = {tensor_id(call.weights): index for index, call in enumerate(calls)}
    entries: list[tuple[str, int] | None] = [None] * len(calls)
    for name, layers in named.items():
        for layer, weights in enumerate(layers or ()):
            index = by_tensor.get(tensor_id(weights))
            if index is None:
                return f"its {name} attention doesn't go through the explorer's attention function"
            entries[index] = (name, layer)
    if None in entries:
        return "it makes attention calls its outputs don't report"
    return CallPlan(tuple(entries), tuple(id(call.module) for call in calls))


def _probe(loaded: LoadedModel, inputs: dict[str, torch.Tensor]) -> CallPlan | str:
    """The call plan, if every head recomputed from a tiled run of `inputs` matches the eager weights."""
    with torch.inference_mode(), recording() as calls:
        outputs = loaded.model(**inputs, output_attentions=True, use_cache=False)
    named = named_attentions(outputs, loaded.kind == "encoder-decoder")
    plan = _call_plan(calls, named)
    if isinstance(plan, str):
        return plan
    try:
        stacks, _ = tiled_forward(loaded, inputs, plan, tile_rows=PROBE_TILE_ROWS)
    except Exception as error:  # a model's code that can't take a KeyMask, or gives a per-head mask
        return f"its forward pass fails when attention runs in tiles ({type(error).__name__}: {error})"
    for name, layers in named.items():
        for layer, expected in enumerate(layers or ()):
            _, heads, q, k = stacks[name].shape
            recomputed = stacks[name].block(layer, slice(0, heads), slice(0, q), slice(0, k))
            error = float((recomputed - expected[0].float().cpu()).abs().max())
            if not error <= IDENTITY_TOLERANCE:
                return (f"its layer {layer} {name} weights are up to {error:.2g} away from softmax of its scaled q.k "
                        "(with any soft-capping, position bias and mask): its attention adds something its queries "
                        "and keys don't carry")
    shapes = {name: StackShape(len(stack.layers), stack.layers[0].shape[0], stack.layers[0].key.shape[0],
                               stack.layers[0].key.shape[-1], stack.layers[0].bias is not None)
              for name, stack in stacks.items()}
    return replace(plan, shapes=shapes)


_verdicts: "weakref.WeakKeyDictionary[torch.nn.Module, CallPlan | str]" = weakref.WeakKeyDictionary()


def call_plan(loaded: LoadedModel, inputs: dict[str, torch.Tensor]) -> CallPlan:
    """The model's call plan, probed once per model on the first PROBE_TOKENS tokens of `inputs`.

    Raises NotRecomputable (str: which part and why) for a model whose attention the tiled run
    can't reproduce: attention outside the explorer's attention function, an eager formula
    recompute.AttentionInputs doesn't model (e.g. attention sinks), per-head masks.
    """
    verdict = _verdicts.get(loaded.model)
    if verdict is None:
        probe = {name: value[:, :PROBE_TOKENS] for name, value in inputs.items()}
        verdict = _verdicts[loaded.model] = _probe(loaded, probe)
    if isinstance(verdict, str):
        raise NotRecomputable(verdict)
    return verdict


@contextlib.contextmanager
def lean_attention(loaded: LoadedModel, inputs: dict[str, torch.Tensor]):
    """In the block, every attention call of `loaded` attends in row tiles and keeps nothing: a
    forward pass that needs only the model's outputs on a long text (its next-token logits) never
    holds a head's n x n weights. `inputs` as for call_plan, whose NotRecomputable it raises for a
    model the tiles can't reproduce."""
    call_plan(loaded, inputs)

    def attend(module, query, key, value, mask, scaling, **kwargs) -> torch.Tensor:
        if kwargs.get("position_bias") is not None:
            raise NotRecomputable("its attention adds a position bias the lean pass doesn't keep")
        scaling = float(query.shape[-1] ** -0.5 if scaling is None else scaling)
        inputs = AttentionInputs(query[0], key[0], scaling, kwargs.get("softcap"), None, _key_mask(mask))
        return attend_in_tiles(inputs, value[0])[0][None]  # [1, q, heads, d_v]

    with tiled(attend):
        yield


def _ffn_size(config) -> int:
    names = ("intermediate_size", "d_ff", "n_inner", "encoder_ffn_dim", "hidden_dim")
    return next((size for name in names if isinstance(size := getattr(config, name, None), int)),
                4 * config.hidden_size)


def working_bytes(loaded: LoadedModel, n: int, m: int = 0) -> int:
    """Peak transient bytes of a forward pass on n tokens (m decoder tokens), not counting the
    weights a run keeps: a rough bound on hidden states, q/k/v and the MLP of a layer, the
    base model's logits where it has an LM head built in (T5), and three score tiles."""
    config = loaded.config.get_text_config()
    longest = max(n, m)
    with_head = loaded.model.base_model is loaded.model
    logits = 4 * longest * getattr(config, "vocab_size", 0) if with_head else 0
    return 4 * longest * (16 * config.hidden_size + 4 * _ffn_size(config)) + logits + 3 * 4 * tiles.TILE_ELEMENTS


def long_kept_bytes(plan: CallPlan, n: int, m: int = 0) -> int:
    """Bytes a long run of n tokens (m decoder tokens) keeps: per layer q, k, the rows' log-sum-exp
    and the overview; a position bias once per stack."""
    lengths = {SELF: (n, n), ENCODER: (n, n), DECODER: (m, m), CROSS: (m, n)}
    total = 0
    for name, shape in plan.shapes.items():
        q, k = lengths[name]
        layer = (4 * (shape.heads * q + shape.kv_heads * k) * shape.d_head + 8 * shape.heads * q
                 + 2 * 4 * shape.heads * block_count(q, tiles.OVERVIEW_SIZE) * block_count(k, tiles.OVERVIEW_SIZE))
        total += shape.layers * layer + (4 * shape.heads * q * k if shape.bias else 0)
    return total


def available_memory() -> int:
    """Bytes the system can give a process now without swapping (MemAvailable on Linux)."""
    return psutil.virtual_memory().available

"""Switching heads off while the model runs: zero- and mean-ablation, and gates on heads' outputs.

A head's output is its slice of the input to the attention's output projection: the attention
function's `attn_output` [batch, q, heads, d_head] (every family in transformers 5 returns that
shape, grouped-query models per query head). Zero-ablation sets it to 0, mean-ablation replaces
it by its mean over the positions of the text (REFERENCES.md, "Heads at work"). Both go through
the explorer's attention function (models.core.attention_fn.head_gate), in this thread only:
every forward pass in the block (run_attention, fill_mask, next_token_predictions, token_losses) sees the
ablated model, and other sessions sharing the model don't.

Heads are numbered as run_attention numbers them: (layer, head) of one attention stack,
"self-attention" for encoders and decoders. An encoder-decoder has three separate stacks,
"encoder", "decoder" (its self-attention) and "cross", each numbered from layer 0; `stack`
picks one (default: the first, as in AttentionRun.attentions); nested blocks combine stacks.

    with ablated(loaded, [(0, 3), (2, 1)]):
        run = run_attention(loaded, text)
"""
import collections
import contextlib
import operator
import weakref
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Literal, Mapping

import torch

from models.core.attention_fn import HeadGate, head_gate, recording
from models.core.loading import LoadedModel
from models.core.run import RunError, model_attentions
from models.core.scores import matched_calls

How = Literal["zero", "mean"]
Head = tuple[int, int]  # (layer, head)
Place = tuple[str, int]  # (stack, layer)
PROBE_TEXT = "Attention"


class AblationError(RunError):
    """Heads can't be switched off as asked; str(error) is a message for the user."""


@dataclass(frozen=True, eq=False)
class AttentionLayers:
    """Where each attention module of a model sits in run_attention's numbering."""

    heads: dict[str, tuple[int, ...]]  # stack name -> number of heads of each layer
    places: dict[torch.nn.Module, tuple[Place, ...]]  # module -> its calls' (stack, layer), in call order

    def stack(self, name: str | None, spec: str) -> str:
        """The stack called `name` (None: the first), or an AblationError listing the model's stacks."""
        if name is None:
            return next(iter(self.heads))
        if name not in self.heads:
            raise AblationError(f"'{spec}' has no attention stack '{name}': it has {', '.join(self.heads)}.")
        return name


_LAYERS: "weakref.WeakKeyDictionary[torch.nn.Module, AttentionLayers]" = weakref.WeakKeyDictionary()


def _probe(loaded: LoadedModel) -> AttentionLayers:
    """One forward pass on a word, its attention calls matched to the attentions the model returns."""
    ids = loaded.tokenizer(PROBE_TEXT, return_tensors="pt")["input_ids"]
    inputs = {"input_ids": ids, **({"decoder_input_ids": ids} if loaded.kind == "encoder-decoder" else {})}
    with torch.inference_mode(), recording() as calls:
        outputs = loaded.model(**inputs, output_attentions=True, use_cache=False)
    order = {id(call): index for index, call in enumerate(calls)}
    heads, found = {}, []
    for name, matched in matched_calls(calls, model_attentions(loaded, outputs)).items():
        if any(call is None for call in matched):
            raise AblationError(
                f"'{loaded.spec}' ({loaded.config.model_type}) computes its attention ({name}) outside the "
                "explorer's attention function, as Longformer, XLNet and Funnel do, so its heads can't be "
                "switched off or gated.")
        heads[name] = tuple(call.weights.shape[1] for call in matched)
        found += [(order[id(call)], call.module, (name, layer)) for layer, call in enumerate(matched)]
    places = collections.defaultdict(tuple)
    for _, module, place in sorted(found, key=lambda entry: entry[0]):
        places[module] += (place,)  # ALBERT calls one shared module once per layer
    return AttentionLayers(heads, dict(places))


def attention_layers(loaded: LoadedModel) -> AttentionLayers:
    """The model's stacks and heads per layer, found once per model by a probe forward pass.

    Raises AblationError for a model whose attention bypasses the explorer's function.
    """
    layers = _LAYERS.get(loaded.model)
    if layers is None:
        layers = _LAYERS[loaded.model] = _probe(loaded)
    return layers


def _gate(layers: AttentionLayers, change: Callable[[Place, torch.Tensor], torch.Tensor]) -> HeadGate:
    """A head_gate calling change((stack, layer), output) with each call's place in the numbering."""
    calls = collections.Counter()  # a shared module's n-th call in a forward pass is layer n

    def gate(module: torch.nn.Module, output: torch.Tensor) -> torch.Tensor:
        places = layers.places.get(module)
        if places is None:
            return output
        place = places[calls[module] % len(places)]
        calls[module] += 1
        return change(place, output)

    return gate


def _describe(heads: list[Head]) -> str:
    named = [f"layer {layer} head {head}" for layer, head in heads[:5]]
    return ", ".join(named) + (f" and {len(heads) - 5} more" if len(heads) > 5 else "")


def checked_heads(loaded: LoadedModel, heads: Iterable[Head], stack: str | None = None) -> tuple[str, list[Head]]:
    """(stack name, sorted distinct (layer, head) pairs), or an AblationError naming the bad ones."""
    layers = attention_layers(loaded)
    stack = layers.stack(stack, loaded.spec)
    try:
        pairs = sorted({(operator.index(layer), operator.index(head)) for layer, head in heads})
    except (TypeError, ValueError):
        raise AblationError("Heads are given as (layer, head) pairs of whole numbers, e.g. [(0, 3), (2, 1)].") from None
    counts = layers.heads[stack]
    bad = [(layer, head) for layer, head in pairs if not (0 <= layer < len(counts) and 0 <= head < counts[layer])]
    if bad:
        raise AblationError(f"{_describe(bad)} {'is' if len(bad) == 1 else 'are'} out of range: '{loaded.spec}' has "
                            f"{len(counts)} layers × {max(counts)} heads ({stack}), numbered from 0.")
    return stack, pairs


def _switched_off(output: torch.Tensor, off: torch.Tensor, how: How) -> torch.Tensor:
    """output [batch, q, heads, d_head], off [heads] bool -> those heads' outputs zeroed or averaged."""
    replacement = output.mean(dim=1, keepdim=True) if how == "mean" else output.new_zeros(())
    return torch.where(off[:, None], replacement, output)  # the other heads' values pass bit for bit


@contextlib.contextmanager
def ablated(loaded: LoadedModel, heads: Iterable[Head], how: How = "zero", stack: str | None = None) -> Iterator[None]:
    """Run `loaded` with the (layer, head) pairs of `stack` switched off inside the block (this thread only).

    how="zero" sets each head's output to 0; how="mean" replaces it by its mean over the positions
    of each text in the batch (padding included, so run one text at a time; a causal model's
    early positions then see an average that includes later tokens). With no heads the model's
    outputs are bit-identical to the intact model's. Switching off every head of a layer leaves
    that layer only its output projection's bias (ablation_notice says so).
    Raises AblationError for heads out of range, an unknown stack, or a model that can't be gated.
    """
    if how not in ("zero", "mean"):
        raise AblationError(f"Heads are switched off by 'zero' or 'mean', not {how!r}.")
    stack, pairs = checked_heads(loaded, heads, stack)
    counts = attention_layers(loaded).heads[stack]
    off = {}  # layer -> [heads] bool
    for layer, head in pairs:
        off.setdefault(layer, torch.zeros(counts[layer], dtype=torch.bool))[head] = True

    def change(place: Place, output: torch.Tensor) -> torch.Tensor:
        name, layer = place
        return _switched_off(output, off[layer], how) if name == stack and layer in off else output

    with head_gate(_gate(attention_layers(loaded), change)):
        yield


@contextlib.contextmanager
def ablated_stacks(loaded: LoadedModel, heads: Mapping[str, Iterable[Head]], how: How = "zero") -> Iterator[None]:
    """ablated() in several stacks at once: heads {stack: (layer, head) pairs}, e.g. an encoder-decoder's
    encoder and cross-attention heads. An empty mapping changes nothing (bit-identical outputs)."""
    with contextlib.ExitStack() as blocks:
        for stack, pairs in heads.items():
            blocks.enter_context(ablated(loaded, pairs, how, stack))
        yield


@contextlib.contextmanager
def gated(loaded: LoadedModel, gates: torch.Tensor, stack: str | None = None) -> Iterator[None]:
    """Multiply each head's output by gates[layer, head] inside the block: Michel et al. 2019's ξ_h.

    gates: [layers, heads] of `stack` (default the first), e.g. ones with requires_grad=True,
    whose gradient is the head importance (models.interventions.importance).
    """
    layers = attention_layers(loaded)
    stack = layers.stack(stack, loaded.spec)
    counts = layers.heads[stack]
    if tuple(gates.shape) != (len(counts), max(counts)):
        raise AblationError(f"gates must be [layers, heads] = [{len(counts)}, {max(counts)}] for {stack}, "
                            f"not {list(gates.shape)}.")

    def change(place: Place, output: torch.Tensor) -> torch.Tensor:
        name, layer = place
        return output * gates[layer, :output.shape[2], None].to(output.dtype) if name == stack else output

    with head_gate(_gate(layers, change)):
        yield


def ablation_notice(loaded: LoadedModel, heads: Iterable[Head], how: How = "zero",
                    stack: str | None = None) -> str | None:
    """What switching off whole layers means, for the reader; None when no layer loses all its heads."""
    stack, pairs = checked_heads(loaded, heads, stack)
    counts = attention_layers(loaded).heads[stack]
    per_layer = collections.Counter(layer for layer, _ in pairs)
    whole = [layer for layer, n in sorted(per_layer.items()) if n == counts[layer]]
    if len(whole) == len(counts):
        return ("Every head is replaced by its mean over the text: each position reads the same text-wide average, "
                "not any particular token." if how == "mean" else
                "Every head is switched off: no position reads any other token, so each output depends on its own "
                "token alone (and its position, where the model adds position embeddings).")
    if not whole:
        return None
    layers = f"layer{'s' if len(whole) > 1 else ''} {', '.join(map(str, whole))}"
    return (f"All heads of {layers} are replaced by their means: "
            "the layer adds the same text-wide average at every position." if how == "mean" else
            f"All heads of {layers} are off: the layer's attention adds only its output projection's bias, "
            "and the residual stream passes through unchanged.")

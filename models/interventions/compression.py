"""Whole-model compression, as in the seed notes: L1-unstructured pruning and int8 quantization of
every linear layer. Each returns a NEW LoadedModel (a deep copy; the original is untouched) whose
spec says what was done, so the Compare page can put it next to the original.

Linear layers are torch.nn.Linear and GPT-2's Conv1D (a Linear with its weight transposed). A
language-model head tied to the input embedding (SmolLM2, GPT-2) is a Linear too: pruning it
prunes the shared embedding matrix; quantizing it unties it (the embedding stays float32).
"""
import copy
import functools
import numbers
from dataclasses import replace

import torch
from torch.nn.utils import prune
from transformers.pytorch_utils import Conv1D

from models.core.loading import LoadedModel

INT8_METHOD = ("torchao quantize_ with Int8DynamicActivationInt8WeightConfig: int8 weights per output channel, "
               "activations quantized to int8 per token at run time")


class CompressionError(ValueError):
    """The model can't be compressed as asked; str(error) is a message for the user."""


def _linear_weights(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Linear and Conv1D modules, one per distinct weight (a weight shared by two is pruned once)."""
    modules, seen = [], set()
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, Conv1D)) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            modules.append(module)
    return modules


def pruned_l1(loaded: LoadedModel, amount: float) -> LoadedModel:
    """A copy of `loaded` with the smallest-|w| share `amount` of every linear weight set to 0.

    torch.nn.utils.prune.l1_unstructured per weight, made permanent by prune.remove (REFERENCES.md,
    "Heads at work"). Biases are kept. Raises CompressionError unless 0 <= amount < 1.
    """
    if not isinstance(amount, numbers.Real) or not 0 <= amount < 1:
        raise CompressionError(f"The pruning amount is a share of each weight from 0 to just under 1 "
                               f"(0.2 prunes 20%), not {amount!r}.")
    model = copy.deepcopy(loaded.model)
    for module in _linear_weights(model):
        prune.l1_unstructured(module, "weight", amount=float(amount))
        prune.remove(module, "weight")
    return replace(loaded, spec=f"{loaded.spec} · L1-pruned {amount * 100:g}%", model=model)


def _conv1d_as_linear(model: torch.nn.Module) -> None:
    """Swap GPT-2's Conv1D modules for equal nn.Linear ones, which torchao quantizes."""
    for name, module in list(model.named_modules()):
        if isinstance(module, Conv1D):
            linear = torch.nn.Linear(module.nx, module.nf, dtype=module.weight.dtype)
            linear.weight = torch.nn.Parameter(module.weight.detach().t().contiguous())  # Conv1D stores [in, out]
            linear.bias = module.bias
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, linear)


@functools.cache
def _int8_quantizer():
    """torchao's quantize_ and int8 configuration, after checking they run here on a small layer."""
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as error:
        raise CompressionError(f"int8 quantization needs torchao, which is not installed here: {error}") from error
    probe = torch.nn.Sequential(torch.nn.Linear(32, 32))
    try:
        quantize_(probe, Int8DynamicActivationInt8WeightConfig())
        with torch.inference_mode():
            probe(torch.randn(2, 32))
    except Exception as error:  # a missing kernel surfaces as RuntimeError, NotImplementedError, ...
        raise CompressionError(f"int8 quantization has no engine on this machine (torchao's int8 layers fail: "
                               f"{type(error).__name__}: {error}).") from error
    return quantize_, Int8DynamicActivationInt8WeightConfig


def quantized_int8(loaded: LoadedModel) -> LoadedModel:
    """A copy of `loaded` with every linear layer quantized to int8 weights and activations.

    torchao's quantize_(model, Int8DynamicActivationInt8WeightConfig()), replacing the deprecated
    torch.ao.quantization.quantize_dynamic. Raises CompressionError when torchao is missing or its
    int8 layers don't run on this machine.
    """
    quantize_, config = _int8_quantizer()
    model = copy.deepcopy(loaded.model)
    _conv1d_as_linear(model)
    quantize_(model, config())
    return replace(loaded, spec=f"{loaded.spec} · int8 (torchao)", model=model)

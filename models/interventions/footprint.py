"""What a (compressed) model costs: bytes in memory, share of zero weights, time of a forward pass."""
import itertools
import statistics
import time

import torch
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from models.core.loading import LoadedModel
from models.core.run import encode, model_inputs


def _stored(tensor: torch.Tensor) -> list[torch.Tensor]:
    """The plain tensors that hold `tensor`: itself, or a quantized tensor's parts (int8 values, scales)."""
    if not is_traceable_wrapper_subclass(tensor):
        return [tensor]
    names, _ = tensor.__tensor_flatten__()
    return [part for name in names for part in _stored(getattr(tensor, name))]


def memory_bytes(loaded: LoadedModel) -> int:
    """Bytes of the model's parameters and buffers as stored; a weight tied to another counts once."""
    tensors = itertools.chain(loaded.model.parameters(), loaded.model.buffers())
    return sum(part.numel() * part.element_size() for tensor in tensors for part in _stored(tensor))


def zero_share(loaded: LoadedModel) -> float:
    """Share of the model's parameter values that are exactly 0 (a quantized weight's as dequantized)."""
    zeros = total = 0
    with torch.inference_mode():
        for parameter in loaded.model.parameters():
            values = parameter.dequantize() if is_traceable_wrapper_subclass(parameter) else parameter
            zeros += int((values == 0).sum())
            total += values.numel()
    return zeros / total


def forward_seconds(loaded: LoadedModel, text: str, repeats: int = 5) -> float:
    """Median wall time of a forward pass on `text`, in seconds, after one untimed warm-up pass."""
    encoding, _ = encode(loaded, text)
    inputs = model_inputs(loaded, encoding, text)
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            loaded.model(**inputs, use_cache=False)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])

"""Drop two known log lines printed when torchao is imported on a CPU-only machine (transformers
imports torchao whenever it is installed): its CUDA kernels failing to load, and torch deprecating
how torchao registers enums. Installed before transformers is imported; every other record passes.
"""
import logging

NOISE = {
    "torchao": ("Failed to load ", ".so"),
    "torch.utils._pytree": ("is an Enum subclass and is now natively supported",),
}


def _is_noise(logger_name: str, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return all(fragment in message for fragment in NOISE[logger_name])


for _name in NOISE:
    logging.getLogger(_name).addFilter(lambda record, name=_name: not _is_noise(name, record))

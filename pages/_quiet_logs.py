"""Drop two known log lines printed when torchao is imported on a CPU-only machine (transformers
imports torchao whenever it is installed): its CUDA kernels failing to load, and torch deprecating
how torchao registers enums. app.py installs this before it imports anything that loads
transformers; every other record passes."""
import functools
import logging

NOISE = {
    "torchao": ("Failed to load ", ".so"),
    "torch.utils._pytree": ("is an Enum subclass and is now natively supported",),
}


def is_noise(logger_name: str, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return all(fragment in message for fragment in NOISE[logger_name])


@functools.cache  # app.py runs on every click: the filters go in once per process
def quiet_torchao_import_noise() -> None:
    """Filter NOISE's records out of their loggers."""
    for name in NOISE:
        logging.getLogger(name).addFilter(lambda record, name=name: not is_noise(name, record))

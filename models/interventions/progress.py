"""Progress of a forward pass, reported after each attention call: the forward passes of the
Heads at work page (predictions, the loss per token) take no progress callback of their own.

    with attention_progress(loaded, lambda done, total: print(done, total)):
        token_losses(loaded, text)            # 1 of 30, 2 of 30, ... per pass of the model
"""
import contextlib
from typing import Iterator

from models.core.attention_fn import head_gate
from models.core.loading import LoadedModel
from models.core.tiles import Progress
from models.interventions.ablation import attention_layers


@contextlib.contextmanager
def attention_progress(loaded: LoadedModel, progress: Progress | None) -> Iterator[None]:
    """In the block, `progress(done, total)` after each attention call of a pass of `loaded` (total:
    its attention layers, all stacks; a masked LM's loss takes several passes, each counted from 1).
    The call's output passes unchanged; what `progress` raises stops the forward pass."""
    if progress is None:
        yield
        return
    total = sum(len(layers) for layers in attention_layers(loaded).heads.values())
    calls = 0

    def report(module, output):
        nonlocal calls
        calls += 1
        progress((calls - 1) % total + 1, total)
        return output

    with head_gate(report):
        yield

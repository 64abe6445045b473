"""models.memory: freed blocks kept for reuse, and run memory touched ahead of need."""
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

from models import run_attention
from models.memory import SPARE_MIN_BYTES, RunMemory

ROOT = Path(__file__).resolve().parents[1]
# three 12 MB blocks at a time, as a layer's temporaries at 512 tokens; page faults per round
FAULTS_PER_ROUND = """
import resource, sys, torch
sys.path.insert(0, {root!r})
from models.memory import keep_freed_memory
if {keep}:
    assert keep_freed_memory()
counts = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones(3_000_000) for _ in range(3)]
    del blocks
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(max(counts[-2:]))
"""


def _faults_in_last_rounds(keep: bool) -> int:
    script = FAULTS_PER_ROUND.format(root=str(ROOT), keep=keep)
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    assert _faults_in_last_rounds(keep=False) > 1000  # glibc's default hands them back to the kernel
    assert _faults_in_last_rounds(keep=True) < 100


def _faults(fn) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_prepared_spare_is_handed_over_already_touched():
    memory, shape = RunMemory(), (2, 4, 1024, 1024)  # 32 MB: 8192 pages
    fresh = memory.take(shape)
    assert _faults(lambda: fresh.fill_(1)) > 4000  # new memory: every page faults in when written
    memory.prepare().result()
    assert memory.prepare() is None  # the spare is there: nothing more to touch
    spare = memory.take(shape)
    assert spare.shape == shape and not spare.any()
    assert _faults(lambda: spare.fill_(1)) < 400
    assert memory.take(shape).data_ptr() not in (spare.data_ptr(), fresh.data_ptr())  # handed over once


def test_spares_follow_the_last_large_shape_and_skip_small_ones():
    memory = RunMemory()
    assert memory.prepare() is None  # nothing taken yet
    small = (1, 1, 64, 64)
    assert 4 * np.prod(small) < SPARE_MIN_BYTES
    memory.take(small)
    assert memory.prepare() is None
    memory.take((2, 4, 1024, 1024))
    memory.take((2, 4, 1000, 1000))
    memory.prepare().result()
    spare = memory.take((2, 4, 1000, 1000))  # the last large shape's spare
    assert not spare.any() and _faults(lambda: spare.fill_(1)) < 400


class _Recording(RunMemory):
    def take(self, shape):
        self.taken = super().take(shape)
        return self.taken


def test_runs_land_in_the_memory_handed_over_and_equal_plain_runs(default_model):
    memory, text = _Recording(), " ".join(["the cat sat on the mat"] * 40)
    plain = run_attention(default_model, text)
    assert 4 * plain.attentions.size >= SPARE_MIN_BYTES
    run_attention(default_model, text, memory=memory)
    memory.prepare().result()
    run = run_attention(default_model, text, memory=memory)
    assert run.attentions.ctypes.data == memory.taken.data_ptr()  # the spare itself, not a copy
    np.testing.assert_array_equal(run.attentions, plain.attentions)

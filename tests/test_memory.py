"""models.memory: freed blocks kept for reuse, and run memory touched ahead of need."""
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

from models import run_attention
from models.memory import SPARE_MIN_BYTES, RunMemory

ROOT = Path(__file__).resolve().parents[1]
# page faults depend on what the process has freed before: each probe runs in a fresh interpreter
PROBE = """
import resource, sys, torch
sys.path.insert(0, {root!r})
from models.memory import RunMemory, keep_freed_memory

def faults(fn):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def three_blocks():  # 3 x 12 MB at a time, as a layer's temporaries at 512 tokens
    blocks = [torch.ones(3_000_000) for _ in range(3)]
    del blocks
"""
BLOCK_IN_HEAP = PROBE + """
{setup}
block = torch.empty(4_000_000)  # 16 MB, as a layer's temporaries at 512 tokens
heap = next(line for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]"))
start, end = (int(address, 16) for address in heap.split()[0].split("-"))
print(start <= block.data_ptr() < end)
"""
LATER_ROUNDS = PROBE + """
assert keep_freed_memory()
counts = sorted(faults(three_blocks) for _ in range(8))
print(counts[len(counts) // 2])  # the median round
"""
SPARE = PROBE + """
memory, shape = RunMemory(), (2, 4, 1024, 1024)  # 32 MB: 8192 pages
fresh = memory.take(shape)
print(faults(lambda: fresh.fill_(1)))
memory.prepare().result()
print(memory.prepare() is None)  # the spare is there: nothing more to touch
spare = memory.take(shape)
print(faults(lambda: spare.fill_(1)), memory.take(shape).data_ptr() not in (spare.data_ptr(), fresh.data_ptr()))
"""


def _probe(script: str, **values) -> list[str]:
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script.format(root=str(ROOT), **values)],
                            capture_output=True, text=True, check=True, timeout=300)
    return result.stdout.split()


def block_lands_in_heap(setup: str) -> bool:
    """In a fresh interpreter that ran `setup`: does a 16 MB block come from malloc's heap?
    glibc's default maps such a block on its own, and unmaps it when it is freed."""
    return _probe(BLOCK_IN_HEAP, setup=setup)[-1] == "True"


def test_blocks_up_to_32_mb_come_from_the_heap_and_are_reused():
    # with glibc's defaults their pages would fault in again on every round below (~5,800
    # faults), or the heap they came from would be trimmed
    assert not block_lands_in_heap("")
    assert block_lands_in_heap("assert keep_freed_memory()")
    assert int(_probe(LATER_ROUNDS)[0]) < 100


def _faults(fn) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_prepared_spare_is_handed_over_already_touched():
    fresh_faults, nothing_more, spare_faults, handed_over_once = _probe(SPARE)
    assert int(fresh_faults) > 4000  # new memory: every page faults in when first written
    assert nothing_more == "True"
    assert int(spare_faults) < 400
    assert handed_over_once == "True"


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

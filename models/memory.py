"""Memory a server process gets from the kernel once and then reuses.

On the VMs this project is measured on, the first touch of new memory is slow and erratic:
75 MB (one 512-token run of the bundled model) took 25 to 300 ms to fault in, against 6 ms to
copy into memory the process already has. Two sources of new memory are avoidable:
- glibc's malloc hands big freed blocks straight back to the kernel, so each forward pass at
  512 tokens faulted in ~100 MB of temporaries again (`keep_freed_memory`);
- a run that is kept (cached) needs memory of its own: `RunMemory` touches it in the
  background after a page is drawn, instead of while the next page is awaited.
Measured on the Heads page at 512 tokens, two servers side by side (page medians): 252 vs
342 ms without keep_freed_memory, 257 vs 463 ms without RunMemory's spare.
"""
import ctypes
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit systems
_NEVER_TRIM = 2**31 - 1
SPARE_MIN_BYTES = 8 << 20  # smaller runs fault their memory in within a few ms: no thread for them


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to 32 MB for reuse (a layer's attention
    scores at 512 tokens are 12.6 MB) instead of unmapping or trimming them at once. The
    process then stays at its high-water mark. False where malloc isn't glibc's (no change)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))


class RunMemory:
    """Float32 tensors for runs to keep, with one spare touched ahead of need.

    `take(shape)` hands over the spare if it has that shape (a text cut at the model's maximum
    length always has), else new memory. `prepare()`, called once a page is drawn, touches a
    spare of the last large shape taken in a background thread: memset runs on one core
    without the GIL, and the first touch is paid while the user reads the page. Runs of other
    lengths get new memory, as before; one spare at most is held."""

    def __init__(self):
        self._lock = threading.Lock()
        self._spare: torch.Tensor | None = None
        self._wanted: tuple[int, ...] | None = None  # the shape of the last large take
        self._preparing: tuple[int, ...] | None = None
        # one lasting thread: a new thread each time would leave its malloc arena, with none of
        # the model's temporaries in it, to the next page's thread
        self._toucher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-memory")

    def _spare_has(self, shape: tuple[int, ...]) -> bool:
        """Is a spare of this shape there? (called with the lock held)"""
        return self._spare is not None and tuple(self._spare.shape) == shape

    def take(self, shape: tuple[int, ...]) -> torch.Tensor:
        with self._lock:
            if 4 * math.prod(shape) >= SPARE_MIN_BYTES:
                self._wanted = shape
            if self._spare_has(shape):
                spare, self._spare = self._spare, None
                return spare
        return torch.empty(shape)

    def prepare(self) -> Future | None:
        """Start touching a spare of the last large shape taken, unless it is there or on its
        way; returns its future."""
        with self._lock:
            shape = self._wanted
            if shape is None or shape == self._preparing or self._spare_has(shape):
                return None
            self._preparing = shape
        return self._toucher.submit(self._touch, shape)

    def _touch(self, shape: tuple[int, ...]) -> None:
        try:
            spare = torch.empty(shape)
            ctypes.memset(spare.data_ptr(), 0, spare.nbytes)
        except (RuntimeError, MemoryError):  # no memory to spare: runs allocate their own
            spare = None
        with self._lock:
            if self._preparing == shape:
                self._spare, self._preparing = spare, None

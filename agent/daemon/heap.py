"""Keeps a long-running daemon's C heap from fragmenting (glibc's mallopt and malloc_trim)."""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from drivers.ticks import sleep_on_beat

log = logging.getLogger("tally.heap")

# glibc serves a block of at least M_MMAP_THRESHOLD bytes with a mapping of its own, returned to
# the system when the block is freed. The threshold starts at 128 KiB, but glibc raises it to
# the size of each such block freed (up to 32 MiB), so after the first big batch every later
# one comes from the heap instead: freed, it leaves a hole that the small blocks allocated
# meanwhile keep from closing. In a full terminal under the soak that grew the heap's free space
# from 1 to 6 MiB in twenty minutes, all of it in RSS (docs/performance.md, "The C heap stops
# growing"). Fixing the threshold at its starting value keeps big blocks out of the heap.
M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
MMAP_THRESHOLD_B = 128 * 1024

# What stays free inside the heap is then small, and `malloc_trim(0)` hands its whole pages back
# to the system. It walks every arena in well under a millisecond for a heap of some tens of
# MiB, so every five minutes on the watches' beat costs nothing.
TRIM_EVERY_S = 300.0


@functools.cache
def _glibc() -> Any:
    """The C library's symbols when it is glibc on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # here, not at the top: only a daemon on Linux pays for ctypes. Under the unit's
        # MemoryDenyWriteExecute an old libffi cannot make the callback ctypes makes on import
        # (MemoryError); the heap is then left as it is, and the daemon runs all the same.
        import ctypes
    except Exception as exc:  # any failure here only costs the tuning
        log.info("the C heap is left untuned: ctypes cannot be loaded (%s)", exc)
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return None
    return libc


def tune() -> bool:
    """Fix glibc's mmap threshold at 128 KiB for the rest of the process's life; False where
    the C library is not glibc (nothing is changed)."""
    libc = _glibc()
    return libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_B) == 1


def trimmer() -> Callable[[], int] | None:
    """glibc's `malloc_trim(0)` as a function (1 when it gave memory back, 0 when there was
    none), or None where there is none (another C library, another system)."""
    libc = _glibc()
    if libc is None:
        return None

    def trim() -> int:
        return int(libc.malloc_trim(0))

    return trim


MALLINFO2_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                    "uordblks", "fordblks", "keepcost")  # fmt: skip


@functools.cache
def _mallinfo2() -> Any:
    """glibc's `mallinfo2` returning its struct, or None before glibc 2.33 and elsewhere."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    import ctypes  # loaded already: _glibc found glibc through it

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2_FIELDS]

    fn = libc.mallinfo2
    fn.restype = MallInfo2
    return fn


def mallinfo() -> dict[str, int] | None:
    """glibc's `mallinfo2()` as a dict of byte counts (`arena`: the heaps' size, `hblkhd` and
    `hblks`: the blocks mapped on their own, `uordblks`: in use, `fordblks`: free), or None
    before glibc 2.33 and elsewhere."""
    fn = _mallinfo2()
    if fn is None:
        return None
    info = fn()
    return {name: int(getattr(info, name)) for name in MALLINFO2_FIELDS}


class HeapTrim:
    """Every `interval_s` seconds, hands the C heap's free pages back to the system."""

    name = "heap"

    def __init__(
        self, interval_s: float = TRIM_EVERY_S, trim: Callable[[], int] | None = None
    ) -> None:
        self.interval_s = interval_s
        self.trim = trim

    async def run(self) -> None:
        """Trim on every beat; return at once where the C library cannot trim."""
        trim = self.trim or trimmer()
        if trim is None:
            log.debug("this C library has no malloc_trim; the heap is left as it is")
            return
        while True:
            await sleep_on_beat(self.interval_s)
            started = time.perf_counter()
            gave = trim()
            log.debug(
                "heap trimmed in %.2f ms (%s)",
                (time.perf_counter() - started) * 1000,
                "pages returned" if gave else "nothing to return",
            )

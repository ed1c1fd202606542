"""Hands the C allocator's free pages back to the system every few minutes (glibc's malloc_trim)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from drivers.ticks import sleep_on_beat

log = logging.getLogger("tally.heap")

# A daemon's C heap (SQLite's page caches, the big strings of a batch, pymalloc's own blocks
# above 512 bytes) keeps the pages it freed: glibc gives back only the top of a heap, so a hole
# left in its middle by a batch read once stays in the process's RSS for good. Over weeks that
# reads as a slow leak (docs/performance.md, "The C heap's free pages"). `malloc_trim(0)` walks
# every arena and returns each free page to the system; with a heap of some tens of MiB it
# takes well under a millisecond, so every five minutes, on the watches' beat, costs nothing.
TRIM_EVERY_S = 300.0


def trimmer() -> Callable[[], int] | None:
    """glibc's `malloc_trim(0)` as a function (1 when it gave memory back, 0 when there was
    none), or None where there is none (another C library, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here, not at the top: only a daemon that trims pays for ctypes

    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int

    def trim() -> int:
        return int(fn(0))

    return trim


class HeapTrim:
    """Every `interval_s` seconds, hands the C heap's free pages back to the system."""

    name = "heap"

    def __init__(
        self, interval_s: float = TRIM_EVERY_S, trim: Callable[[], int] | None = None
    ) -> None:
        self.interval_s = interval_s
        self.trim = trim
        self.trims = 0

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
            self.trims += 1
            log.debug(
                "heap trimmed in %.2f ms (%s)",
                (time.perf_counter() - started) * 1000,
                "pages returned" if gave else "nothing to return",
            )

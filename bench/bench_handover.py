"""Benchmark: the CPU of one hand-over between two threads (what the daemon pays for every event
it appends: the event loop to the writer thread and back), as it runs and as the soak runs it
under libfaketime, with the soak's settings and with the monotonic fix the soak once left on.

Each figure is a child process bouncing an item between two threads through two `queue.Queue`s;
its own CPU time a round trip is printed. Without libfaketime only the first row is printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import procs
from bench.common import Row

ROUNDS = 2000
_CHILD = """
import queue, threading, time
a, b = queue.Queue(), queue.Queue()
def peer():
    while (x := a.get()) is not None:
        b.put(x)
t = threading.Thread(target=peer)
t.start()
started = time.process_time()
for _ in range({rounds}):
    a.put(1)
    b.get()
print((time.process_time() - started) / {rounds} * 1e6)
a.put(None)
t.join()
"""


def _round_trip_us(env: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(rounds=ROUNDS)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(done.stdout.strip())


def run() -> list[Row]:
    """The round trip without libfaketime, under the soak's settings, and with the fix on."""
    rows = [Row("thread hand-over and back, CPU", _round_trip_us({}), "us")]
    if procs.faketime_library() is None:
        return rows
    with tempfile.TemporaryDirectory(prefix="tally-bench-") as folder:
        env = procs.faketime_env(Path(folder) / "clock", cache_s=1)
        rows.append(Row("  under libfaketime as the soak runs it", _round_trip_us(env), "us"))
        fixed = {**env, "FAKETIME_FORCE_MONOTONIC_FIX": "1"}
        rows.append(
            Row("  under libfaketime with its monotonic fix on", _round_trip_us(fixed), "us")
        )
    return rows

"""Memory and CPU of `tally tui` watching the simulated plant (TALLY_BENCH_TUI_S, default 600 s)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import Row, unoptimised

DEFAULT_S = 600.0  # the ten minutes; TALLY_BENCH_TUI_S=60 for a short run
WARMUP_S = 10.0


def _cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> int:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def run() -> list[Row]:
    """Start the demo plant, run the TUI in tmux on it, drive trucks, measure the TUI process."""
    from agent.cli.commands.demo import SCALE, Plant
    from tests.tui.tmux import Tmux

    if shutil.which("tmux") is None:
        print("  bench_tui skipped: needs tmux", file=sys.stderr)
        return []
    seconds = float(os.environ.get("TALLY_BENCH_TUI_S", DEFAULT_S))
    print(f"  bench_tui: {seconds:g} s of the demo (TALLY_BENCH_TUI_S)", file=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="tally-bench-"))
    plant = Plant(folder, "zh", log=None)
    tui: Tmux | None = None
    try:
        plant.start()
        driver = threading.Thread(target=plant.drive_for, args=(seconds + WARMUP_S,), daemon=True)
        driver.start()
        # the weighbridge terminal: the live weight at the scale's rate, and the whole plant
        argv = [sys.executable, "-m", "agent.cli", "tui", "--config", str(plant.config(SCALE))]
        with unoptimised():  # tally-tui@.service runs it so
            tui = Tmux(argv, size=(120, 40))
        pid = tui.pid()
        time.sleep(WARMUP_S)
        cpu0, rss0, t0 = _cpu_s(pid), _status_kb(pid, "VmRSS"), time.monotonic()
        time.sleep(seconds)
        cpu1, rss1, wall = _cpu_s(pid), _status_kb(pid, "VmRSS"), time.monotonic() - t0
        hwm = _status_kb(pid, "VmHWM")
        driver.join(60)
    finally:
        if tui is not None:
            tui.close()
        plant.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return [
        Row(f"tui CPU over {wall:.0f} s of the demo", 100 * (cpu1 - cpu0) / wall, "% of one core"),
        Row("tui CPU per hour", (cpu1 - cpu0) / wall * 3600, "CPU s/h"),
        Row("tui peak memory (VmHWM)", hwm / 1024, "MiB"),
        Row("tui RSS growth after warm-up", (rss1 - rss0) / 1024, "MiB"),
    ]

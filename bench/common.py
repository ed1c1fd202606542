"""Shared pieces of the benchmarks: the result row and process measurements."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.daemon import bytecode


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the benchmark table."""

    name: str
    value: float
    unit: str


def child_cpu_seconds() -> float:
    """User+system CPU seconds used by waited-for child processes so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compile_as_installed() -> None:
    """Run every process the bench starts as tally.service runs the daemon: optimised, loading
    byte code compiled by `python -m agent.daemon.bytecode` (what `make install` runs) under a
    cache prefix of the bench's own (build/pycache, kept between runs).

    Run from the source tree with `PYTHONDONTWRITEBYTECODE` set (as the unit sets it, and as a
    developer's shell may), every daemon a bench starts, and each of the soak's hundreds of
    restarts, would otherwise compile each module again where an installed daemon loads byte
    code: 0.26 against 0.18 CPU seconds to import the daemon's modules on the development
    machine. Optimised, a bench daemon holds 1.5 MiB less (38.4 against 39.9 MiB a minute after
    start, measured 2026-12-05). The TUI's own bench runs it unoptimised, as its unit does.
    """
    root = Path(__file__).resolve().parent.parent
    cache = root / "build" / "pycache"
    packages = [root / p for p in ("agent", "drivers", "sync", "tui", "bench")]
    counts = bytecode.compile_all([*bytecode.python_roots(), *packages], cache)
    print(
        f"  byte code under build/pycache: {counts['written']} written, {counts['current']} current",
        file=sys.stderr,
    )
    os.environ.update(PYTHONOPTIMIZE=str(bytecode.OPTIMIZE), PYTHONPYCACHEPREFIX=str(cache))


@contextlib.contextmanager
def unoptimised() -> Iterator[None]:
    """Children started inside run as the TUI's unit runs it: without `compile_as_installed`'s
    optimisation."""
    saved = {
        k: os.environ.pop(k) for k in ("PYTHONOPTIMIZE", "PYTHONPYCACHEPREFIX") if k in os.environ
    }
    try:
        yield
    finally:
        os.environ.update(saved)


def machine_line() -> str:
    """Where and when the figures were taken, to record beside them: the UTC time, the commit,
    the CPU model and cores, Python, and the load average before the run."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC"
        f"{f' on {commit}' if commit else ''}: {os.cpu_count()} x {model or platform.machine()},"
        f" Python {platform.python_version()}, load average {load} before the run"
    )

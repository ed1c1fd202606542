"""Shared pieces of the benchmarks: the result row and process measurements."""

from __future__ import annotations

import compileall
import resource
from dataclasses import dataclass
from pathlib import Path


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
    """Write the byte code of Tally's packages, as `pip install` (and so `make install`) does.

    Run from the source tree with `PYTHONDONTWRITEBYTECODE` set (as the systemd unit sets it, and
    as a developer's shell may), every daemon a bench starts, and each of the soak's hundreds of
    restarts, would compile each of Tally's modules again where an installed daemon loads byte
    code: 0.26 against 0.18 CPU seconds to import the daemon's modules on the development
    machine. Nothing is written where the tree is read-only. (The RSS of a bench daemon a minute
    after start is the same either way: 39.0 and 39.1 MiB.)
    """
    root = Path(__file__).resolve().parent.parent
    for package in ("agent", "drivers", "sync", "tui"):
        compileall.compile_dir(root / package, quiet=2)

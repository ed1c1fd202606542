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
    as this machine's shell does), every daemon a bench starts would compile each of Tally's
    modules at start and keep the compiler's leftovers in its heap: about 0.8 MiB of RSS that an
    installed daemon does not have. Nothing is written where the tree is read-only.
    """
    root = Path(__file__).resolve().parent.parent
    for package in ("agent", "drivers", "sync", "tui"):
        compileall.compile_dir(root / package, quiet=2)

"""Where and when an event happened (a Mark) and the duration between two marks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.domain.events import Event, parse_at


@dataclass(frozen=True, slots=True)
class Mark:
    """Where and when an event happened, enough to measure a duration to another one."""

    at: str
    terminal: str
    epoch: str
    boot: str
    mono_ns: int

    def __deepcopy__(self, memo: dict[int, Any]) -> Mark:
        """A mark is never edited, so copies of a projection share it (a timeline replay
        copies the projection: copying its thousands of marks field by field was most of it)."""
        return self

    @staticmethod
    def of(ev: Event) -> Mark:
        """The mark of an event."""
        return Mark(ev.at, ev.terminal, ev.epoch, ev.boot, ev.mono_ns)


def duration_ms(start: Mark, end: Mark) -> int:
    """Milliseconds from `start` to `end`: monotonic within one terminal, epoch and boot.

    Otherwise (another terminal, a reboot, a new database) the wall clocks are all there is.
    """
    if (start.terminal, start.epoch, start.boot) == (end.terminal, end.epoch, end.boot):
        return (end.mono_ns - start.mono_ns) // 1_000_000
    delta = parse_at(end.at) - parse_at(start.at)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def minutes(ms: int | None) -> float | None:
    """Milliseconds as minutes rounded to 0.1 for display."""
    return None if ms is None else round(ms / 60_000, 1)

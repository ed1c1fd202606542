"""Shift handovers and unattended weighbridges (pure): 劳务队交接班不停机, 司磅员不得暂停地磅.

A packer stop that begins within a window around a shift change is a handover stop. A truck scale
that is online, has trucks queued and has captured no weighing for `limit` is unattended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def shift_changes(around: datetime, shift_starts: Sequence[str], tz: ZoneInfo) -> list[datetime]:
    """The shift changes (UTC-aware, in `around`'s zone) on the plant-local days around `around`."""
    local = around.astimezone(tz)
    out: list[datetime] = []
    for offset in (-1, 0, 1):
        day = local.date() + timedelta(days=offset)
        for s in shift_starts:
            hh, mm = (int(x) for x in s.split(":"))
            out.append(datetime.combine(day, time(hh, mm), tz).astimezone(around.tzinfo))
    return sorted(out)


def is_handover(at: datetime, shift_starts: Sequence[str], tz: ZoneInfo, window_min: float) -> bool:
    """Whether a stop beginning at `at` is within `window_min` minutes of a shift change."""
    window = timedelta(minutes=window_min)
    return window_min > 0 and any(
        abs(at - change) <= window for change in shift_changes(at, shift_starts, tz)
    )


@dataclass(frozen=True, slots=True)
class ScaleWatch:
    """What the rule needs to know of one truck scale."""

    online_since: datetime | None  # None while offline
    queued_since: tuple[datetime, ...]  # when each truck now queued at it joined the queue
    last_capture: datetime | None


@dataclass(frozen=True, slots=True)
class Unattended:
    """The scales unattended at `now`, with the time each went idle, and the next time to look."""

    idle_since: dict[str, datetime]
    next_due: datetime | None


def unattended(scales: Mapping[str, ScaleWatch], now: datetime, limit: timedelta) -> Unattended:
    """Scales that are online with trucks queued and no capture for `limit`.

    A scale's idle time counts from the latest of: its last capture, the earliest queued truck's
    joining, the scale coming online. `next_due` is when the next not-yet-idle scale would be.
    """
    idle: dict[str, datetime] = {}
    due: list[datetime] = []
    for name, s in scales.items():
        if s.online_since is None or not s.queued_since:
            continue
        joined = min(s.queued_since)
        since = max(t for t in (s.online_since, joined, s.last_capture) if t is not None)
        if now - since >= limit:
            idle[name] = since
        else:
            due.append(since + limit)
    return Unattended(idle, min(due, default=None))

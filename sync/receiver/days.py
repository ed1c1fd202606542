"""Which UTC days an event can change the reports of, and which a local day's report reads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from agent.domain.events import parse_at
from sync.protocol import Row

# A stored event can change the report of its own UTC day and of the next two (a window ticket
# is read by the next day's report), and of every day holding an event of its visit, however
# far apart (`visits_of`: the store adds those days in the same transaction).
REACH_DAYS = 2
# A plant-local day's report reads events from one day before its start (window tickets).
LOOKBACK = timedelta(days=1)


def touched_days(ats: Sequence[str]) -> list[str]:
    """The UTC days (ISO, sorted) whose reports events stamped `ats` may change."""
    days: set[date] = set()
    for at in ats:
        d = parse_at(at).astimezone(UTC).date()
        days.update(d + timedelta(days=i) for i in range(REACH_DAYS + 1))
    return sorted(d.isoformat() for d in days)


def plan_day(kind: str, data: str) -> str | None:
    """The plant-local day (ISO) a `plan.set` event plans, or None for any other event."""
    if kind != "plan.set":
        return None
    try:
        day = json.loads(data).get("day")
        return date.fromisoformat(day).isoformat() if isinstance(day, str) else None
    except (ValueError, AttributeError):
        return None


def touched_by(rows: Sequence[Row]) -> list[str]:
    """The UTC days (ISO, sorted) whose reports stored `rows` may change: those of their times
    and, for a plan, the day it plans, whenever it was entered. A plant-local day D's report
    reads the revision of the UTC day D in any zone (`revision_span` covers it), so the plan's
    own date is the day to touch."""
    days = set(touched_days([r[2] for r in rows]))
    days.update(d for r in rows if (d := plan_day(r[1], r[5])) is not None)
    return sorted(days)


def revision_span(start: datetime, end: datetime) -> tuple[date, date]:
    """The UTC days whose revisions a report of the local day [start, end) depends on."""
    first = (start - LOOKBACK).astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return first, last


def visits_of(datas: Iterable[str]) -> list[str]:
    """The visit ids (sorted) named by events' data JSON (`"visit": "..."`)."""
    found: set[str] = set()
    for text in datas:
        if '"visit"' not in text:
            continue
        visit = json.loads(text).get("visit")
        if isinstance(visit, str):
            found.add(visit)
    return sorted(found)

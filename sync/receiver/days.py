"""Which UTC days an event can change the reports of, and which a local day's report reads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from agent.domain.events import parse_at

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

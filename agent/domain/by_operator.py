"""What each operator recorded at each post over days or a month (第二十二条's monthly scoring), pure.

One row per (operator, post): the operators ledger's counts (agent/domain/ledgers.py
`attributed` and `area`, the same attribution of an event to a person and a post) summed over
the span, the shifts they signed in to, the window tickets they served and how many of those
within the service's target (the KPIs' window fold, `window_services.served`), and the visit
stages they recorded, by stage.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import KpiConfig
from agent.domain import window_services as windows
from agent.domain.events import Event
from agent.domain.kinds import Kind
from agent.domain.ledgers import area, attributed
from agent.domain.timeline import order_key

Row = dict[str, Any]
COUNTS = ("visits", "windows", "checks", "reasons", "corrections", "notes", "other")


def month_days(year: int, month: int) -> tuple[date, date]:
    """The first and the last day of a month."""
    after = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, 1), after - timedelta(days=1)


def rows(
    events: Iterable[Event], first: date, last: date, tz: ZoneInfo, cfg: KpiConfig
) -> list[Row]:
    """Per (operator, post), sorted, what they recorded from `first` to `last` (plant-local days
    in `tz`, both included); a window ticket counts on the day it was served, for the operator
    who recorded it served, within target as the KPI report judges it."""
    ordered = sorted({e.id: e for e in events}.values(), key=order_key)
    out: dict[tuple[str, str], Row] = {}
    days: dict[tuple[str, str], set[date]] = {}
    served_by: dict[str, tuple[str, str]] = {}  # window.served event id -> (operator, post)

    def row(key: tuple[str, str]) -> Row:
        if key not in out:
            out[key] = {
                "operator": key[0],
                "post": key[1],
                "shifts": 0,
                "days": 0,
                **dict.fromkeys(COUNTS, 0),
                "served": 0,
                "served_in_time": 0,
                "window": {},
                "stages": {},
            }
            days[key] = set()
        return out[key]

    for ev, who, post in attributed(ordered):
        day = ev.when.astimezone(tz).date()
        if not first <= day <= last:
            continue
        key = (who, post)
        r = row(key)
        days[key].add(day)
        if ev.kind == Kind.OPERATOR_SIGNED_IN:
            r["shifts"] += 1
        elif ev.kind != Kind.OPERATOR_SIGNED_OUT:
            r[area(ev.kind)] += 1
            if ev.kind.startswith("visit."):
                stage = ev.kind.split(".", 1)[1]
                r["stages"][stage] = r["stages"].get(stage, 0) + 1
            elif ev.kind == Kind.WINDOW_SERVED:
                served_by[ev.id] = key
    for start, end in windows.served(ordered):
        service = start.data.get("service")
        key_of = served_by.get(end.id)
        if key_of is None or service not in windows.SERVICES:
            continue
        r = out[key_of]
        within = windows.within_target(cfg, str(service), windows.wait_ms(start, end))
        w = r["window"].setdefault(service, {"served": 0, "within_target": 0})
        w["served"] += 1
        w["within_target"] += int(within)
        r["served"] += 1
        r["served_in_time"] += int(within)
    for key, r in out.items():
        r["days"] = len(days[key])
        r["stages"] = dict(sorted(r["stages"].items()))
        r["window"] = dict(sorted(r["window"].items()))
    return [out[k] for k in sorted(out)]


def month(
    events: Iterable[Event], year: int, month: int, tz: ZoneInfo, cfg: KpiConfig
) -> dict[str, Any]:
    """The `tally kpi --month --by operator --json` object: {month, by, rows} (see `rows`)."""
    first, last = month_days(year, month)
    return {
        "month": f"{year:04d}-{month:02d}",
        "by": "operator",
        "rows": rows(events, first, last, tz, cfg),
    }

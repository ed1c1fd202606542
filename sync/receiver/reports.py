"""Day and month KPI reports per plant and for the group, kept per day so none re-reads history.

A day's report is the pure KPI engine (`agent.domain.kpis.compute`) over the events the day
reads, restricted to a plant's terminals; it is kept in the database with the revision of the
UTC days it reads and recomputed only after an event touching those days arrives. A month is
the sum of its days' kept reports.
"""

from __future__ import annotations

import calendar
import hashlib
import json
from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import KpiConfig
from agent.domain import kpis
from agent.domain.events import format_at
from sync.receiver import plant_view
from sync.receiver.days import LOOKBACK, revision_span
from sync.receiver.engine import ReceiverDb

GROUP = "*"  # the scope of every terminal of every plant
# Headline KPIs of a day, in page order: (key, the field holding the value, the unit).
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("weigh_wait", "share", "share"),
    ("bag_load_wait", "share", "share"),
    ("bulk_turnaround", "mean_min", "min"),
    ("seal_lag", "share", "share"),
    ("return_rate", "value", "ratio"),
    ("broken_rate", "value", "ratio"),
    ("packer_rate", "t_per_h", "t/h"),
    ("daily_completion", "value", "ratio"),
)


def _scope_key(scope: str, terminals: tuple[str, ...] | None, cfg: KpiConfig) -> str:
    """The kept report's key: the plant, its terminals and the thresholds it was computed with."""
    h = hashlib.sha256(json.dumps([terminals, asdict(cfg)], sort_keys=True).encode())
    return f"{scope}|{h.hexdigest()[:16]}"


def day_report(
    db: ReceiverDb,
    day: date,
    zone: str,
    cfg: KpiConfig,
    scope: str = GROUP,
    terminals: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The KPI report of a plant-local day for `terminals` (None: all), kept until it changes."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tz)
    end = datetime.combine(day + timedelta(days=1), time(), tz)
    key = _scope_key(scope, terminals, cfg)
    rev = db.revision(*revision_span(start, end))  # read before the events: never stale
    kept = db.cached_report(day.isoformat(), zone, key)
    if kept is not None and kept[0] == rev:
        report: dict[str, Any] = json.loads(kept[1])
        return report
    events = db.day_events(
        format_at(start),
        format_at(end),
        format_at(start - LOOKBACK),
        plan_days=(day.isoformat(), day.isoformat()),
    )
    if terminals is not None:
        wanted = set(terminals)
        events = [e for e in events if e.terminal in wanted]
    report = kpis.compute(events, day, tz, cfg)
    db.save_report(day.isoformat(), zone, key, rev, json.dumps(report))
    return report


def day_exceptions(
    db: ReceiverDb, day: date, zone: str, cfg: KpiConfig, terminals: tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """The day's exceptions (`plant_view.exceptions`) for `terminals` (None: all), kept beside
    the day's reports and recomputed under the same revision rule."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tz)
    end = datetime.combine(day + timedelta(days=1), time(), tz)
    key = "exceptions|" + _scope_key("", terminals, cfg)
    rev = db.revision(*revision_span(start, end))
    kept = db.cached_report(day.isoformat(), zone, key)
    if kept is not None and kept[0] == rev:
        found: list[dict[str, Any]] = json.loads(kept[1])
        return found
    events = db.day_events(format_at(start), format_at(end), format_at(start - LOOKBACK))
    if terminals is not None:
        wanted = set(terminals)
        events = [e for e in events if e.terminal in wanted]
    found = plant_view.exceptions(events, day, tz, cfg)
    db.save_report(day.isoformat(), zone, key, rev, json.dumps(found))
    return found


def met(report: dict[str, Any], kpi: str) -> bool | None:
    """Whether a KPI met its target (None: nothing to judge). KPIs the engine gives as a share
    of samples within a time target are met when every sample was within it."""
    part = report.get(kpi, {})
    if "met" in part:
        return None if part["met"] is None else bool(part["met"])
    if not part.get("count"):
        return None
    return bool(part["within_target"] == part["count"])


def value(report: dict[str, Any], kpi: str) -> float | None:
    """A KPI's headline figure."""
    field = next(f for k, f, _ in HEADLINE if k == kpi)
    v = report.get(kpi, {}).get(field)
    return None if v is None else float(v)


def month_days(month: str) -> list[date]:
    """The days of `YYYY-MM`; raises ValueError for anything else."""
    year, _, mon = month.partition("-")
    if len(year) != 4 or len(mon) != 2 or not (year + mon).isdigit():
        raise ValueError(month)
    y, m = int(year), int(mon)
    if not 1 <= m <= 12:
        raise ValueError(month)
    return [date(y, m, d) for d in range(1, calendar.monthrange(y, m)[1] + 1)]


def month_report(
    db: ReceiverDb,
    month: str,
    zone: str,
    cfg: KpiConfig,
    scope: str = GROUP,
    terminals: tuple[str, ...] | None = None,
    until: date | None = None,
) -> dict[str, Any]:
    """Every day's report of a month (up to `until`) and the month's totals."""
    days = [d for d in month_days(month) if until is None or d <= until]
    reports = [day_report(db, d, zone, cfg, scope, terminals) for d in days]
    return {"month": month, "days": reports, "total": month_total(reports, cfg)}


def _sum(reports: list[dict[str, Any]], kpi: str, field: str) -> float:
    return sum(float(r[kpi][field] or 0) for r in reports)


def _within_total(reports: list[dict[str, Any]], kpi: str) -> dict[str, Any]:
    count = int(_sum(reports, kpi, "count"))
    within = int(_sum(reports, kpi, "within_target"))
    maxes = [r[kpi]["max_min"] for r in reports if r[kpi].get("max_min") is not None]
    return {
        "count": count,
        "within_target": within,
        "share": round(within / count, 4) if count else None,
        "max_min": max(maxes) if maxes else None,
        "target_min": reports[0][kpi]["target_min"] if reports else None,
    }


def month_total(reports: list[dict[str, Any]], cfg: KpiConfig) -> dict[str, Any]:
    """A month's totals from its days' reports: counts and sums added, ratios taken again."""
    if not reports:
        return {}
    bag = _within_total(reports, "bag_load_wait")
    del bag["max_min"]
    share = bag["share"]
    n_turn = _sum(reports, "bulk_turnaround", "count")
    turn_sum = sum(
        float(r["bulk_turnaround"]["mean_min"] or 0) * r["bulk_turnaround"]["count"]
        for r in reports
    )
    mean = round(turn_sum / n_turn, 2) if n_turn else None
    bags = int(_sum(reports, "return_rate", "bags"))
    returned = int(_sum(reports, "return_rate", "returned"))
    broken = int(_sum(reports, "broken_rate", "broken"))
    tonnes = _sum(reports, "packer_rate", "tonnes")
    hours = _sum(reports, "packer_rate", "running_h")
    planned = _sum(reports, "daily_completion", "planned_t")
    completed = _sum(reports, "daily_completion", "completed_t")
    rr = round(returned / bags, 4) if bags else None
    br = round(broken / bags, 4) if bags else None
    tph = round(tonnes / hours, 2) if hours else None
    comp = round(completed / planned, 4) if planned else None
    return {
        "weigh_wait": _within_total(reports, "weigh_wait"),
        "bag_load_wait": {
            **bag,
            "target_share": cfg.bag_load_share,
            "met": None if share is None else share >= cfg.bag_load_share,
        },
        "bulk_turnaround": {
            "count": int(n_turn),
            "mean_min": mean,
            "target_min": cfg.bulk_turnaround_min,
            "met": None if mean is None else mean <= cfg.bulk_turnaround_min,
        },
        "seal_lag": _within_total(reports, "seal_lag"),
        "return_rate": {
            "bags": bags,
            "returned": returned,
            "value": rr,
            "target": cfg.return_rate_max,
            "met": None if rr is None else rr <= cfg.return_rate_max,
        },
        "broken_rate": {
            "bags": bags,
            "broken": broken,
            "value": br,
            "target": cfg.broken_rate_max,
            "met": None if br is None else br <= cfg.broken_rate_max,
        },
        "packer_rate": {
            "tonnes": round(tonnes, 3),
            "running_h": round(hours, 3),
            "t_per_h": tph,
            "target": cfg.packer_rate_tph,
            "met": None if tph is None else tph >= cfg.packer_rate_tph,
        },
        "daily_completion": {
            "planned_t": round(planned, 3),
            "completed_t": round(completed, 3),
            "value": comp,
            "met": None if comp is None else comp >= cfg.daily_completion,
        },
        "flags": {k: sum(int(r["flags"].get(k, 0)) for r in reports) for k in reports[0]["flags"]},
    }

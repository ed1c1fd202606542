"""The "plant now" page and a day's exceptions, pure: folded from the receiver's events with the
same projection and attention folds the terminals use (no second fold of a visit)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import KpiConfig
from agent.domain import kpis
from agent.domain.events import Event
from agent.domain.kinds import Kind
from agent.domain.plant import Attention
from agent.domain.visit_projection import rebuild

# Each miss a day's exceptions list names: (the visit's wait, the KPI whose target it misses).
MISSES: tuple[tuple[str, str], ...] = (
    ("tare_wait_min", "weigh_wait"),
    ("gross_wait_min", "weigh_wait"),
    ("bag_load_wait_min", "bag_load_wait"),
    ("seal_lag_min", "seal_lag"),
    ("turnaround_min", "bulk_turnaround"),
)


def wait_target_min(kpi: str, cfg: KpiConfig) -> float:
    """A wait KPI's target in minutes (the exceptions list and the day's chart)."""
    return {
        "weigh_wait": cfg.weigh_wait_min,
        "bag_load_wait": cfg.bag_load_wait_min,
        "seal_lag": cfg.seal_lag_min,
        "bulk_turnaround": cfg.bulk_turnaround_min,
    }[kpi]


def plant_now(
    events: Iterable[Event], cfg: KpiConfig, tz: ZoneInfo | None = None
) -> dict[str, Any]:
    """Trucks inside by stage, the gate and scale queues, each packer running or stopped (with
    its reason and expected repair minutes), the active alerts and offline devices by terminal.

    `events` are the recent events of the plant's terminals, in any order; `tz` is where the
    plant's days begin (a provisional visit's bound), as on the terminals.
    """
    ordered = kpis.order(events)
    projection = rebuild(ordered, cfg, tz)
    attention = Attention()
    attention.add(ordered)
    snap = projection.snapshot(live=False)
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for v in snap["open"]:
        by_stage.setdefault(str(v["stage"]), []).append(v)
    packers: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in ordered:
        if ev.kind in (Kind.PACKER_TALLY, Kind.PACKER_STARTED, Kind.PACKER_STOPPED):
            key = (ev.terminal, str(ev.data.get("packer")))
            packers[key] = {"terminal": key[0], "packer": key[1], "running": True, "since": None}
    for s in attention.snapshot()["stopped"]:
        packers[(s["terminal"], s["packer"])] = {**s, "running": False}
    return {
        "inside": {stage: vs for stage, vs in sorted(by_stage.items())},
        "inside_count": len(snap["open"]),
        "queue": snap["queue"],
        "scale_queue": snap["scale_queue"],
        "packers": [v for _, v in sorted(packers.items())],
        **{k: v for k, v in attention.snapshot().items() if k != "stopped"},
    }


def exceptions(
    events: Iterable[Event], day: date, tz: ZoneInfo, cfg: KpiConfig
) -> list[dict[str, Any]]:
    """The day's exceptions: every flag raised on a visit and every wait over its target, with
    the visit, plate and order, for visits that arrived or ended on the plant-local `day`."""
    ordered = kpis.order(events)
    projection = rebuild(ordered, cfg, tz)
    out: list[dict[str, Any]] = []
    for v in sorted(projection.held(), key=lambda v: v.index):
        marks = [m for m in (v.arrived, v.exited, v.cancelled) if m is not None]
        if not any(kpis.local_day(m.at, tz) == day for m in marks):
            continue
        base = {"visit": v.visit, "plate": v.plate, "order": v.order, "load": v.load}
        for f in v.flags:
            out.append({**base, "what": "flag", "check": f.check, "detail": f.detail})
        waits = v.waits()
        for wait, kpi in MISSES:
            got = waits.get(wait)
            if kpi == "bag_load_wait" and v.load != "bagged":
                continue
            if kpi in ("seal_lag", "bulk_turnaround") and v.load != "bulk":
                continue
            target = wait_target_min(kpi, cfg)
            if got is not None and got > target:
                out.append(
                    {**base, "what": "miss", "check": kpi, "detail": f"{got:.1f} > {target:g} min"}
                )
    return out

"""Benchmark: rebuilding the visit projection and computing a day's KPIs from many events."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from agent.config import KpiConfig
from agent.domain.events import Event, format_at
from agent.domain.kpis import compute
from agent.domain.visit_projection import rebuild
from bench.common import Row

DAYS = 30
TRUCKS_PER_DAY = 200


def _events() -> list[Event]:
    """A month of a busy weighbridge: every truck through every stage, plus packer tallies."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    events: list[Event] = []
    seq = 0

    def add(kind: str, at: datetime, **data: object) -> None:
        nonlocal seq
        seq += 1
        mono = int((at - start).total_seconds() * 1e9)
        events.append(Event("wb1", "e1", seq, kind, format_at(at), mono, "b1", dict(data)))

    for day in range(DAYS):
        base = start + timedelta(days=day)
        for n in range(TRUCKS_PER_DAY):
            v, t = f"v{day}-{n}", base + timedelta(minutes=n * 7)
            plate = f"苏A{n % 97:05d}"
            add(
                "visit.arrived",
                t,
                visit=v,
                plate=plate,
                order="SO",
                product="P",
                load="bagged" if n % 3 else "bulk",
                planned_kg=30000,
            )
            add("visit.gate_in", t + timedelta(minutes=5), visit=v)
            add("visit.queued_at_scale", t + timedelta(minutes=6), visit=v, scale="scale1")
            add(
                "weighing.captured",
                t + timedelta(minutes=9),
                weighing=f"{v}t",
                scale="scale1",
                weight_kg=15000 + n % 50,
            )
            add(
                "visit.weighed",
                t + timedelta(minutes=9),
                visit=v,
                weighing=f"{v}t",
                role="tare",
                weight_kg=15000 + n % 50,
            )
            add("visit.loading_started", t + timedelta(minutes=30), visit=v, point="line1")
            add(
                "visit.loading_finished",
                t + timedelta(minutes=60),
                visit=v,
                point="line1",
                bags=600,
                bag_kg=50,
            )
            add("visit.queued_at_scale", t + timedelta(minutes=62), visit=v, scale="scale1")
            add(
                "weighing.captured",
                t + timedelta(minutes=65),
                weighing=f"{v}g",
                scale="scale1",
                weight_kg=45000,
            )
            add(
                "visit.weighed",
                t + timedelta(minutes=65),
                visit=v,
                weighing=f"{v}g",
                role="gross",
                weight_kg=45000,
            )
            add("visit.exited", t + timedelta(minutes=70), visit=v)
        for m in range(0, 1440, 1):
            add(
                "packer.tally",
                base + timedelta(minutes=m),
                packer="line1",
                bags=40,
                returned=1,
                broken=0,
                running_s=60,
                bag_kg=50,
            )
    return events


def run() -> list[Row]:
    """Rebuild and KPI timings over a month of events."""
    events = _events()
    t0 = time.perf_counter()
    rebuild(events, KpiConfig())
    t1 = time.perf_counter()
    compute(events, date(2026, 11, 15), ZoneInfo("Asia/Shanghai"), KpiConfig())
    t2 = time.perf_counter()
    return [
        Row("visits: events in a month (200 trucks/day, 1 packer)", len(events), "events"),
        Row("visits: rebuild the projection from a month", t1 - t0, "s"),
        Row("kpis: one day's report over a month of events", t2 - t1, "s"),
    ]

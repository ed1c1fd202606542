"""Benchmark: the live visit projection's size over a simulated month of a busy plant (three
terminals, stages by plate and order, merged arrivals, stages whose arrival never comes).

Prints, for days 1, 7, 14 and 30, how many entries each of the projection's maps holds and its
pickled size: flat after the first days means nothing grows with the months a terminal runs.
"""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from agent.domain.events import Event, format_at
from agent.domain.visit_projection import Projection
from bench.common import Row

DAYS = 30
TRUCKS_PER_DAY = 200
FLEET = 3000  # distinct plates that come to the plant
TZ = ZoneInfo("Asia/Shanghai")
FIRST = datetime(2026, 11, 1, 6, tzinfo=TZ)
SHOWN = (1, 7, 14, 30)
_TARE = {"role": "tare", "weight_kg": 15000}
_GROSS = {"role": "gross", "weight_kg": 45000}


class _Plant:
    def __init__(self) -> None:
        self.seq = {"gate1": 0, "wb1": 0, "pk1": 0}

    def ev(self, terminal: str, at: datetime, kind: str, **data: object) -> Event:
        self.seq[terminal] += 1
        s = self.seq[terminal]
        return Event(terminal, f"{terminal}-e", s, kind, format_at(at), s, "b", dict(data))


def _day(plant: _Plant, day: int, first: datetime = FIRST) -> list[Event]:
    """One plant day (`day` days after `first`): every 10th truck loaded by plate and order
    before its arrival is known at the packing line, every 50th registered twice, every 40th
    leaving an orphaned stage."""
    start = first + timedelta(days=day)
    out: list[Event] = []
    for n in range(TRUCKS_PER_DAY):
        k = day * TRUCKS_PER_DAY + n
        v, t = f"v{k}", start + timedelta(minutes=n * 4)
        truck = {"plate": f"苏A{k % FLEET:05d}", "order": f"SO{k}"}

        def at(minutes: float, t: datetime = t) -> datetime:
            return t + timedelta(minutes=minutes)

        if n % 10 == 0:
            out.append(plant.ev("pk1", at(-1), "visit.loading_started", point="l1", **truck))
        out.append(plant.ev("gate1", at(0), "visit.arrived", visit=v, load="bagged", **truck))
        if n % 50 == 0:
            out.append(plant.ev("wb1", at(0.5), "visit.arrived", visit=f"{v}b", **truck))
        out.append(plant.ev("gate1", at(1), "visit.gate_in", visit=v))
        out.append(plant.ev("wb1", at(3), "visit.weighed", visit=v, weighing=f"t{k}", **_TARE))
        if n % 10:
            out.append(plant.ev("pk1", at(5), "visit.loading_started", visit=v, point="l1"))
        out.append(plant.ev("pk1", at(30), "visit.loading_finished", visit=v, bags=600))
        out.append(plant.ev("wb1", at(33), "visit.weighed", visit=v, weighing=f"g{k}", **_GROSS))
        out.append(plant.ev("gate1", at(36), "visit.exited", visit=v))
        if n % 40 == 0:
            orphan = {**truck, "order": f"SO{k}x"}
            out.append(plant.ev("pk1", at(10), "visit.loading_started", point="l2", **orphan))
    return sorted(out, key=lambda e: (e.at, e.terminal, e.seq))


def _sizes(p: Projection) -> dict[str, int]:
    return {
        "visits": len(p.visits) + len(p.settled),
        "settled": len(p.settled),
        "provisional": sum(1 for v in p.held() if v.provisional),
        "event_visit": len(p.event_visit),
        "plate_order": len(p.ids.latest),
        "aliases": len(p.ids.alias),
        "assigned": len(p.assigned),
        "tare_plates": len(p.archived_tares),
        "pickled_kib": len(pickle.dumps(p)) // 1024,
    }


def run() -> list[Row]:
    """Fold the month day by day and report the maps' sizes on the days shown."""
    plant = _Plant()
    p = Projection(own="gate1", tz=TZ)
    rows: list[Row] = []
    events = 0
    for day in range(1, DAYS + 1):
        for ev in _day(plant, day - 1):
            p.apply(ev)
            events += 1
        p.reactions()
        if day in SHOWN:
            for name, value in _sizes(p).items():
                unit = "KiB" if name == "pickled_kib" else "entries"
                rows.append(Row(f"projection day {day:2d} ({events} events): {name}", value, unit))
    return rows

"""The live visit projection over months: every map it keeps stays bounded (closed visits are
dropped with everything that names them, provisional visits whose arrival never comes expire at
the end of the next plant day), and a late arrival within that bound still joins its stages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.domain import visit_projection
from agent.domain.events import Event
from agent.domain.timeline import Timeline, fold
from agent.domain.visit_projection import SETTLE_AFTER, Projection, pending_bound
from tests.agent.timeline import Timeline as Clock

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 1, 0, 0, tzinfo=TZ)  # a plant day's first minute
PER_DAY = 24  # visits a day, one every 30 minutes from 06:00
KEEP = 60  # closed visits kept (the real bound is 1000: the same rule, reached sooner)
PLATES = 40  # plates whose archived tares are kept


class Month:
    """gate1, wb1 and pk1 recording a plant's days, each event at the time given."""

    def __init__(self) -> None:
        self.clocks = {t: Clock(t, f"{t}-e", f"{t}-b") for t in ("gate1", "wb1", "pk1")}

    def at(self, terminal: str, when: datetime, kind: str, **data: Any) -> Event:
        clock = self.clocks[terminal]
        clock.wall = when.astimezone(UTC)
        return clock.event(kind, **data)

    def day(self, n: int) -> list[Event]:
        """Day `n`: PER_DAY trucks through gate, scale and packing line, in timeline order.

        Every 5th truck is loaded by plate and order before its arrival reaches pk1 (its clock
        runs behind), every 7th is registered again at wb1 (two arrivals merged), and every 6th
        leaves a stage by plate and order whose arrival never comes (a typo in the order)."""
        out: list[Event] = []
        for i in range(PER_DAY):
            k = n * PER_DAY + i
            vid, plate, order = f"v{k}", f"苏A{k % 300:05d}", f"SO{k}"
            truck = {"plate": plate, "order": order}
            t = START + timedelta(days=n, hours=6, minutes=30 * i)

            def m(minutes: float, t: datetime = t) -> datetime:
                return t + timedelta(minutes=minutes)

            if i % 5 == 0:
                out.append(self.at("pk1", m(-1), "visit.loading_started", point="l1", **truck))
            out.append(self.at("gate1", m(0), "visit.arrived", visit=vid, load="bagged", **truck))
            if i % 7 == 0:
                out.append(
                    self.at("wb1", m(0.5), "visit.arrived", visit=f"{vid}b", load="bagged", **truck)
                )
            out.append(self.at("gate1", m(1), "visit.gate_in", visit=vid))
            out.append(
                self.at(
                    "wb1",
                    m(2),
                    "visit.weighed",
                    visit=vid,
                    weighing=f"t{k}",
                    role="tare",
                    weight_kg=15000,
                )
            )
            if i % 5:
                out.append(self.at("pk1", m(4), "visit.loading_started", visit=vid, point="l1"))
            out.append(self.at("pk1", m(20), "visit.loading_finished", visit=vid, bags=600))
            out.append(
                self.at(
                    "wb1",
                    m(22),
                    "visit.weighed",
                    visit=vid,
                    weighing=f"g{k}",
                    role="gross",
                    weight_kg=45000,
                )
            )
            out.append(self.at("gate1", m(25), "visit.exited", visit=vid))
            if i % 6 == 0:
                out.append(
                    self.at(
                        "pk1",
                        m(10),
                        "visit.loading_started",
                        point="l2",
                        plate=plate,
                        order=f"{order}x",
                    )
                )
        return sorted(out, key=lambda e: (e.at, e.terminal, e.seq))


def sizes(p: Projection) -> dict[str, int]:
    return {
        "visits": len(p.visits) + len(p.settled),
        "settled": len(p.settled),
        "settled_tares": sum(len(by_plate) for by_plate in p.settled_tares.values()),
        "event_visit": len(p.event_visit),
        "open_by_plate": len(p.open_by_plate),
        "assigned": len(p.assigned),
        "latest": len(p.ids.latest),
        "alias": len(p.ids.alias),
        "expiry": len(p.expiry),
        "archived_tares": len(p.archived_tares),
        "closed": len(p.closed),
    }


def assert_only_kept_visits_named(p: Projection) -> None:
    """Every map names only visits still in memory: nothing dropped leaves an entry behind."""
    kept = set(p.visits) | set(p.settled)
    assert not set(p.visits) & set(p.settled)
    assert set(p.event_visit.values()) <= kept
    assert len(p.event_visit) == sum(len(v.events) for v in p.held())
    settled_tares = {vid for by_plate in p.settled_tares.values() for vid in by_plate}
    assert settled_tares <= set(p.settled)
    assert set(p.open_by_plate.values()) <= kept
    assert set(p.assigned.values()) <= kept
    assert set(p.ids.latest.values()) <= kept
    assert set(p.ids.alias.values()) <= kept
    assert set(p.expiry) == {v.visit for v in p.visits.values() if v.provisional and v.open}


@pytest.fixture
def small_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(visit_projection, "KEEP_CLOSED", KEEP)
    monkeypatch.setattr(visit_projection, "KEEP_TARE_PLATES", PLATES)


@pytest.mark.usefixtures("small_bounds")
def test_a_month_of_visits_keeps_every_map_bounded() -> None:
    month = Month()
    p = Projection(own="gate1", tz=TZ)
    every: list[Event] = []
    by_day = []
    for n in range(30):
        events = month.day(n)
        every += events
        for ev in events:
            p.apply(ev)
        p.reactions()  # as the daemon does after each change (clears what it re-checks)
        assert_only_kept_visits_named(p)
        by_day.append(sizes(p))
    # The same work every day: once the first days have filled the bounds, nothing grows.
    assert by_day[29] == by_day[19] == by_day[9]
    assert by_day[29] == {
        "visits": KEEP + 8,  # the closed visits kept, and the orphans of the last two days
        "settled": KEEP - SETTLE_AFTER,  # all but the latest closed are kept frozen
        "settled_tares": KEEP - SETTLE_AFTER,  # a tare each
        "event_visit": sum(len(v.events) for v in p.held()),
        "open_by_plate": 0,  # every truck left
        "assigned": 0,
        "latest": KEEP,
        "alias": 10,  # the merged arrivals (every 7th truck of 24 a day: 4) of the kept visits
        "expiry": 8,  # 4 orphaned stages a day, each dropped at the end of the next day
        "archived_tares": PLATES,
        "closed": KEEP,
    }
    # The orphans kept are those of the last two plant days; the earlier ones expired.
    assert sorted(v.visit for v in p.held() if v.provisional) == sorted(
        f"pending:苏A{k % 300:05d}/SO{k}x" for k in range(28 * PER_DAY, 30 * PER_DAY, 6)
    )
    # A rebuild from the stored events, and the live timeline (compacting its tail, pk1's
    # events arriving late), drop the same visits.
    assert fold(every, lambda: Projection(tz=TZ)).snapshot(live=False) == p.snapshot(live=False)
    tl = Timeline(lambda: Projection(own="gate1", tz=TZ), keep=500)
    late: list[Event] = []
    for n in range(0, len(every), 400):
        chunk = every[n : n + 400]
        tl.add([ev for ev in chunk if ev.terminal != "pk1"] + late)
        late = [ev for ev in chunk if ev.terminal == "pk1"]
    tl.add(late)
    assert (tl.stale, tl.replays > 0, tl.tail_size <= 1000) == (False, True, True)
    assert tl.proj.snapshot(live=False) == p.snapshot(live=False)
    assert sizes(tl.proj) == sizes(p)


def test_a_late_arrival_joins_until_the_end_of_the_next_plant_day() -> None:
    month = Month()
    truck = {"plate": "苏A12345", "order": "SO7"}
    day0 = START + timedelta(hours=10)
    stage = month.at("pk1", day0, "visit.loading_started", point="l1", **truck)
    bound = START + timedelta(days=2)  # midnight after the next plant day, plant time
    assert pending_bound(stage.at, TZ) == "2026-11-02T16:00:00.000Z"
    assert bound.astimezone(UTC) == datetime(2026, 11, 2, 16, 0, tzinfo=UTC)

    def arrive(when: datetime) -> Projection:
        p = Projection(own="pk1", tz=TZ)
        # Other trucks' events move the projection's clock on in between.
        other = {"plate": "苏B00001", "order": "SO1"}
        for ev in [
            stage,
            month.at("gate1", when - timedelta(minutes=1), "visit.arrived", visit="o", **other),
            month.at("gate1", when, "visit.arrived", visit="v1", load="bagged", **truck),
        ]:
            p.apply(ev)
        return p

    joined = arrive(bound - timedelta(minutes=1))  # 23:59 on the next plant day
    assert (joined.visits["v1"].stage, joined.visits["v1"].point) == ("loading", "l1")
    assert "pending:苏A12345/SO7" not in joined.visits and joined.expiry == {}
    assert joined.event_visit[stage.id] == "v1"

    # Stamped within the bound, the arrival joins however late it reaches the terminal: the
    # timeline folds it in its place, before the event that dropped the provisional visit.
    tl = Timeline(lambda: Projection(own="pk1", tz=TZ))
    other = {"plate": "苏B00001", "order": "SO1"}
    tl.add(
        [stage, month.at("gate1", bound + timedelta(days=1), "visit.arrived", visit="o", **other)]
    )
    assert sorted(tl.proj.visits) == ["o"]  # dropped
    arrival = month.at("gate1", bound - timedelta(minutes=1), "visit.arrived", visit="v1", **truck)
    tl.add([arrival])
    assert (tl.replays, tl.proj.visits["v1"].stage, sorted(tl.proj.visits)) == (
        1,
        "loading",
        ["o", "v1"],
    )

    late = arrive(bound)  # too late: the provisional visit was dropped, the arrival is new
    assert (late.visits["v1"].stage, late.visits["v1"].point) == ("arrived", None)
    assert sorted(late.visits) == ["o", "v1"]
    assert stage.id not in late.event_visit and late.expiry == {}
    assert late.open_by_plate == {"苏B00001": "o", "苏A12345": "v1"}


def test_a_provisional_visit_that_closed_is_kept_as_closed_visits_are() -> None:
    """Loaded and sent out by plate and order alone: no longer open, it is not expired but
    kept with the closed visits (a correction or a late arrival can still find it)."""
    month = Month()
    truck = {"plate": "苏A12345", "order": "SO7"}
    t = START + timedelta(hours=10)
    p = Projection(tz=TZ)
    p.apply(month.at("pk1", t, "visit.loading_started", point="l1", **truck))
    p.apply(month.at("gate1", t + timedelta(minutes=5), "visit.exited", **truck))
    p.apply(month.at("gate1", t + timedelta(days=5), "visit.arrived", visit="o", plate="苏B1"))
    v = p.visits["pending:苏A12345/SO7"]
    assert (v.provisional, v.open, p.closed, p.expiry) == (True, False, [v.visit], {})

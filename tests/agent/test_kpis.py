"""The KPI engine: whole reports for hand-built days."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import KpiConfig
from agent.domain.events import Event
from agent.domain.kpis import compute
from tests.agent.timeline import Timeline

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 29)
CFG = KpiConfig()


def waits(target: float, **fields: Any) -> dict[str, Any]:
    """A wait KPI's section: nothing measured unless `fields` say otherwise."""
    out: dict[str, Any] = {
        "count": 0,
        "within_target": 0,
        "share": None,
        "max_min": None,
        "target_min": target,
        "met": None,
        "open": 0,
        "cancelled": 0,
    }
    out.update(fields)
    return out


def rates(**fields: Any) -> dict[str, Any]:
    """The packer sections of a report with `fields` (section -> fields) replaced."""
    out: dict[str, Any] = {
        "return_rate": {
            "bags": 0,
            "returned": 0,
            "value": None,
            "target": 0.05,
            "met": None,
            "counts": "all",
            "by_packer": {},
        },
        "broken_rate": {
            "bags": 0,
            "broken": 0,
            "value": None,
            "target": 0.003,
            "met": None,
            "by_packer": {},
        },
        "packer_rate": {
            "tonnes": 0.0,
            "running_h": 0.0,
            "running_ms": 0,
            "t_per_h": None,
            "target": 100.0,
            "met": None,
            "by_packer": {},
        },
    }
    for section, values in fields.items():
        out[section] = {**out[section], **values}
    return out


def completion(**fields: Any) -> dict[str, Any]:
    """The daily_completion section with `fields` replaced (no plan, nothing loaded)."""
    out: dict[str, Any] = {
        "planned_t": 0.0,
        "completed_t": 0.0,
        "value": None,
        "met": None,
        "basis": "arrivals",
        "fallback": True,
        "unmeasured_loads": 0,
        "by_product": {},
    }
    out.update(fields)
    return out


def empty(**sections: Any) -> dict[str, Any]:
    """The report of a day with nothing in it, with `sections` replaced."""
    report: dict[str, Any] = {
        "day": "2026-11-29",
        "weigh_wait": waits(10.0),
        "bag_load_wait": {
            "count": 0,
            "within_target": 0,
            "share": None,
            "target_min": 120.0,
            "target_share": 0.9,
            "met": None,
            "open": 0,
            "cancelled": 0,
            "max_min": None,
        },
        "bulk_turnaround": {
            "count": 0,
            "mean_min": None,
            "target_min": 60.0,
            "met": None,
            "open_over_target": 0,
        },
        "seal_lag": {**waits(10.0), "exited_unsealed": 0},
        **rates(),
        "daily_completion": completion(),
        "flags": {"tare_fluctuation": 0, "underloaded": 0, "bagged_overweight": 0},
        "window_wait": {
            service: waits(target)
            for service, target in (
                ("plan_order", 5.0),
                ("payment", 5.0),
                ("transport_letter", 10.0),
                ("no_letter", 10.0),
            )
        },
    }
    report.update(sections)
    return report


def visit(
    t: Timeline, vid: str, load: str, planned: int, steps: list[tuple[float, str, dict[str, Any]]]
) -> list[Event]:
    """A visit's events: arrival, then (minutes later, kind, extra data) steps."""
    out = [
        t.event(
            "visit.arrived",
            visit=vid,
            plate="苏A12345",
            order="SO1",
            product="P.O 42.5",
            load=load,
            planned_kg=planned,
        )
    ]
    for minutes, kind, data in steps:
        t.advance(minutes)
        out.append(t.event(kind, visit=vid, **data))
    return out


def bagged_day(t: Timeline) -> list[Event]:
    """Two bagged trucks: one loads in 100 min, one waits 130 min (over the 2 h target)."""
    a = visit(
        t,
        "a",
        "bagged",
        30000,
        [
            (10, "visit.gate_in", {}),
            (5, "visit.queued_at_scale", {"scale": "s1"}),
            (8, "visit.weighed", {"weighing": "wa1", "role": "tare", "weight_kg": 15000}),
            (87, "visit.loading_started", {"point": "line1"}),
            (40, "visit.loading_finished", {"point": "line1", "bags": 600, "bag_kg": 50}),
            (2, "visit.queued_at_scale", {"scale": "s1"}),
            (12, "visit.weighed", {"weighing": "wa2", "role": "gross", "weight_kg": 45000}),
            (3, "visit.exited", {}),
        ],
    )
    b = visit(
        t,
        "b",
        "bagged",
        20000,
        [
            (1, "visit.gate_in", {}),
            (130, "visit.loading_started", {"point": "line1"}),
            (30, "visit.loading_finished", {"point": "line1", "bags": 400, "bag_kg": 50}),
            (1, "visit.weighed", {"weighing": "wb2", "role": "gross", "weight_kg": 30000}),
        ],
    )
    return a + b


def test_empty_day() -> None:
    assert compute([], DAY, TZ, CFG) == empty()


def test_bagged_day() -> None:
    events = bagged_day(Timeline())
    assert compute(events, DAY, TZ, CFG) == empty(
        # wa1 8 min from its queue, wa2 12 min (a miss), wb2 never queued: 1 min from the end
        # of its loading
        weigh_wait=waits(10.0, count=3, within_target=2, share=0.6667, max_min=12.0, met=False),
        bag_load_wait={  # from arrival: a 110 min, b 131 min
            "count": 2,
            "within_target": 1,
            "share": 0.5,
            "target_min": 120.0,
            "target_share": 0.9,
            "met": False,
            "open": 0,
            "cancelled": 0,
            "max_min": 131.0,
        },
        daily_completion=completion(planned_t=50.0, completed_t=50.0, value=1.0, met=True),
    )


def bulk_events(t: Timeline) -> list[Event]:
    """Bulk trucks: 48 and 80 min turnaround (mean 64), seal lags of 4 and 12 min."""
    return visit(
        t,
        "c",
        "bulk",
        33000,
        [
            (2, "visit.gate_in", {}),
            (20, "visit.loading_started", {"point": "bulk1"}),
            (15, "visit.loading_finished", {"point": "bulk1"}),
            (4, "visit.sealed", {"seals": ["S1"]}),
            (9, "visit.exited", {}),
        ],
    ) + visit(
        t,
        "d",
        "bulk",
        33000,
        [
            (1, "visit.gate_in", {}),
            (30, "visit.loading_started", {"point": "bulk1"}),
            (20, "visit.loading_finished", {"point": "bulk1"}),
            (12, "visit.sealed", {"seals": ["S2"]}),
            (18, "visit.exited", {}),
        ],
    )


def test_bulk_day() -> None:
    assert compute(bulk_events(Timeline()), DAY, TZ, CFG) == empty(
        bulk_turnaround={
            "count": 2,
            "mean_min": 64.0,
            "target_min": 60.0,
            "met": False,
            "open_over_target": 0,
        },
        seal_lag={
            **waits(10.0, count=2, within_target=1, share=0.5, max_min=12.0, met=False),
            "exited_unsealed": 0,
        },
    )


def tallies(t: Timeline, packer: str = "line1") -> list[Event]:
    out = []
    for bags, returned, broken, running_s in [(2000, 60, 6, 1800), (1000, 90, 3, 1800)]:
        t.advance(30)
        out.append(
            t.event(
                "packer.tally",
                packer=packer,
                bags=bags,
                returned=returned,
                broken=broken,
                running_s=running_s,
                bag_kg=50,
            )
        )
    return out


LINE1 = {
    "return_rate": {
        "bags": 3000,
        "returned": 150,
        "value": 0.05,
        "target": 0.05,
        "met": True,
        "counts": "all",
    },
    "broken_rate": {"bags": 3000, "broken": 9, "value": 0.003, "target": 0.003, "met": True},
    "packer_rate": {
        "tonnes": 150.0,
        "running_h": 1.0,
        "running_ms": 3_600_000,
        "t_per_h": 150.0,
        "target": 100.0,
        "met": True,
    },
}


def one_packer(figures: dict[str, dict[str, Any]], name: str = "line1") -> dict[str, Any]:
    """The packer sections of a report where one packer made every tally."""
    return rates(**{k: {**v, "by_packer": {name: v}} for k, v in figures.items()})


def test_packer_rates() -> None:
    # 3000 bags × 50 kg = 150 t in 1 h; returned 150/3000 = 5 % and broken 9/3000 = 3 ‰,
    # both exactly on their targets: met.
    assert compute(tallies(Timeline(terminal="pk1")), DAY, TZ, CFG) == empty(**one_packer(LINE1))


def test_clock_step_uses_monotonic_within_one_boot() -> None:
    t = Timeline()
    events = visit(t, "a", "bagged", 30000, [(1, "visit.gate_in", {})])
    t.advance(30).step_wall(-45)  # NTP sets the wall clock back 45 min during the wait
    events.append(t.event("visit.loading_started", visit="a", point="line1"))
    # Wall time says -15 min; the monotonic clock says 30.
    report = compute(events, DAY, TZ, CFG)
    assert report["bag_load_wait"] == {
        "count": 1,
        "within_target": 1,
        "share": 1.0,
        "target_min": 120.0,
        "target_share": 0.9,
        "met": True,
        "open": 0,
        "cancelled": 0,
        "max_min": 31.0,  # from arrival, a minute before gate-in
    }
    t2 = Timeline()
    events = visit(t2, "a", "bulk", 30000, [(1, "visit.gate_in", {})])
    t2.reboot("b2").advance(70)  # a reboot: only the wall clocks can be compared
    events.append(t2.event("visit.exited", visit="a"))
    assert compute(events, DAY, TZ, CFG)["bulk_turnaround"] == {
        "count": 1,
        "mean_min": 70.0,
        "target_min": 60.0,
        "met": False,
        "open_over_target": 0,
    }


def test_several_terminals_out_of_order() -> None:
    wb = Timeline(terminal="wb1", epoch="e1", boot="b1")
    pk = Timeline(terminal="pk1", epoch="e9", boot="b7")
    events = bagged_day(wb) + bulk_events(wb) + tallies(pk)
    # The packing PC records loading of a third truck the weighbridge let in (wall time only).
    wb.advance(1)
    events.append(
        wb.event(
            "visit.arrived",
            visit="e",
            plate="苏B1",
            order="SO2",
            product="P",
            load="bagged",
            planned_kg=10000,
        )
    )
    wb.advance(1)
    events.append(wb.event("visit.gate_in", visit="e"))
    pk.wall = wb.wall
    pk.advance(25)
    events.append(pk.event("visit.loading_started", visit="e", point="line2"))
    expected = compute(events, DAY, TZ, CFG)
    shuffled = list(events)
    random.Random(5).shuffle(shuffled)
    assert compute(shuffled + events[:5], DAY, TZ, CFG) == expected  # duplicates are ignored
    assert expected["bag_load_wait"]["count"] == 3
    assert expected == empty(
        weigh_wait=expected["weigh_wait"],
        bag_load_wait={
            "count": 3,
            "within_target": 2,
            "share": 0.6667,
            "target_min": 120.0,
            "target_share": 0.9,
            "met": False,
            "open": 0,
            "cancelled": 0,
            "max_min": 131.0,
        },
        bulk_turnaround={
            "count": 2,
            "mean_min": 64.0,
            "target_min": 60.0,
            "met": False,
            "open_over_target": 0,
        },
        seal_lag=expected["seal_lag"],
        **one_packer(LINE1),
        daily_completion=completion(planned_t=60.0, completed_t=50.0, value=0.8333, met=False),
    )


def test_a_measurement_belongs_to_the_day_that_ends_it() -> None:
    # 23:40 local on the 28th; loading starts 00:10 on the 29th and finishes at 00:40.
    t = Timeline(start=datetime(2026, 11, 28, 15, 40, tzinfo=UTC))
    events = visit(
        t,
        "a",
        "bagged",
        30000,
        [
            (0, "visit.gate_in", {}),
            (30, "visit.loading_started", {"point": "line1"}),
            (30, "visit.loading_finished", {"point": "line1", "bags": 600, "bag_kg": 50}),
        ],
    )
    t.advance(60)
    events += visit(t, "b", "bagged", 10000, [(0, "visit.gate_in", {})])
    day_before = compute(events, date(2026, 11, 28), TZ, CFG)
    assert day_before["bag_load_wait"]["count"] == 0
    # Arrived on the 28th, loaded on the 29th: the tonnes count on the day they were loaded.
    assert day_before["daily_completion"] == completion(planned_t=30.0, value=0.0, met=False)
    report = compute(events, DAY, TZ, CFG)
    # a: 30 min, within; b: still waiting at the day's end, a miss since 03:40 on the 29th.
    assert (report["bag_load_wait"]["count"], report["bag_load_wait"]["open"]) == (2, 1)
    assert report["daily_completion"] == completion(
        planned_t=10.0, completed_t=30.0, value=3.0, met=True
    )


def test_flags_by_the_weighing_day_and_corrections() -> None:
    t = Timeline(start=datetime(2026, 11, 29, 15, 50, tzinfo=UTC))  # 23:50 local
    events = visit(
        t,
        "a",
        "bagged",
        30000,
        [
            (0, "visit.gate_in", {}),
            (1, "visit.weighed", {"weighing": "w1", "role": "tare", "weight_kg": 16000}),
        ],
    )
    t.advance(20)  # the flag is recorded after midnight but belongs to the tare's day
    events.append(
        t.event("visit.flagged", visit="a", check="tare_fluctuation", detail="x", weighing="w1")
    )
    events.append(
        t.event("visit.flagged", visit="a", check="underloaded", detail="x", weighing="w9")
    )
    events.append(t.event("visit.cancelled", visit="a", reason="duplicate entry"))
    report = compute(events, DAY, TZ, CFG)
    assert report["flags"] == {"tare_fluctuation": 1, "underloaded": 0, "bagged_overweight": 0}
    assert report["daily_completion"] == completion()  # a cancelled visit is not planned
    nextday = compute(events, date(2026, 11, 30), TZ, CFG)
    assert nextday["flags"] == {"tare_fluctuation": 0, "underloaded": 1, "bagged_overweight": 0}


def test_corrections_apply_before_measuring() -> None:
    t = Timeline()
    events = visit(t, "a", "bagged", 30000, [(1, "visit.gate_in", {})])
    t.advance(10)
    events.append(t.event("visit.loading_finished", visit="a", point="p", bags=1, bag_kg=50))
    t.advance(1)
    events.append(
        t.event(
            "operator.corrected",
            target_event=events[0].id,
            visit="a",
            field="load",
            old="bagged",
            new="bulk",
            reason="wrong",
            operator="li",
        )
    )
    events.append(t.event("visit.exited", visit="a"))
    report = compute(events, DAY, TZ, CFG)
    assert (report["daily_completion"]["planned_t"], report["bulk_turnaround"]["count"]) == (0.0, 1)


def test_thresholds_come_from_config() -> None:
    cfg = KpiConfig(weigh_wait_min=15.0, bag_load_wait_min=150.0, bag_load_share=0.5)
    report = compute(bagged_day(Timeline()), DAY, TZ, cfg)
    assert (report["weigh_wait"], report["bag_load_wait"]) == (
        waits(15.0, count=3, within_target=3, share=1.0, max_min=12.0, met=True),
        {
            "count": 2,
            "within_target": 2,
            "share": 1.0,
            "target_min": 150.0,
            "target_share": 0.5,
            "met": True,
            "open": 0,
            "cancelled": 0,
            "max_min": 131.0,
        },
    )

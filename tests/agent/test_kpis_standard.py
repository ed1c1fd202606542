"""The KPI engine measures what the standard means (issue 14): whole reports of hand-built days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from agent.config import KpiConfig
from agent.domain.events import Event
from agent.domain.kpis import compute, compute_month
from tests.agent.test_kpis import (
    CFG,
    DAY,
    LINE1,
    TZ,
    bagged_day,
    completion,
    empty,
    one_packer,
    rates,
    visit,
    waits,
)
from tests.agent.timeline import Timeline


def bag_wait(**fields: Any) -> dict[str, Any]:
    """The bag_load_wait section with `fields` replaced."""
    out: dict[str, Any] = {
        "count": 0,
        "within_target": 0,
        "share": None,
        "target_min": 120.0,
        "target_share": 0.9,
        "met": None,
        "open": 0,
        "cancelled": 0,
        "max_min": None,
    }
    out.update(fields)
    return out


def plan(t: Timeline, day: str, tonnes: str, product: str = "") -> Event:
    return t.event("plan.set", day=day, tonnes=tonnes, product=product, operator="wang")


def test_a_partial_load_counts_the_bags_loaded_not_the_plan() -> None:
    t = Timeline()
    events = visit(
        t,
        "a",
        "bagged",
        30000,
        [
            (1, "visit.gate_in", {}),
            (5, "visit.loading_started", {"point": "line1"}),
            (5, "visit.loading_finished", {"point": "line1", "bags": 10, "bag_kg": 50}),
        ],
    )
    # No plan for the day: the day's bagged arrivals stand in for it, and the report says so.
    assert compute(events, DAY, TZ, CFG)["daily_completion"] == completion(
        planned_t=30.0, completed_t=0.5, value=0.0167, met=False
    )


def test_a_day_with_a_plan_per_product_and_a_later_plan_replacing_one() -> None:
    t = Timeline()
    office = Timeline(terminal="office", start=datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    plans = [
        plan(office, "2026-11-29", "50", "P.O 42.5"),
        plan(office, "2026-11-29", "20", "P.C 32.5"),
        plan(office, "2026-11-30", "999"),  # another day's plan
    ]
    office.advance(60)
    plans.append(plan(office, "2026-11-29", "60", "P.O 42.5"))  # the office's correction
    events = plans + bagged_day(t)  # 50 t of P.O 42.5 loaded
    assert compute(events, DAY, TZ, CFG)["daily_completion"] == {
        "planned_t": 80.0,
        "completed_t": 50.0,
        "value": 0.625,
        "met": False,
        "basis": "plan",
        "fallback": False,
        "unmeasured_loads": 0,
        "by_product": {
            "P.C 32.5": {"planned_t": 20.0, "completed_t": 0.0},
            "P.O 42.5": {"planned_t": 60.0, "completed_t": 50.0},
        },
    }
    # Without a plan the same day falls back to its arrivals.
    assert compute(bagged_day(Timeline()), DAY, TZ, CFG)["daily_completion"] == completion(
        planned_t=50.0, completed_t=50.0, value=1.0, met=True
    )


def test_a_truck_never_queued_waits_from_what_it_did_last() -> None:
    t = Timeline()
    events = visit(
        t,
        "a",
        "bulk",
        30000,
        [
            (3, "visit.gate_in", {}),
            (11, "visit.weighed", {"weighing": "w1", "role": "tare", "weight_kg": 15000}),
            (20, "visit.loading_started", {"point": "bulk1"}),
            (30, "visit.loading_finished", {"point": "bulk1"}),
            (4, "visit.sealed", {"seals": ["S1"]}),
            (6, "visit.weighed", {"weighing": "w2", "role": "gross", "weight_kg": 45000}),
        ],
    )
    # Tare 11 min after gate-in (a miss), gross 6 min after the seal.
    assert compute(events, DAY, TZ, CFG)["weigh_wait"] == waits(
        10.0, count=2, within_target=1, share=0.5, max_min=11.0, met=False
    )


def test_a_crowded_scale_queue_is_measured_to_the_capture_not_the_assignment() -> None:
    t = Timeline()
    events: list[Event] = []
    for vid in ("a", "b", "c"):
        events += visit(t, vid, "bulk", 30000, [(0, "visit.gate_in", {})])
    events += [t.event("visit.queued_at_scale", visit=v, scale="s1") for v in ("a", "b", "c")]
    for w in ("w1", "w2", "w3"):
        t.advance(3)  # a capture every 3 minutes; nobody assigns them yet
        events.append(
            t.event("weighing.captured", weighing=w, scale="s1", weight_kg=15000, mode="gross")
        )
    t.advance(30)  # the operator assigns all three 30 minutes later
    for v, w in (("a", "w1"), ("b", "w2"), ("c", "w3")):
        events.append(t.event("visit.weighed", visit=v, weighing=w, role="tare", weight_kg=15000))
    assert compute(events, DAY, TZ, CFG)["weigh_wait"] == waits(
        10.0, count=3, within_target=3, share=1.0, max_min=9.0, met=True
    )


def test_a_truck_still_waiting_at_midnight_is_a_miss_on_the_day_it_crossed_the_target() -> None:
    t = Timeline(start=datetime(2026, 11, 29, 13, 30, tzinfo=UTC))  # 21:30 local
    late = visit(t, "a", "bagged", 30000, [(0, "visit.gate_in", {})])
    t.advance(90)  # 23:00
    later = visit(t, "b", "bagged", 30000, [(0, "visit.gate_in", {})])
    events = late + later
    # a crossed 2 h at 23:30: a miss of the 29th; b had waited 1 h at midnight: not yet.
    assert compute(events, DAY, TZ, CFG)["bag_load_wait"] == bag_wait(
        count=1, share=0.0, met=False, open=1, max_min=150.0
    )
    # At 22:00 neither had crossed the target yet: nothing to judge.
    at_ten = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
    assert compute(events, DAY, TZ, CFG, as_of=at_ten)["bag_load_wait"] == bag_wait()
    # b crossed at 01:00 on the 30th and loaded at 08:00: one miss of the 30th; a stays
    # a miss of the 29th, still open at that day's end.
    t.advance(9 * 60)
    events.append(t.event("visit.loading_started", visit="b", point="line1"))
    assert compute(events, date(2026, 11, 30), TZ, CFG)["bag_load_wait"] == bag_wait(
        count=1, share=0.0, met=False, max_min=540.0
    )
    assert compute(events, DAY, TZ, CFG)["bag_load_wait"] == bag_wait(
        count=1, share=0.0, met=False, open=1, max_min=150.0
    )


def test_a_cancellation_after_three_hours_is_a_miss_and_one_after_one_hour_is_not() -> None:
    t = Timeline()
    events = visit(
        t,
        "a",
        "bagged",
        30000,
        [
            (0, "visit.gate_in", {}),
            (0, "visit.queued_at_scale", {"scale": "s1"}),
            (180, "visit.cancelled", {"reason": "customer left"}),
        ],
    )
    events += visit(t, "b", "bagged", 30000, [(60, "visit.cancelled", {"reason": "wrong order"})])
    report = compute(events, DAY, TZ, CFG)
    assert (report["bag_load_wait"], report["weigh_wait"]) == (
        bag_wait(count=1, share=0.0, met=False, cancelled=1, max_min=180.0),
        waits(10.0, count=1, within_target=0, share=0.0, max_min=180.0, met=False, cancelled=1),
    )


def test_an_unsealed_bulk_exit_and_an_unsealed_truck_at_midnight_are_misses() -> None:
    t = Timeline()
    events = visit(
        t,
        "a",
        "bulk",
        30000,
        [
            (1, "visit.gate_in", {}),
            (10, "visit.loading_started", {"point": "bulk1"}),
            (10, "visit.loading_finished", {"point": "bulk1"}),
            (5, "visit.exited", {}),  # left unsealed after 5 min
        ],
    )
    events += visit(
        t,
        "b",
        "bulk",
        30000,
        [
            (1, "visit.gate_in", {}),
            (10, "visit.loading_started", {"point": "bulk1"}),
            (10, "visit.loading_finished", {"point": "bulk1"}),  # never sealed, still inside
        ],
    )
    report = compute(events, DAY, TZ, CFG)
    assert report["seal_lag"] == {
        **waits(10.0, count=2, within_target=0, share=0.0, met=False, open=1),
        "max_min": report["seal_lag"]["max_min"],
        "exited_unsealed": 1,
    }
    assert report["bulk_turnaround"] == {
        "count": 1,
        "mean_min": 25.0,
        "target_min": 60.0,
        "met": True,
        "open_over_target": 1,  # b is still inside at the day's end
    }


def tally(t: Timeline, packer: str, bags: int, running_s: float, **more: int) -> Event:
    t.advance(20)
    fields = {"returned": 0, "broken": 0, **more}
    return t.event(
        "packer.tally", packer=packer, bags=bags, running_s=running_s, bag_kg=50, **fields
    )


def test_two_packers_at_different_rates() -> None:
    t = Timeline(terminal="pk1")
    events = [
        tally(t, "line1", 3000, 3600, returned=150, broken=9),
        tally(t, "line2", 1600, 3600, returned=100, broken=1),
    ]
    line2 = {
        "return_rate": {
            "bags": 1600,
            "returned": 100,
            "value": 0.0625,
            "target": 0.05,
            "met": False,
            "counts": "all",
        },
        "broken_rate": {"bags": 1600, "broken": 1, "value": 0.0006, "target": 0.003, "met": True},
        "packer_rate": {
            "tonnes": 80.0,
            "running_h": 1.0,
            "running_ms": 3_600_000,
            "t_per_h": 80.0,
            "target": 100.0,
            "met": False,
        },
    }
    by = {k: {"line1": LINE1[k], "line2": line2[k]} for k in LINE1}
    assert compute(events, DAY, TZ, CFG) == empty(
        **rates(
            return_rate={
                "bags": 4600,
                "returned": 250,
                "value": 0.0543,
                "met": False,
                "by_packer": by["return_rate"],
            },
            broken_rate={
                "bags": 4600,
                "broken": 10,
                "value": 0.0022,
                "met": True,
                "by_packer": by["broken_rate"],
            },
            # 230 t in 2 h is 115 t/h, but line 2 ran at 80: the standard's figure is per machine.
            packer_rate={
                "tonnes": 230.0,
                "running_h": 2.0,
                "running_ms": 7_200_000,
                "t_per_h": 115.0,
                "met": False,
                "by_packer": by["packer_rate"],
            },
        )
    )


def test_fractional_running_seconds_are_kept_to_the_millisecond() -> None:
    t = Timeline(terminal="pk1")
    # 2000 bags × 50 kg = 100 t in 1200.4 + 1199.3 + 1200.3 = 3600.0 s: exactly 100 t/h (met).
    # Truncated to whole seconds it would have been 3599 s and 100.03 t/h.
    events = [tally(t, "line1", n, s) for n, s in ((700, 1200.4), (600, 1199.3), (700, 1200.3))]
    figures = {
        "packer_rate": {
            "tonnes": 100.0,
            "running_h": 1.0,
            "running_ms": 3_600_000,
            "t_per_h": 100.0,
            "target": 100.0,
            "met": True,
        },
        "return_rate": {**LINE1["return_rate"], "bags": 2000, "returned": 0, "value": 0.0},
        "broken_rate": {**LINE1["broken_rate"], "bags": 2000, "broken": 0, "value": 0.0},
    }
    assert compute(events, DAY, TZ, CFG) == empty(**one_packer(figures))


def test_overweight_returns_when_the_line_counts_them_apart() -> None:
    t = Timeline(terminal="pk1")
    events = [tally(t, "line1", 1000, 3600, returned=80, returned_over=50)]
    assert compute(events, DAY, TZ, CFG)["return_rate"]["by_packer"] == {
        "line1": {
            "bags": 1000,
            "returned": 50,
            "value": 0.05,
            "target": 0.05,
            "met": True,
            "counts": "overweight",
        }
    }


def test_every_target_on_its_edge_is_met() -> None:
    t = Timeline()
    events = visit(
        t,
        "a",
        "bulk",
        30000,
        [
            (0, "visit.gate_in", {}),
            (0, "visit.queued_at_scale", {"scale": "s1"}),
            (10, "visit.weighed", {"weighing": "w1", "role": "tare", "weight_kg": 15000}),
            (20, "visit.loading_started", {"point": "bulk1"}),
            (10, "visit.loading_finished", {"point": "bulk1"}),
            (10, "visit.sealed", {"seals": ["S1"]}),
            (10, "visit.exited", {}),
        ],
    )
    for i in range(10):  # 9 of 10 bagged trucks load within 2 h: exactly 90 %
        events += visit(
            Timeline(terminal=f"g{i}"),
            f"b{i}",
            "bagged",
            1000,
            [(120 if i else 121, "visit.loading_started", {"p": 1})],
        )
    events += [tally(t, "line1", 2000, 3600, returned=100, broken=6)]
    r = compute(events, DAY, TZ, CFG)
    assert [r[k]["met"] for k in ("weigh_wait", "seal_lag", "bulk_turnaround")] == [True] * 3
    assert (r["weigh_wait"]["max_min"], r["seal_lag"]["max_min"]) == (10.0, 10.0)
    assert r["bulk_turnaround"]["mean_min"] == 60.0
    assert (r["bag_load_wait"]["share"], r["bag_load_wait"]["met"]) == (0.9, True)
    assert [r[k]["value"] for k in ("return_rate", "broken_rate")] == [0.05, 0.003]
    assert [r[k]["met"] for k in ("return_rate", "broken_rate", "packer_rate")] == [True] * 3
    assert r["packer_rate"]["t_per_h"] == 100.0


def generated_month() -> list[Event]:
    """Thirty days of trucks and tallies, with waits that cross midnight and open trucks."""
    events: list[Event] = []
    office = Timeline(terminal="office")
    pk = Timeline(terminal="pk1", start=datetime(2026, 10, 31, 16, 0, tzinfo=UTC))
    for n in range(30):
        start = datetime(2026, 10, 31, 16, 0, tzinfo=UTC) + timedelta(days=n, hours=n % 7)
        t = Timeline(terminal="wb1", epoch=f"e{n}", start=start)
        if n % 3:
            events.append(plan(office, f"2026-11-{n + 1:02d}", str(40 + n)))
        for k in range(4):
            vid = f"{n}-{k}"
            wait = 30 + 40 * k + n  # some over 2 h, one crossing midnight
            events += visit(
                t,
                vid,
                "bagged",
                20000,
                [
                    (1, "visit.gate_in", {}),
                    (2, "visit.queued_at_scale", {"scale": "s1"}),
                    (
                        5 + k * 3,
                        "visit.weighed",
                        {"weighing": f"w{vid}", "role": "tare", "weight_kg": 15000},
                    ),
                    (wait, "visit.loading_started", {"point": "line1"}),
                ]
                + (
                    [
                        (
                            40,
                            "visit.loading_finished",
                            {"point": "line1", "bags": 380 + k, "bag_kg": 50},
                        )
                    ]
                    if (n + k) % 5
                    else []
                ),
            )
        pk.wall = start
        events.append(tally(pk, "line1", 1000 + n, 1700.25 + n, returned=n, broken=n % 4))
    return events


def test_a_month_is_the_sum_of_its_days() -> None:
    events = generated_month()
    month = compute_month(events, 2026, 11, TZ, CFG)
    assert [d["day"] for d in month["days"]] == [f"2026-11-{i:02d}" for i in range(1, 31)]
    end = datetime(2026, 12, 1, tzinfo=TZ)
    for d in month["days"]:
        assert compute(events, date.fromisoformat(d["day"]), TZ, CFG, as_of=end) == d
    days, totals = month["days"], month["totals"]

    def total(path: tuple[str, ...]) -> Any:
        out = 0
        for d in days:
            v: Any = d
            for key in path:
                v = v[key]
            out += v
        return out

    for path in [
        ("weigh_wait", "count"),
        ("weigh_wait", "within_target"),
        ("bag_load_wait", "count"),
        ("bag_load_wait", "within_target"),
        ("bag_load_wait", "open"),
        ("return_rate", "bags"),
        ("return_rate", "returned"),
        ("broken_rate", "broken"),
        ("packer_rate", "running_ms"),
    ]:
        value: Any = totals
        for key in path:
            value = value[key]
        assert value == total(path), path
    assert totals["daily_completion"]["completed_t"] == round(
        total(("daily_completion", "completed_t")), 3
    )
    assert totals["daily_completion"]["planned_t"] == round(
        total(("daily_completion", "planned_t")), 3
    )
    assert totals["daily_completion"]["basis"] == "plan+arrivals"
    assert totals["bag_load_wait"]["count"] == 120  # every truck counted once
    from agent.domain.kpis import met_by_kpi

    assert month["missed"] == {
        d["day"]: [k for k, met in met_by_kpi(d).items() if met is False]
        for d in days
        if False in met_by_kpi(d).values()
    }
    assert "2026-11-01" in month["missed"]


def test_config_thresholds_still_rule() -> None:
    cfg = KpiConfig(broken_rate_max=0.03)
    events = [tally(Timeline(terminal="pk1"), "line1", 1000, 3600, broken=20)]
    assert compute(events, DAY, TZ, cfg)["broken_rate"]["met"] is True
    assert compute(events, DAY, TZ, CFG)["broken_rate"]["met"] is False

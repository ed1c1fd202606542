"""Visits on a plant: stages recorded where the visit is not known yet join it, two arrivals of
one truck merge, and a check on another terminal's fact warns instead of refusing."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.domain import ledgers
from agent.domain.events import Event
from agent.domain.kpis import order
from agent.domain.timeline import Timeline, fold
from agent.domain.visit import fold_visits
from agent.domain.visit_commands import CommandContext, command
from agent.domain.visit_inputs import Refusal
from agent.domain.visit_projection import Projection
from tests.agent.timeline import Timeline as Clock

LAG = "lag: gate1 unreachable, last contact 95 s ago"
TRUCK = {"plate": "苏A12345", "order": "SO7"}
TZ = ZoneInfo("Asia/Shanghai")


def arrival(clock: Clock, vid: str, **extra: Any) -> Event:
    data = {**TRUCK, "product": "P.O 42.5", "load": "bagged", "planned_kg": 30000, **extra}
    return clock.event("visit.arrived", visit=vid, **data)


def run(
    p: Projection, clock: Clock, op: str, plant: bool = True, **req: Any
) -> tuple[list[Event], list[str]]:
    """One command at a terminal whose replica lags; its events are folded in."""
    ctx = CommandContext(plant=plant, lag=LAG, packer_bag_kg={"line1": 50})
    events = [clock.event(kind, **data) for kind, data in command(p, op, req, ctx)]
    for ev in events:
        p.apply(ev)
    clock.advance(1)
    return events, ctx.warnings


def test_a_stage_for_an_unknown_visit_is_recorded_by_plate_and_order_and_joins_it() -> None:
    gate, pk = Clock("gate1", "g-e"), Clock("pk1", "p-e")
    arrived = arrival(gate, "v1")
    gate.advance(1)
    gated = gate.event("visit.gate_in", visit="v1")
    pk.advance(5)

    at_pk = Projection(own="pk1")
    at_pk.loaded["line1"] = 1200
    started, warnings = run(at_pk, pk, "visit.loading_start", point="line1", **TRUCK)
    assert [(e.kind, e.data) for e in started] == [
        (
            "visit.loading_started",
            {
                **TRUCK,
                "point": "line1",
                "counter": {"packer": "line1", "from": 1200, "bag_kg": 50},
            },
        )
    ]
    assert warnings == [
        "no arrival of 苏A12345 for order SO7 has reached this terminal; recorded by plate and"
        f" order, the stage joins the visit when its arrival does ({LAG})"
    ]
    # The truck loads under a provisional visit that later stages find by plate (and order).
    shown = at_pk.snapshot(live=False)["open"]
    assert [(v["visit"], v["stage"], v.get("provisional")) for v in shown] == [
        ("pending:苏A12345/SO7", "loading", True)
    ]
    assert at_pk.snapshot(live=False)["queue"] == []  # not waiting at the gate
    finished, warnings = run(at_pk, pk, "visit.loading_finish", plate="苏A12345", bags=600)
    assert (finished[0].data, warnings) == (
        {**TRUCK, "point": "line1", "bags": 600, "bag_kg": 50},
        [],
    )

    # The arrival reaches pk1 (inserted before the stages: the tail is folded again).
    tl = Timeline(lambda: Projection(own="pk1"))
    tl.add(started + finished)
    tl.add([arrived, gated])
    assert tl.replays == 1
    (v,) = tl.proj.visits.values()
    assert (v.visit, v.stage, v.bags, v.provisional, v.conflicts) == (
        "v1",
        "loaded",
        600,
        False,
        [],
    )
    assert tl.proj.open_by_plate == {"苏A12345": "v1"}
    assert sorted(tl.proj.event_visit.values()) == ["v1"] * 4
    everything = [arrived, gated, *started, *finished]
    assert fold(everything, Projection).snapshot(live=False) == tl.proj.snapshot(live=False)
    assert fold_visits(order(everything))["v1"].to_dict() == v.to_dict()


def test_a_stage_folded_before_its_arrival_waits_for_it() -> None:
    """pk1's clock runs behind: its plate-and-order stage sorts before the arrival; the fold
    holds it in the provisional visit and the arrival takes it over."""
    gate, pk = Clock("gate1", "g-e"), Clock("pk1", "p-e")
    pk.step_wall(-10)
    early = pk.event("visit.loading_started", point="line1", **TRUCK)
    events = [arrival(gate, "v1"), early, gate.event("visit.gate_in", visit="v1")]
    p = fold(events, Projection)
    (v,) = p.visits.values()
    assert (v.visit, v.loading_started is not None, v.gate_in is not None) == ("v1", True, True)
    assert [(f.check, f.detail) for f in v.conflicts] == [
        (
            "before_gate_in",
            f"a stage was recorded at pk1 {early.at} before the gate-in at gate1 {events[2].at}",
        )
    ]
    assert fold_visits(order(events))["v1"].to_dict() == v.to_dict()


def test_two_arrivals_of_one_truck_on_two_terminals_become_one_visit() -> None:
    gate, wb = Clock("gate1", "g-e"), Clock("wb1", "w-e")
    first = arrival(gate, "v-gate")
    wb.advance(2)
    second = arrival(wb, "v-wb", planned_kg=31000)
    wb.advance(1)
    queued = wb.event("visit.queued_at_scale", visit="v-wb", scale="scale1")
    gate.advance(2)
    gated = gate.event("visit.gate_in", visit="v-gate")
    events = [first, second, queued, gated]
    p = fold(events, Projection)
    assert list(p.visits) == ["v-gate"]
    v = p.visits["v-gate"]
    assert (v.merged_from, v.planned_kg, v.queued is not None, v.gate_in is not None) == (
        ["v-wb"],
        30000,  # the earlier arrival's facts stand
        True,
        True,
    )
    assert v.to_dict()["merged_from"] == ["v-wb"]
    assert p.event_visit[second.id] == "v-gate"
    assert p.find({"visit": "v-gate"}) is v
    with pytest.raises(Refusal):
        p.find({"visit": "v-wb"})
    visits = fold_visits(order(events))
    assert list(visits) == ["v-gate"] and visits["v-gate"].to_dict() == v.to_dict()
    # The same terminal registering a plate twice is not a partition: no merge.
    again = arrival(gate, "v-again")
    assert sorted(fold([first, again], Projection).visits) == ["v-again", "v-gate"]


def test_a_stage_recorded_after_the_visit_was_cancelled_is_a_conflict() -> None:
    gate, pk = Clock("gate1", "g-e"), Clock("pk1", "p-e")
    events = [arrival(gate, "v1"), gate.advance(1).event("visit.cancelled", visit="v1", reason="x")]
    late = pk.advance(3).event("visit.loading_started", point="line1", **TRUCK)
    v = fold([*events, late], Projection).visits["v1"]
    assert v.to_dict()["conflicts"] == [
        {
            "check": "after_close",
            "detail": f"visit.loading_started recorded at pk1 {late.at} after the visit was"
            f" cancelled at {events[1].at}",
        }
    ]
    assert fold_visits([*events, late])["v1"].to_dict()["conflicts"] == v.to_dict()["conflicts"]


def test_on_a_plant_a_missing_gate_in_warns_and_own_facts_still_refuse() -> None:
    gate, wb = Clock("gate1", "g-e"), Clock("wb1", "w-e")
    p = Projection(own="wb1")
    p.apply(arrival(gate, "v1"))
    p.apply(arrival(gate.advance(1), "v2", plate="苏B00001"))
    queued, warnings = run(p, wb, "visit.queue", plate="苏A12345", scale="scale1")
    assert queued[0].data == {"visit": "v1", "scale": "scale1"}
    assert warnings == [
        "no gate-in of 苏A12345 (visit v1) has reached this terminal yet; recorded all the same"
        f" ({LAG})"
    ]
    # A lone terminal (no peers) refuses as before.
    lone = Projection()
    lone.apply(arrival(gate, "v1"))
    with pytest.raises(Refusal, match="not through the gate yet; record gate-in first"):
        run(lone, wb, "visit.queue", plant=False, plate="苏A12345")
    # The gate's own facts: release order and exit stay refusals.
    with pytest.raises(Refusal, match="is not next at the gate"):
        run(p, gate, "visit.gate_in", plate="苏B00001")
    with pytest.raises(Refusal, match="not through the gate yet"):
        run(p, gate, "visit.exit", plate="苏A12345")
    # Without an order an unknown plate is refused, with a way to record it all the same.
    with pytest.raises(Refusal) as exc:
        run(p, wb, "visit.queue", plate="苏C99999")
    assert str(exc.value) == (
        "plate 苏C99999 has no open visit; record its arrival first;"
        " or give its order to record it by plate and order"
    )


def test_the_gate_ledger_has_one_row_per_merged_visit_with_its_remarks() -> None:
    gate, wb, pk = Clock("gate1", "g-e"), Clock("wb1", "w-e"), Clock("pk1", "p-e")
    events = [
        arrival(gate, "v-gate", load="bulk"),
        arrival(wb.advance(2), "v-wb", load="bulk"),
        gate.advance(3).event("visit.exited", visit="v-gate"),
        pk.advance(9).event("visit.sealed", seals=["S1"], **TRUCK),
    ]
    day = events[0].when.astimezone(TZ).date()
    rows = ledgers.build("gate", events, day, TZ)
    late = events[3]
    assert [(r["plate"], r["status"], r["remarks"]) for r in rows] == [
        (
            "苏A12345",
            "exited",
            f"merged v-wb; after_close visit.sealed recorded at pk1 {late.at} after the visit"
            f" left at {events[2].at}",
        )
    ]
    _, body = ledgers.table("gate", rows, "zh")
    assert body[0][-1].startswith("合并 v-wb; 离厂或取消后仍有作业 visit.sealed recorded at pk1")
    seals = ledgers.build("seals", events, day, TZ)
    assert [(r["plate"], r["seals"]) for r in seals] == [("苏A12345", "S1")]

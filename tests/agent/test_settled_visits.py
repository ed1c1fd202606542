"""Closed visits kept frozen (`Projection.settled`): whatever reads or changes one later finds it
as it was, so settling changes nothing the fold decides."""

from __future__ import annotations

from agent.domain.events import Event
from agent.domain.kinds import Kind
from agent.domain.visit_projection import Projection
from tests.agent.timeline import Timeline as Clock

PLATE = "苏E00001"


def returns_of_one_truck(gate: Clock, scale: Clock) -> list[Event]:
    """One truck's six visits in a day, each weighed empty (a tare) and then sent out."""
    out = []
    for n in range(6):
        out.append(
            gate.event(
                "visit.arrived", visit=f"v{n}", plate=PLATE, order=f"SO{n}", load="bagged",
                planned_kg=30_000, product="P.O 42.5",
            )
        )  # fmt: skip
        scale.advance(2)
        out.append(
            scale.event(
                "visit.weighed", visit=f"v{n}", weighing=f"t{n}", role="tare",
                weight_kg=15_000 + 10 * n,
            )
        )  # fmt: skip
        gate.advance(5)
        out.append(gate.event("visit.exited", visit=f"v{n}"))
        gate.advance(30)
        scale.advance(33)
    return out


def test_a_settled_visit_takes_late_stages_corrections_and_counts_in_the_tare_history() -> None:
    gate, scale, line = Clock("gate1", "g", "gb"), Clock("wb1", "w", "wb"), Clock("pk1", "p", "pb")
    days = returns_of_one_truck(gate, scale)
    frozen, objects = Projection(settle_after=0), Projection(settle_after=10**6)
    for ev in days:
        frozen.apply(ev)
        objects.apply(ev)
    assert sorted(frozen.settled) == [f"v{n}" for n in range(6)] and not frozen.visits
    assert not objects.settled
    assert frozen.held_visits() == objects.held_visits()

    for c in (gate, scale, line):
        c.advance(600)
    tare1 = next(e for e in days if e.data.get("weighing") == "t1")
    arrival2 = next(e for e in days if e.data.get("visit") == "v2")
    later = [
        # a stage recorded by plate and order at the line, long after the truck left
        line.event("visit.loading_started", plate=PLATE, order="SO0", point="l1"),
        # a correction naming its visit, and one naming only its event
        scale.event(
            "operator.corrected", target_event=tare1.id, visit="v1", field="weight_kg",
            old=15_010, new=15_011, reason="misread", operator="li",
        ),
        scale.event(
            "operator.corrected", target_event=arrival2.id, field="planned_kg", old=30_000,
            new=25_000, reason="order amended", operator="li",
        ),
        # the truck again, empty at 16 t: a tare far from its six earlier ones
        gate.event(
            "visit.arrived", visit="v6", plate=PLATE, order="SO6", load="bagged",
            planned_kg=30_000, product="P.O 42.5",
        ),
        scale.event("visit.weighed", visit="v6", weighing="t6", role="tare", weight_kg=16_000),
    ]  # fmt: skip
    for ev in later:
        frozen.apply(ev)
        objects.apply(ev)
    held = frozen.held_visits()
    assert held == objects.held_visits()
    assert "pending:" not in "".join(held)  # the late stage joined v0, it waited for nothing
    assert held["v0"].loading_started is not None and held["v0"].point == "l1"
    assert [w.weight_kg for w in held["v1"].weighings] == [15_011]
    assert held["v2"].planned_kg == 25_000
    assert frozen.snapshot(live=False) == objects.snapshot(live=False)
    flags = frozen.reactions()
    assert flags == objects.reactions()
    assert [(kind, data["check"]) for kind, data in flags] == [
        ("visit.flagged", "tare_fluctuation")
    ]
    assert "median of 5 previous tares" in flags[0][1]["detail"]


def test_a_settled_visit_dropped_leaves_what_an_object_dropped_leaves() -> None:
    """Past `keep_closed` the oldest closed visit is forgotten: from its frozen form the same
    tares are archived for the plate, and its plate, order and merged arrivals forgotten."""
    gate, scale = Clock("gate1", "g", "gb"), Clock("wb1", "w", "wb")
    days = returns_of_one_truck(gate, scale)
    wb = Clock("wb2", "w2", "w2b")  # the same truck registered again at another terminal
    wb.wall = gate.wall
    days.append(gate.event("visit.arrived", visit="v6", plate=PLATE, order="SO6", load="bulk"))
    days.append(wb.event("visit.arrived", visit="v6b", plate=PLATE, order="SO6", load="bulk"))
    gate.advance(1)
    days.append(gate.event("visit.cancelled", visit="v6", reason="wrong order"))
    for n in (7, 8):  # two more trucks close, and v6 with its merged arrival is forgotten
        gate.advance(1)
        days.append(gate.event("visit.arrived", visit=f"v{n}", plate=f"苏F{n}", order=f"SO{n}"))
        days.append(gate.event("visit.cancelled", visit=f"v{n}", reason="wrong order"))
    frozen = Projection(keep_closed=2, settle_after=0)
    objects = Projection(keep_closed=2, settle_after=2)
    for ev in days:
        frozen.apply(ev)
        objects.apply(ev)
        assert frozen.held_visits() == objects.held_visits()
        assert frozen.archived_tares == objects.archived_tares
        assert (frozen.ids.latest, frozen.ids.alias) == (objects.ids.latest, objects.ids.alias)
        if ev.data.get("visit") == "v6b":
            assert frozen.ids.alias == {"v6b": "v6"}
    # the tare history keeps 5 tares a plate: v1 to v5's (each visit's tare is its 2nd event)
    assert frozen.archived(PLATE) == [(3 * n + 2, 15_000 + 10 * n) for n in range(1, 6)]
    assert frozen.ids.alias == {} and (PLATE, "SO6") not in frozen.ids.latest
    assert sorted(frozen.settled) == ["v7", "v8"] and not objects.settled


def test_a_visit_appended_here_freezes_with_its_kinds_and_enum_values_as_stored() -> None:
    """Events appended by this daemon carry a `Kind` (a str subclass, which marshal refuses)
    and may carry one in their data: frozen, they come back as the plain text they are stored
    as, equal to the originals."""
    gate = Clock("gate1", "g", "gb")
    events = [
        gate.event(Kind.VISIT_ARRIVED, visit="v0", plate=PLATE, order="SO0", load="bulk"),
        gate.event(Kind.VISIT_CANCELLED, visit="v0", reason=Kind.VISIT_CANCELLED),
    ]
    frozen = Projection(settle_after=0)
    for ev in events:
        frozen.apply(ev)
    assert list(frozen.settled) == ["v0"]
    v = frozen.held_visits()["v0"]
    assert [e for _, e in v.events] == events
    assert [type(e.kind) for _, e in v.events] == [str, str]
    assert type(v.cancel_reason) is str and v.cancel_reason == "visit.cancelled"

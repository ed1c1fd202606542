"""Live warnings (agent/domain/deadlines.py): each wait warns at its share, is overdue past its
target and clears when the stage happens, on a fake clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agent.config import KpiConfig
from agent.domain import deadlines
from agent.domain.events import format_at
from agent.domain.window_services import WindowBook
from tests.agent.test_visits import arrive
from tests.agent.timeline import Driver

CFG = KpiConfig()  # scale 10 min, bagged loading 120, bulk 60, seal 10, windows 5/5/10/10
MS = 0.001 / 60  # one millisecond, in minutes: a wait exactly on its target is within it


def levels(d: Driver, tickets: list[dict[str, Any]] | None = None) -> dict[str, str]:
    waits = deadlines.running(d.p.open_visits(), tickets or [], CFG)
    return {name: due.level for name, due in deadlines.due(waits, d.t.wall, CFG.warn_share).items()}


def test_a_scale_wait_warns_at_80_percent_is_overdue_at_its_target_and_clears_when_weighed() -> (
    None
):
    d = Driver()
    vid = arrive(d, "苏A11111")
    d.do("visit.gate_in", visit=vid)
    d.t.advance(60)  # the bagged loading wait runs from arrival; the scale wait from the queue
    d.do("visit.queue", visit=vid)
    name = f"late.scale_wait.{vid}"
    waits = deadlines.running(d.p.open_visits(), [], CFG)
    assert deadlines.next_change(waits, d.t.wall, 0.8) == d.t.wall + timedelta(minutes=8)
    d.t.advance(7.99)
    assert name not in levels(d)
    d.t.advance(0.01)
    assert levels(d)[name] == "warning"
    d.t.advance(2)
    assert levels(d)[name] == "warning"  # exactly 10 minutes: within the target (不超过)
    d.t.advance(MS)
    assert levels(d)[name] == "overdue"
    d.capture(15000)  # matched by itself: the only truck queued at scale1
    assert name not in levels(d)


def test_every_visit_target_raises_and_clears_at_its_stage() -> None:
    d = Driver()
    bagged = arrive(d, "苏A11111")
    bulk = arrive(d, "苏B22222", load="bulk")
    d.do("visit.gate_in", visit=bagged)
    d.do("visit.gate_in", visit=bulk)
    d.t.advance(48)  # the bulk turnaround: 80 % of 60 min
    assert levels(d) == {f"late.bulk_turnaround.{bulk}": "warning"}
    d.do("visit.loading_start", visit=bulk, point="bulk1")
    d.do("visit.loading_finish", visit=bulk)
    d.t.advance(8)
    assert levels(d) == {
        f"late.bulk_turnaround.{bulk}": "warning",
        f"late.seal_lag.{bulk}": "warning",
    }
    d.t.advance(4 + MS)  # just past 60 min in the plant, 12 min unsealed
    assert levels(d) == {
        f"late.bulk_turnaround.{bulk}": "overdue",
        f"late.seal_lag.{bulk}": "overdue",
    }
    d.do("visit.seal", visit=bulk, seals=["S1"])
    assert levels(d) == {f"late.bulk_turnaround.{bulk}": "overdue"}
    d.t.advance(36)  # 96 min since the bagged truck arrived: 80 % of 120
    assert levels(d)[f"late.bag_load_wait.{bagged}"] == "warning"
    d.t.advance(24)  # 2 h and 1 ms
    assert levels(d)[f"late.bag_load_wait.{bagged}"] == "overdue"
    d.do("visit.loading_start", visit=bagged, point="line1")
    d.do("visit.cancel", visit=bulk, reason="test")
    assert levels(d) == {}


def test_a_window_ticket_warns_is_overdue_and_clears_when_served() -> None:
    d = Driver()
    book = WindowBook()
    ev = d.t.event("window.arrived", **book.arrive("sales", "payment"))
    book.apply(ev)

    def tickets() -> list[dict[str, Any]]:
        return [
            {
                "ticket": t.ticket,
                "window": t.window,
                "service": t.service,
                "arrived_at": t.arrived_at,
            }
            for t in book.open.values()
        ]

    name = "late.window.sales.sales-0001"
    d.t.advance(3.99)
    assert levels(d, tickets()) == {}
    d.t.advance(0.01)
    assert levels(d, tickets()) == {name: "warning"}
    d.t.advance(1)
    assert levels(d, tickets()) == {name: "warning"}  # exactly 5 min: within the target
    d.t.advance(MS)
    assert levels(d, tickets()) == {name: "overdue"}
    due = deadlines.due(deadlines.running([], tickets(), CFG), d.t.wall, 0.8)[name]
    assert (due.detail, format_at(due.due_at)) == (
        "ticket sales-0001 has been waiting at the sales window (payment) longer than its 5 min"
        " target",
        "2026-11-29T01:05:00.000Z",
    )
    book.apply(d.t.event("window.served", **book.serve("sales-0001")))
    assert levels(d, tickets()) == {}


def test_the_warning_share_is_configurable_and_the_next_change_is_exact() -> None:
    d = Driver()
    vid = arrive(d, "苏A11111")
    d.do("visit.gate_in", visit=vid)
    d.do("visit.queue", visit=vid)
    waits = [w for w in deadlines.running(d.p.open_visits(), [], CFG) if w.target == "scale_wait"]
    start = d.t.wall
    assert deadlines.next_change(waits, start, 0.5) == start + timedelta(minutes=5)
    after_warning = start + timedelta(minutes=5)
    past = start + timedelta(minutes=10, milliseconds=1)
    assert deadlines.next_change(waits, after_warning, 0.5) == past
    assert deadlines.next_change(waits, start + timedelta(minutes=10), 0.5) == past
    assert deadlines.next_change(waits, past, 0.5) is None
    due = deadlines.due(waits, after_warning, 0.5)[f"late.scale_wait.{vid}"]
    assert (due.level, due.detail) == (
        "warning",
        "苏A11111 has been in the queue of scale scale1 for 50% of its 10 min target",
    )


def test_a_cleared_alert_says_what_happened() -> None:
    assert [
        deadlines.ended("苏A11111", t)
        for t in ("scale_wait", "bag_load_wait", "seal_lag", "window.payment")
    ] == [
        "苏A11111: the scale wait is over",
        "苏A11111: loading has started",
        "苏A11111: the seal is on or the visit has ended",
        "苏A11111: served",
    ]


def test_another_terminals_window_tickets_warn_here_under_their_terminals_name() -> None:
    """With plant-wide replication each terminal folds the others' window events per stream:
    two terminals' tickets of the same number are two waits, and each clears when served."""
    from agent.domain.window_services import PlantWindows
    from tests.agent.timeline import Timeline

    d = Driver()
    own, other = WindowBook(), PlantWindows()
    own.apply(d.t.event("window.arrived", **own.arrive("sales", "payment")))
    w2 = Timeline("w2", epoch="e7", start=d.t.wall)
    arrived = w2.event("window.arrived", window="sales", service="payment", ticket="sales-0001")
    assert other.apply(arrived) is True
    assert other.apply(w2.event("visit.note", text="x")) is False

    def tickets() -> list[dict[str, Any]]:
        mine = [
            {
                "ticket": t.ticket,
                "window": t.window,
                "service": t.service,
                "arrived_at": t.arrived_at,
            }
            for t in own.open.values()
        ]
        return mine + other.open_tickets()

    assert other.open_tickets() == [
        {
            "terminal": "w2",
            "ticket": "sales-0001",
            "window": "sales",
            "service": "payment",
            "arrived_at": arrived.at,
        }
    ]
    mine, theirs = "late.window.sales.sales-0001", "late.window.w2.sales.sales-0001"
    d.t.advance(3.99)
    assert levels(d, tickets()) == {}
    d.t.advance(0.01)
    assert levels(d, tickets()) == {mine: "warning", theirs: "warning"}
    d.t.advance(1 + MS)
    assert levels(d, tickets()) == {mine: "overdue", theirs: "overdue"}
    due = deadlines.due(deadlines.running([], tickets(), CFG), d.t.wall, 0.8)[theirs]
    assert due.detail == (
        "ticket sales-0001 of w2 has been waiting at the sales window (payment) longer than its"
        " 5 min target"
    )
    other.apply(w2.event("window.served", window="sales", service="payment", ticket="sales-0001"))
    assert levels(d, tickets()) == {mine: "overdue"}

"""The month by operator and post: the operators ledger's counts summed, window services in time,
visit stages, over scripted events of two terminals."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from agent.config import KpiConfig
from agent.domain import by_operator, ledgers
from agent.domain.events import Event
from tests.agent.timeline import Timeline

TZ = ZoneInfo("Asia/Shanghai")
NOV_2 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # 08:00 plant time
NOV_30 = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # 23:00 plant time, still November


def scripted() -> list[Event]:
    """A gate and a sales window over two days of November and one minute of December."""
    gate, sales = Timeline("g1", start=NOV_2), Timeline("w1", start=NOV_2)
    visit = {"visit": "v1", "operator": "0173"}
    events = [
        gate.event("operator.signed_in", operator="0173", post="gate"),
        gate.advance(1).event(
            "visit.arrived",
            **visit,
            plate="苏A12345",
            order="SO1",
            product="P.O 42.5",
            load="bagged",
            planned_kg=30000,
        ),
        gate.advance(1).event("visit.gate_in", **visit),
        gate.advance(1).event("operator.note", text="雨天", operator="0173"),
        gate.advance(60).event("visit.exited", **visit),
        gate.event("operator.signed_out", operator="0173", post="gate"),
        # by name on the gate terminal, nobody signed in: no post
        gate.advance(1).event("visit.cancelled", visit="v9", operator="王强"),
        sales.event("operator.signed_in", operator="李娜", post="sales"),
        sales.advance(1).event(
            "window.arrived", window="sales", service="payment", ticket="s-1", operator="李娜"
        ),
        # 5 minutes exactly: within the 5-minute target, as the KPI report judges it
        sales.advance(5).event(
            "window.served", window="sales", service="payment", ticket="s-1", operator="李娜"
        ),
        sales.event(
            "window.arrived", window="sales", service="plan_order", ticket="s-2", operator="李娜"
        ),
        sales.advance(7).event(
            "window.served", window="sales", service="plan_order", ticket="s-2", operator="李娜"
        ),
    ]
    sales.wall, gate.wall = NOV_30, NOV_30
    events += [
        sales.event("operator.signed_in", operator="李娜", post="sales"),
        sales.advance(1).event(
            "window.arrived", window="sales", service="payment", ticket="s-3", operator="李娜"
        ),
        # served in December by a colleague: neither the month's nor 李娜's
        sales.advance(60).event(
            "window.served", window="sales", service="payment", ticket="s-3", operator="张伟"
        ),
        gate.advance(2).event("operator.signed_in", operator="0173", post="gate"),
        gate.advance(1).event("visit.gate_in", visit="v2", operator="0173"),
    ]
    return events


def test_a_month_by_operator_and_post() -> None:
    m = by_operator.month(scripted(), 2026, 11, TZ, KpiConfig())
    zero = dict.fromkeys(by_operator.COUNTS, 0)
    assert m == {
        "month": "2026-11",
        "by": "operator",
        "rows": [
            {
                "operator": "0173",
                "post": "gate",
                "shifts": 2,
                "days": 2,
                **zero,
                "visits": 4,
                "notes": 1,
                "served": 0,
                "served_in_time": 0,
                "window": {},
                "stages": {"arrived": 1, "exited": 1, "gate_in": 2},
            },
            {
                "operator": "李娜",
                "post": "sales",
                "shifts": 2,
                "days": 2,
                **zero,
                "windows": 5,  # s-3 arrived on the 30th
                "served": 2,
                "served_in_time": 1,
                "window": {
                    "payment": {"served": 1, "within_target": 1},
                    "plan_order": {"served": 1, "within_target": 0},
                },
                "stages": {},
            },
            {
                "operator": "王强",
                "post": "",
                "shifts": 0,
                "days": 1,
                **zero,
                "visits": 1,
                "served": 0,
                "served_in_time": 0,
                "window": {},
                "stages": {"cancelled": 1},
            },
        ],
    }


def test_the_month_sums_the_days_operators_ledger() -> None:
    """Every count the day ledger has, summed over the month's days, is the month's count."""
    events = scripted()
    m = by_operator.month(events, 2026, 11, TZ, KpiConfig())
    first, last = by_operator.month_days(2026, 11)
    assert (first, last) == (date(2026, 11, 1), date(2026, 11, 30))
    summed: dict[tuple[str, str], dict[str, int]] = {}
    for n in range(1, 31):
        for r in ledgers.build("operators", events, date(2026, 11, n), TZ):
            s = summed.setdefault((r["operator"], r["post"]), dict.fromkeys(by_operator.COUNTS, 0))
            for k in by_operator.COUNTS:
                s[k] += r[k]
    assert {
        (r["operator"], r["post"]): {k: r[k] for k in by_operator.COUNTS} for r in m["rows"]
    } == (summed)


def test_a_tighter_target_and_an_empty_month() -> None:
    rows = by_operator.rows(
        scripted(), date(2026, 11, 2), date(2026, 11, 2), TZ, KpiConfig(window_payment_min=4)
    )
    assert [(r["operator"], r["served"], r["served_in_time"]) for r in rows] == [
        ("0173", 0, 0),
        ("李娜", 2, 0),
        ("王强", 0, 0),
    ]
    assert by_operator.month(scripted(), 2026, 10, TZ, KpiConfig())["rows"] == []

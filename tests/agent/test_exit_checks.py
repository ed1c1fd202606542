"""The gate's exit checks and broken bags per truck (agent/domain/exit_checks.py): each refused
with one sentence, let through with a reason that becomes a flag."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from agent.config import KpiConfig
from agent.domain import kpis
from tests.agent.test_visits import arrive
from tests.agent.timeline import Driver


def weighed(d: Driver, plate: str, load: str, net: int, planned: int = 30000) -> str:
    """A visit through tare and loading to its gross (net kg loaded)."""
    vid = arrive(d, plate, load=load, planned=planned)
    d.do("visit.gate_in", visit=vid)
    d.do("visit.queue", visit=vid)
    d.capture(15000)
    d.do("visit.loading_start", visit=vid, point="line1" if load == "bagged" else "bulk1")
    finish: dict[str, Any] = {"bags": net // 50} if load == "bagged" else {}
    d.do("visit.loading_finish", visit=vid, **finish)
    d.do("visit.queue", visit=vid)
    d.capture(15000 + net)
    return vid


def exited(d: Driver, vid: str, **req: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, e.data) for e in d.do("visit.exit", visit=vid, **req)]


def test_a_truck_never_weighed_needs_a_reason_and_the_reason_is_a_flag() -> None:
    d = Driver()
    vid = arrive(d, "苏A11111")
    d.do("visit.gate_in", visit=vid)
    assert d.refused("visit.exit", visit=vid) == (
        f"苏A11111 (visit {vid}) has no gross weighing;"
        " put it right or give the gate's reason to let it out"
    )
    assert exited(d, vid, reason="order cancelled by phone") == [
        (
            "visit.flagged",
            {
                "visit": vid,
                "check": "exit_no_gross",
                "detail": "has no gross weighing; the gate's reason: order cancelled by phone",
                "weighing": "",
            },
        ),
        (
            "visit.exited",
            {"visit": vid, "reason": "order cancelled by phone", "exit_checks": ["no_gross"]},
        ),
    ]
    assert d.p.visits[vid].exit_reason == "order cancelled by phone"


def test_an_unsealed_bulk_truck_is_refused_and_a_sealed_one_leaves() -> None:
    d = Driver()
    vid = weighed(d, "苏B22222", "bulk", 30000)
    assert d.refused("visit.exit", visit=vid) == (
        f"苏B22222 (visit {vid}) is a bulk truck that was never sealed;"
        " put it right or give the gate's reason to let it out"
    )
    d.do("visit.seal", visit=vid, seals=["S1"])
    assert exited(d, vid, seals_seen=["S1"]) == [
        ("visit.exited", {"visit": vid, "seals_seen": ["S1"]})
    ]


def test_net_outside_the_tolerance_of_the_order_is_refused_in_both_directions() -> None:
    d = Driver(kpi=KpiConfig(exit_tolerance_pct=2.0))
    low = weighed(d, "苏A11111", "bagged", 29350)  # 650 kg short of 30000: 2 % is 600
    assert d.refused("visit.exit", visit=low) == (
        f"苏A11111 (visit {low}) has a net of 29350 kg, outside the order's 30000 kg ± 2 %;"
        " put it right or give the gate's reason to let it out"
    )
    high = weighed(d, "苏A22222", "bagged", 30600)  # exactly at the tolerance: leaves
    assert exited(d, high) == [("visit.exited", {"visit": high})]
    out = exited(d, low, reason="customer takes less")
    assert [data["check"] for kind, data in out if kind == "visit.flagged"] == [
        "exit_net_off_order"
    ]


def test_a_product_different_from_the_order_is_refused() -> None:
    d = Driver()
    vid = weighed(d, "苏A11111", "bagged", 30000)
    assert d.refused("visit.exit", visit=vid, product_seen="P.C 32.5") == (
        f"苏A11111 (visit {vid}) carries P.C 32.5 but its order is for P.O 42.5;"
        " put it right or give the gate's reason to let it out"
    )
    assert exited(d, vid, product_seen="P.O 42.5") == [
        ("visit.exited", {"visit": vid, "product_seen": "P.O 42.5"})
    ]


def test_broken_bags_not_replaced_keep_the_truck_in_and_every_failure_is_named() -> None:
    d = Driver()
    vid = arrive(d, "苏A11111")
    d.do("visit.gate_in", visit=vid)
    name = f"苏A11111 (visit {vid})"
    assert d.refused("visit.broken_bags", visit=vid, found=2) == (
        f"{name} has not started loading; record loading-start first"
    )
    d.do("visit.loading_start", visit=vid, point="line1")
    assert d.refused("visit.broken_bags", visit=vid) == (
        "give the broken bags found or replaced (at least one)"
    )
    ev = d.do("visit.broken_bags", visit=vid, found=3, replaced=1)
    assert (ev[0].kind, ev[0].data) == (
        "visit.broken_bags",
        {"visit": vid, "found": 3, "replaced": 1},
    )
    assert d.refused("visit.broken_bags", visit=vid, replaced=3) == (
        f"{name} would have 4 broken bags replaced but only 3 found; record the bags found first"
    )
    d.do("visit.loading_finish", visit=vid, bags=600)
    assert d.refused("visit.exit", visit=vid, product_seen="P.C 32.5") == (
        f"{name} has no gross weighing, carries P.C 32.5 but its order is for P.O 42.5 and has"
        " 2 broken bags not replaced; put it right or give the gate's reason to let it out"
    )
    d.do("visit.broken_bags", visit=vid, replaced=2)
    assert d.p.visits[vid].to_dict()["broken_bags"] == {"found": 3, "replaced": 3}
    out = exited(d, vid, reason="weighed on the customer's scale")
    assert out[-1] == (
        "visit.exited",
        {"visit": vid, "reason": "weighed on the customer's scale", "exit_checks": ["no_gross"]},
    )


def test_a_bulk_truck_has_no_broken_bags() -> None:
    d = Driver()
    vid = arrive(d, "苏B22222", load="bulk")
    d.do("visit.gate_in", visit=vid)
    d.do("visit.loading_start", visit=vid, point="bulk1")
    assert d.refused("visit.broken_bags", visit=vid, found=1) == (
        f"苏B22222 (visit {vid}) is a bulk load; it has no bags"
    )


def test_the_kpi_report_counts_the_exit_flags() -> None:
    d = Driver()
    vid = arrive(d, "苏A11111")
    d.do("visit.gate_in", visit=vid)
    d.do("visit.exit", visit=vid, reason="turned back")
    report = kpis.compute(d.events, d.t.wall.date(), ZoneInfo("Asia/Shanghai"), KpiConfig())
    assert report["flags"]["exit_no_gross"] == 1

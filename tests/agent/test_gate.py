"""The gate ledger rules: release in arrival order (or with a reason), seal check at exit."""

from __future__ import annotations

from tests.agent.test_visits import arrive
from tests.agent.timeline import Driver


def bulk_sealed(d: Driver, plate: str, seals: list[str]) -> str:
    vid = arrive(d, plate, load="bulk")
    d.do("visit.gate_in", visit=vid)
    d.do("visit.queue", visit=vid)
    d.capture(15000)
    d.do("visit.loading_start", visit=vid, point="bulk1")
    d.do("visit.loading_finish", visit=vid)
    d.do("visit.queue", visit=vid)
    d.capture(45000)
    d.do("visit.seal", visit=vid, seals=seals)
    return vid


def test_release_in_arrival_order_or_with_a_recorded_reason() -> None:
    d = Driver()
    a = arrive(d, "苏A11111")
    b = arrive(d, "苏A22222")
    assert d.refused("visit.gate_in", visit=b) == (
        "苏A22222 (visit v2) is not next at the gate (苏A11111 arrived earlier);"
        " give a reason to release it out of order"
    )
    ev = d.do("visit.gate_in", visit=b, reason="bulk loader idle")
    assert (ev[0].kind, ev[0].data) == (
        "visit.gate_in",
        {"visit": b, "reason": "bulk loader idle", "ahead": ["苏A11111"]},
    )
    ev = d.do("visit.gate_in", visit=a)
    assert ev[0].data == {"visit": a}


def test_matching_seals_let_the_truck_out_in_any_order() -> None:
    d = Driver()
    vid = bulk_sealed(d, "苏B11111", ["S1", "S2"])
    assert d.refused("visit.exit", visit=vid) == (
        "苏B11111 (visit v1) is sealed; give the seal numbers the gate sees (seals_seen) to let it out"
    )
    ev = d.do("visit.exit", visit=vid, seals_seen="S2, S1")
    assert [(e.kind, e.data) for e in ev] == [
        ("visit.exited", {"visit": vid, "seals_seen": ["S2", "S1"]})
    ]


def test_a_seal_mismatch_is_flagged_and_the_exit_recorded() -> None:
    d = Driver()
    vid = bulk_sealed(d, "苏B11111", ["S1", "S2"])
    ev = d.do("visit.exit", visit=vid, seals_seen=["S1", "S9"])
    assert [(e.kind, e.data) for e in ev] == [
        (
            "visit.flagged",
            {
                "visit": vid,
                "check": "seal_mismatch",
                "detail": "sealed S1 S2; the gate saw S1 S9; missing S2; unknown S9",
                "weighing": "",
            },
        ),
        ("visit.exited", {"visit": vid, "seals_seen": ["S1", "S9"]}),
    ]


def test_seals_seen_for_a_truck_never_sealed_is_refused() -> None:
    d = Driver()
    vid = arrive(d, "苏B11111", load="bulk")
    d.do("visit.gate_in", visit=vid)
    assert d.refused("visit.exit", visit=vid, seals_seen=["S1"]) == (
        "苏B11111 (visit v1) was never sealed; there are no seals to confirm"
    )

"""The visit projection: stages, queues, validation, checks, matching, counter and rebuilds."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import KpiConfig
from agent.domain.marks import Mark, duration_ms
from agent.domain.visit import fold_visits
from agent.domain.visit_commands import CommandContext, command
from agent.domain.visit_inputs import Refusal
from agent.domain.visit_projection import Projection, rebuild
from tests.agent.timeline import Driver, Timeline

PLATE = "苏A12345"


def arrive(d: Driver, plate: str = PLATE, load: str = "bagged", planned: int = 30000) -> str:
    ev = d.do(
        "visit.arrive", plate=plate, order="SO1", product="P.O 42.5", load=load, planned_kg=planned
    )
    return str(ev[0].data["visit"])


def through_tare(d: Driver, plate: str = PLATE, tare: int = 15000, **kw: Any) -> str:
    vid = arrive(d, plate, **kw)
    d.t.advance(5)
    d.do("visit.gate_in", plate=plate)
    d.t.advance(2)
    d.do("visit.queue", plate=plate)
    d.t.advance(3)
    d.capture(tare)
    return vid


def kinds(d: Driver) -> list[str]:
    return [e.kind for e in d.events]


def test_bagged_visit_through_every_stage() -> None:
    d = Driver()
    vid = through_tare(d)
    d.t.advance(10)
    d.do("visit.loading_start", plate=PLATE, point="line1")
    d.t.advance(30)
    d.do("visit.loading_finish", plate=PLATE, bags=600, bag_kg=50)
    d.t.advance(1)
    d.do("visit.queue", visit=vid)
    d.t.advance(4)
    d.capture(45000)
    d.t.advance(2)
    d.do("visit.seal", plate=PLATE, seals=["S1", "S2"])
    d.t.advance(3)
    d.do("visit.exit", plate=PLATE)
    assert kinds(d) == [
        "visit.arrived",
        "visit.gate_in",
        "visit.queued_at_scale",
        "weighing.captured",
        "visit.weighed",
        "visit.loading_started",
        "visit.loading_finished",
        "visit.queued_at_scale",
        "weighing.captured",
        "visit.weighed",
        "visit.sealed",
        "visit.exited",
    ]
    assert d.p.snapshot() == {"open": [], "queue": [], "scale_queue": [], "unassigned": []}
    v = d.p.visits[vid].to_dict()
    assert v == {
        "visit": vid,
        "plate": PLATE,
        "order": "SO1",
        "product": "P.O 42.5",
        "load": "bagged",
        "planned_kg": 30000,
        "stage": "exited",
        "stage_since": "2026-11-29T02:00:00.000Z",
        "arrived_at": "2026-11-29T01:00:00.000Z",
        "gate_in_at": "2026-11-29T01:05:00.000Z",
        "queued_at": None,
        "scale": None,
        "tare_kg": 15000,
        "gross_kg": 45000,
        "net_kg": 30000,
        "bags": 600,
        "bag_kg": 50,
        "point": "line1",
        "seals": ["S1", "S2"],
        "broken_bags": {"found": 0, "replaced": 0},
        "exit_reason": "",
        "cancel_reason": None,
        "flags": [],
        "waits": {
            "tare_wait_min": 3.0,
            "gross_wait_min": 4.0,
            "bag_load_wait_min": 15.0,
            "loading_min": 30.0,
            "seal_lag_min": 7.0,
            "turnaround_min": 55.0,
        },
        "counter": None,
        "counted_bags": None,
        "finish_suggested": False,
        "hint": None,
    }


def test_queues_stage_and_unassigned() -> None:
    d = Driver()
    a = arrive(d, "苏A11111")
    d.t.advance(1)
    b = arrive(d, "苏A22222")
    d.t.advance(1)
    c = arrive(d, "苏A33333")
    d.do("visit.gate_in", visit=b, reason="loader idle")
    snap = d.p.snapshot()
    assert [v["visit"] for v in snap["open"]] == [a, b, c]
    assert [v["visit"] for v in snap["queue"]] == [a, c]
    assert d.p.queue_length() == 2
    d.do("visit.gate_in", visit=c, reason="loader idle")
    d.do("visit.queue", visit=c)
    d.do("visit.queue", visit=b)
    snap = d.p.snapshot()
    assert [(v["visit"], v["stage"], v["scale"]) for v in snap["scale_queue"]] == [
        (c, "scale_queue", "scale1"),
        (b, "scale_queue", "scale1"),
    ]
    # Two trucks queue at the scale: a capture waits for the operator.
    w = d.capture(14000, weighing="wx")
    assert d.p.snapshot()["unassigned"] == [
        {"weighing": w, "scale": "scale1", "weight_kg": 14000, "at": "2026-11-29T01:02:00.000Z"}
    ]
    d.do("visit.weigh", visit=b)  # the newest unassigned, as tare
    assert d.p.visits[b].tare_kg == 14000
    assert d.p.snapshot()["unassigned"] == []
    assert [v["visit"] for v in d.p.snapshot()["scale_queue"]] == [c]
    # Now exactly one is queued: the next capture is matched by itself.
    d.capture(16000)
    assert d.p.visits[c].tare_kg == 16000


def test_capture_at_another_scale_is_not_matched() -> None:
    d = Driver(ctx=CommandContext(scales=("scale1", "scale2"), default_scale="scale1"))
    vid = arrive(d)
    d.do("visit.gate_in", visit=vid)
    d.do("visit.queue", visit=vid, scale="scale2")
    d.capture(15000, scale="scale1", weighing="a")
    assert d.p.visits[vid].tare_kg is None
    d.capture(15100, scale="scale2", weighing="b")
    assert d.p.visits[vid].tare_kg == 15100
    assert [w["weighing"] for w in d.p.snapshot()["unassigned"]] == ["a"]


def test_refusals() -> None:
    d = Driver()
    assert d.refused(
        "visit.arrive", plate="AB12345", order="S", product="P", load="bulk", planned_kg=1000
    ) == (
        "plate 'AB12345' does not start with a province character such as 苏 or 京;"
        " enter it like 苏A12345"
    )
    assert (
        d.refused("visit.arrive", plate=PLATE, order="S", product="P", load="bulk", planned_kg=0)
        == "planned kg must be a whole number from 1 to 100000, not 0"
    )
    assert d.refused(
        "visit.arrive", plate=PLATE, order="S", product="P", load="bulk", planned_kg=100001
    ) == ("planned kg must be a whole number from 1 to 100000, not 100001")
    assert (
        d.refused(
            "visit.arrive", plate=PLATE, order="S", product="P", load="loose", planned_kg=1000
        )
        == "load must be 'bagged' or 'bulk', not 'loose'"
    )
    assert (
        d.refused("visit.arrive", plate=PLATE, product="P", load="bulk", planned_kg=1000)
        == "order is missing; give it"
    )
    vid = arrive(d)
    name = f"{PLATE} (visit {vid})"
    assert d.refused(
        "visit.arrive", plate="苏a-12345", order="S", product="P", load="bulk", planned_kg=1000
    ) == (f"plate {PLATE} already has an open visit {vid}; exit or cancel it first")
    assert d.refused("visit.gate_in", plate="苏B99999") == (
        "plate 苏B99999 has no open visit; record its arrival first"
    )
    assert d.refused("visit.gate_in", visit="nope") == (
        "there is no visit nope; list them with visits.list"
    )
    assert d.refused("visit.gate_in") == "name the visit with its id (visit) or its plate"
    assert d.refused("visit.queue", visit=vid) == (
        f"{name} is not through the gate yet; record gate-in first"
    )
    d.do("visit.gate_in", visit=vid)
    assert d.refused("visit.gate_in", visit=vid) == (
        f"{name} is already through the gate (since 2026-11-29T01:00:00.000Z)"
    )
    assert d.refused("visit.queue", visit=vid, scale="scale9") == (
        "there is no scale 'scale9'; the scales are scale1"
    )
    assert d.refused("visit.weigh", visit=vid) == (
        "there is no unassigned weighing; wait for the scale to capture one"
    )
    assert d.refused("visit.loading_finish", visit=vid, bags=10) == (
        f"{name} has not started loading; record loading-start first"
    )
    assert d.refused("visit.seal", visit=vid, seals=["S1"]) == (
        f"{name} has not finished loading; seal it after loading"
    )
    d.capture(15000, weighing="w-a")  # nobody queued: unassigned
    assert d.refused("visit.weigh", visit=vid, role="gross") == (
        f"{name} has no tare yet; weigh it empty first"
    )
    assert d.refused("visit.weigh", visit=vid, role="net") == (
        "role must be 'tare' or 'gross', not 'net'"
    )
    d.do("visit.weigh", visit=vid, weighing="w-a")
    assert d.refused("visit.weigh", visit=vid, weighing="w-a") == (
        f"weighing w-a is already assigned to {name}"
    )
    d.capture(14000, weighing="w-b")
    assert d.refused("visit.weigh", visit=vid, weighing="w-b", role="gross") == (
        f"the gross 14000 kg of {name} is not above its tare 15000 kg;"
        " assign it as a tare or pick another weighing"
    )
    assert d.refused("visit.exit", visit=vid) == (
        f"{name} has no gross weighing; put it right or give the gate's reason to let it out"
    )
    d.do("visit.loading_start", visit=vid, point="line1")
    assert d.refused("visit.loading_start", visit=vid, point="line1") == (
        f"{name} is already loading at line1; finish that first"
    )
    other = through_tare(d, "苏B54321", tare=15500)
    assert d.refused("visit.loading_start", visit=other, point="line1") == (
        f"point line1 is loading {name}; finish that first"
    )
    assert d.refused("visit.exit", visit=vid) == (
        f"{name} is still loading at line1; finish loading first"
    )
    assert d.refused("visit.loading_finish", visit=vid, point="line2", bags=1) == (
        f"{name} is loading at line1, not at line2"
    )
    assert d.refused("visit.loading_finish", visit=vid) == (
        f"give the number of bags loaded on {name}"
    )
    assert d.refused("visit.loading_finish", visit=vid, bags=0) == (
        "bags must be a whole number from 1 to 10000, not 0"
    )
    d.do("visit.loading_finish", visit=vid, bags=600)
    assert d.p.visits[vid].bag_kg == 50
    assert d.refused("visit.loading_finish", visit=vid, bags=600) == (
        f"{name} has already finished loading at line1"
    )
    assert d.refused("visit.loading_start", visit=vid, point="line1") == (
        f"{name} has already been loaded; correct it if that was wrong"
    )
    assert d.refused("visit.seal", visit=vid, seals=[]) == "give at least one seal number"
    assert d.refused("visit.seal", visit=vid, seals="S1,S1") == "a seal number is given twice"
    assert d.refused("visit.seal", visit=vid, seals=["S 1"]) == (
        "seal 'S 1' is not a seal number (letters, digits, '-', '/', '_')"
    )
    assert d.refused("visit.cancel", visit=vid) == "reason is missing; give it"
    d.do("visit.cancel", visit=vid, reason="wrong order")
    assert d.refused("visit.weigh", visit=vid, weighing="w-b") == (
        f"{name} was cancelled (wrong order); record a new arrival"
    )
    assert d.refused("visit.cancel", visit=vid, reason="again") == (
        f"{name} was cancelled (wrong order); record a new arrival"
    )
    # The plate is free again for a new visit.
    assert arrive(d) != vid


def test_bulk_visit_has_no_bags() -> None:
    d = Driver()
    vid = through_tare(d, load="bulk")
    d.do("visit.loading_start", visit=vid, point="bulk1")
    assert d.refused("visit.loading_finish", visit=vid, bags=3) == (
        f"{PLATE} (visit {vid}) is a bulk load; it has no bags"
    )
    d.do("visit.loading_finish", visit=vid)
    assert (d.p.visits[vid].bags, d.p.visits[vid].bag_kg) == (None, None)


def test_exit_leaves_and_exited_refuses() -> None:
    d = Driver()
    vid = arrive(d)
    d.do("visit.gate_in", visit=vid)
    d.do("visit.exit", visit=vid, reason="turned back")
    assert d.refused("visit.seal", visit=vid, seals=["S1"]) == (
        f"{PLATE} (visit {vid}) has already left at 2026-11-29T01:00:00.000Z"
    )


# --- checks -----------------------------------------------------------------------------------


def visit_with_tare(d: Driver, tare: int) -> str:
    vid = through_tare(d, tare=tare)
    d.do("visit.cancel", visit=vid, reason="test history")
    return vid


def flags_of(d: Driver, vid: str) -> list[dict[str, str]]:
    return list(d.p.visits[vid].to_dict()["flags"])


def test_tare_fluctuation_needs_history_and_tolerance() -> None:
    d = Driver()
    first = [visit_with_tare(d, t) for t in (15000, 15040)]
    third = through_tare(d, tare=16000)  # only 2 previous tares: no check
    assert flags_of(d, third) == []
    d.do("visit.cancel", visit=third, reason="x")
    # Previous: 15000, 15040, 16000 → median 15040; 1 % is 150.4 kg, more than 100 kg.
    within = through_tare(d, tare=15190)
    assert flags_of(d, within) == []
    d.do("visit.cancel", visit=within, reason="x")
    # Previous (last 5): 15000, 15040, 16000, 15190 → median 15115.
    out = through_tare(d, tare=15300)
    assert flags_of(d, out) == [
        {
            "check": "tare_fluctuation",
            "detail": "tare 15300 kg differs from the reference 15115 kg (median of 4 previous"
            " tares) by 185 kg, more than 151.15 kg",
        }
    ]
    assert first


def test_tare_fluctuation_uses_kg_floor_and_config() -> None:
    cfg = KpiConfig(
        tare_tolerance_kg=200, tare_tolerance_pct=0.5, tare_min_history=2, tare_history=2
    )
    d = Driver(kpi=cfg)
    for t in (9000, 20000, 10000):
        visit_with_tare(d, t)
    # Reference: median of the last 2 (20000, 10000) = 15000; allowed max(200, 75) = 200.
    vid = through_tare(d, tare=15200)
    assert flags_of(d, vid) == []
    d.do("visit.cancel", visit=vid, reason="x")
    vid = through_tare(d, tare=10500)  # last 2: 10000, 15200 → 12600
    assert flags_of(d, vid) == [
        {
            "check": "tare_fluctuation",
            "detail": "tare 10500 kg differs from the reference 12600 kg (median of 2 previous"
            " tares) by 2100 kg, more than 200 kg",
        }
    ]


def load_and_weigh(d: Driver, vid: str, gross: int, bags: int | None = 600) -> None:
    d.do("visit.loading_start", visit=vid, point="line1")
    if bags is None:
        d.do("visit.loading_finish", visit=vid)
    else:
        d.do("visit.loading_finish", visit=vid, bags=bags, bag_kg=50)
    d.do("visit.queue", visit=vid)
    d.capture(gross)


@pytest.mark.parametrize(
    ("load", "gross", "bags", "flags"),
    [
        ("bagged", 45000, 600, []),
        ("bagged", 45300, 600, []),  # exactly 1 % over: allowed
        (
            "bagged",
            45301,
            600,
            [
                {
                    "check": "bagged_overweight",
                    "detail": "net 30301 kg exceeds 600 bags × 50 kg = 30000 kg by more than 1 %",
                }
            ],
        ),
        ("bagged", 42000, 540, []),  # net 27000 = 90 % of 30000: not under
        (
            "bagged",
            41999,
            540,
            [
                {
                    "check": "underloaded",
                    "detail": "net 26999 kg is below 90 % of the planned 30000 kg",
                }
            ],
        ),
        ("bulk", 46000, None, []),  # bulk trucks have no bag check
        (
            "bulk",
            40000,
            None,
            [
                {
                    "check": "underloaded",
                    "detail": "net 25000 kg is below 90 % of the planned 30000 kg",
                }
            ],
        ),
    ],
)
def test_net_checks(load: str, gross: int, bags: int | None, flags: list[dict[str, str]]) -> None:
    d = Driver()
    vid = through_tare(d, load=load)
    load_and_weigh(d, vid, gross, bags)
    assert flags_of(d, vid) == flags
    assert [e.data["weighing"] for e in d.events if e.kind == "visit.flagged"] == (
        [d.p.visits[vid].last("gross").weighing] * len(flags)  # type: ignore[union-attr]
    )


def test_a_check_is_raised_once_and_again_after_a_correction() -> None:
    d = Driver()
    vid = through_tare(d)
    load_and_weigh(d, vid, 41000)
    assert [f["check"] for f in flags_of(d, vid)] == ["underloaded"]
    d.do("visit.seal", visit=vid, seals=["S1"])
    assert [f["check"] for f in flags_of(d, vid)] == ["underloaded"]
    arrived = d.events[0]
    d.do(
        "visit.correct",
        target_event=arrived.id,
        field="planned_kg",
        new="20000",
        reason="order changed",
        operator="li",
    )
    assert d.p.visits[vid].planned_kg == 20000
    gross = next(e for e in d.events if e.kind == "visit.weighed" and e.data["role"] == "gross")
    d.do(
        "visit.correct",
        target_event=gross.id,
        field="weight_kg",
        new=50000,
        reason="misread",
        operator="li",
    )
    assert d.p.visits[vid].net_kg == 35000
    assert [f["check"] for f in flags_of(d, vid)] == ["underloaded", "bagged_overweight"]
    correction = [e.data for e in d.events if e.kind == "operator.corrected"][-1]
    assert correction == {
        "target_event": gross.id,
        "visit": vid,
        "field": "weight_kg",
        "old": 41000,
        "new": 50000,
        "reason": "misread",
        "operator": "li",
    }


def test_correct_refusals_and_plate() -> None:
    d = Driver()
    vid = arrive(d)
    ev = d.events[0]
    assert d.refused(
        "visit.correct", target_event="x:y:9", field="plate", new="苏B1", reason="r", operator="o"
    ) == ("there is no event x:y:9 in this terminal's database; give an id shown by tally events")
    assert d.refused(
        "visit.correct", target_event=ev.id, field="visit", new="v9", reason="r", operator="o"
    ) == (
        "field 'visit' of a visit.arrived event cannot be corrected;"
        " correctable: plate, order, product, load, planned_kg"
    )
    assert d.refused(
        "visit.correct", target_event=ev.id, field="plate", new="苏B1", reason="r", operator="o"
    ).startswith("plate '苏B1' is not a plate")
    assert (
        d.refused("visit.correct", target_event=ev.id, field="plate", new="苏B11111", reason="r")
        == "operator is missing; give it"
    )
    d.do(
        "visit.correct",
        target_event=ev.id,
        field="plate",
        new="苏b·11111",
        reason="typo",
        operator="wang",
    )
    assert d.p.find({"plate": "苏B11111"}).visit == vid
    assert d.refused("visit.gate_in", plate=PLATE) == (
        f"plate {PLATE} has no open visit; record its arrival first"
    )
    gate = d.do("visit.gate_in", visit=vid)[0]
    assert (
        d.refused(
            "visit.correct", target_event=gate.id, field="at", new="x", reason="r", operator="o"
        )
        == "a visit.gate_in event cannot be corrected"
    )


def test_an_event_of_a_visit_no_longer_held_is_corrected_as_the_store_gives_it() -> None:
    # the projection keeps the latest closed visits; the service reads an older visit's event
    # from the store, its corrections so far applied, and hands it over as `stored`
    d = Driver()
    d.p.keep_closed = 1
    first = arrive(d)
    d.do("visit.cancel", visit=first, reason="wrong gate")
    arrival = d.events[0]
    d.do("visit.arrive", plate="苏B12345", order="SO2", product="P", load="bulk", planned_kg=9)
    d.do("visit.cancel", visit=d.events[-1].data["visit"], reason="r")
    assert first not in d.p.visits
    req = {"target_event": arrival.id, "field": "planned_kg", "reason": "order amended"}
    req |= {"operator": "li"}
    as_stored = dataclasses.replace(arrival, data={**arrival.data, "planned_kg": 25_000})
    [(kind, data)] = command(
        d.p, "visit.correct", {**req, "new": 24_000}, CommandContext(stored=as_stored)
    )
    assert (kind, data) == (
        "operator.corrected",
        {"target_event": arrival.id, "visit": first, "field": "planned_kg", "old": 25_000,
         "new": 24_000, "reason": "order amended", "operator": "li"},
    )  # fmt: skip
    with pytest.raises(Refusal, match=r"^planned_kg is already 25000; nothing to correct$"):
        command(d.p, "visit.correct", {**req, "new": 25_000}, CommandContext(stored=as_stored))
    with pytest.raises(Refusal, match=r"^there is no event "):  # stored names another event
        command(d.p, "visit.correct", {**req, "target_event": "x:y:9", "new": 1},
                CommandContext(stored=as_stored))  # fmt: skip
    gate = dataclasses.replace(arrival, kind="visit.gate_in", data={"visit": first})
    with pytest.raises(Refusal, match=r"^a visit.gate_in event cannot be corrected$"):
        command(d.p, "visit.correct", {**req, "new": 1}, CommandContext(stored=gate))


# --- the loading counter ------------------------------------------------------------------------


def test_loading_counter_counts_and_suggests_finish() -> None:
    d = Driver(
        ctx=CommandContext(scales=("scale1",), default_scale="scale1", packer_bag_kg={"line1": 50})
    )
    vid = through_tare(d, planned=1000)  # 20 bags of 50 kg
    d.p.loaded["line1"] = 7000
    ev = d.do("visit.loading_start", visit=vid, point="line1")[0]
    assert ev.data == {
        "visit": vid,
        "point": "line1",
        "counter": {"packer": "line1", "from": 7000, "bag_kg": 50},
    }
    d.p.loaded["line1"] = 7012
    v = d.p.snapshot()["open"][0]
    assert (v["counter"], v["counted_bags"], v["finish_suggested"], v["hint"]) == (
        {"packer": "line1", "from": 7000, "planned_bags": 20},
        12,
        False,
        None,
    )
    d.p.loaded["line1"] = 7020
    v = d.p.snapshot()["open"][0]
    assert (v["counted_bags"], v["finish_suggested"], v["hint"]) == (
        20,
        True,
        f"20 of 20 planned bags loaded on {PLATE}; finish loading",
    )
    # Offline (a rebuild) the live fields are empty.
    assert d.p.snapshot(live=False)["open"][0]["counted_bags"] is None
    d.do("visit.loading_finish", visit=vid)  # bags from the counter
    assert (d.p.visits[vid].bags, d.p.visits[vid].bag_kg) == (20, 50)


# --- durations --------------------------------------------------------------------------------


def test_duration_monotonic_within_a_boot_else_wall() -> None:
    t = Timeline()
    a = Mark.of(t.event("x"))
    t.advance(10).step_wall(-60)  # the wall clock is set back an hour
    b = Mark.of(t.event("x"))
    assert duration_ms(a, b) == 600_000
    t.reboot("b2").advance(5)
    c = Mark.of(t.event("x"))
    assert duration_ms(b, c) == 300_000  # another boot: wall time
    other = Timeline(terminal="pk1", start=t.wall)
    other.advance(1)
    assert duration_ms(c, Mark.of(other.event("x"))) == 60_000


# --- rebuild == live --------------------------------------------------------------------------

PLATES = ["苏A11111", "苏A22222", "京B33333"]
OPS = st.sampled_from(
    ["next"] * 30
    + [
        "arrive",
        "visit.gate_in",
        "visit.queue",
        "capture",
        "visit.weigh",
        "visit.loading_start",
        "visit.loading_finish",
        "visit.seal",
        "visit.exit",
        "visit.cancel",
        "loaded",
    ]
    + ["correct"] * 4
)
STEP = st.tuples(
    OPS,
    st.sampled_from(PLATES),
    st.sampled_from(["bagged", "bulk"]),
    st.integers(8000, 60000),
    st.sampled_from([None, "tare", "gross"]),
    st.integers(0, 60),
)


NEXT = {
    "arrived": "visit.gate_in",
    "gated_in": "visit.queue",
    "scale_queue": "capture",
    "tared": "visit.loading_start",
    "loading": "visit.loading_finish",
    "loaded": "visit.queue",
    "weighed": "visit.seal",
    "sealed": "visit.exit",
}


def _next_step(d: Driver, plate: str) -> str:
    """The natural next command for the plate's open visit (or a new arrival)."""
    vid = d.p.open_by_plate.get(plate)
    if vid is None:
        return "arrive"
    return NEXT.get(d.p.visits[vid].stage, "arrive")


@settings(max_examples=150)
@given(st.lists(STEP, min_size=20, max_size=80))
def test_live_projection_equals_rebuild(steps: list[tuple[Any, ...]]) -> None:
    kpi = KpiConfig(tare_min_history=1)
    d = Driver(
        kpi=kpi,
        ctx=CommandContext(scales=("scale1",), default_scale="scale1", packer_bag_kg={"line1": 50}),
    )
    for op, plate, load, kg, role, minutes in steps:
        d.t.advance(minutes)
        if op == "next":
            op = _next_step(d, plate)
        if op == "capture":
            d.capture(kg)
            continue
        if op == "loaded":
            d.p.loaded["line1"] = d.p.loaded.get("line1", 0) + minutes
            continue
        req: dict[str, Any] = {"plate": plate}
        if op == "arrive":
            op = "visit.arrive"
            req.update(order="SO", product="P", load=load, planned_kg=kg // 2)
        elif op == "visit.weigh":
            req["role"] = role
        elif op == "visit.loading_start":
            req["point"] = "line1"
        elif op == "visit.loading_finish":
            vid = d.p.open_by_plate.get(plate)
            if vid and d.p.visits[vid].load == "bagged":
                req.update(bags=kg // 100)
        elif op == "visit.seal":
            req["seals"] = [f"S{kg}"]
        elif op == "visit.cancel":
            req["reason"] = "test"
        elif op == "correct":
            # Corrections of open visits' facts: they may call for new checks.
            targets = [
                e
                for e in d.events
                if e.kind in ("visit.weighed", "visit.arrived") and d.p.visits[e.data["visit"]].open
            ]
            if not targets:
                continue
            target = targets[kg % len(targets)]
            name = "weight_kg" if target.kind == "visit.weighed" else "planned_kg"
            op = "visit.correct"
            req = {
                "target_event": target.id,
                "field": name,
                "new": kg,
                "reason": "r",
                "operator": "o",
            }
        try:
            d.do(op, **req)
        except Exception as exc:
            assert type(exc).__name__ == "Refusal", exc
    rebuilt = rebuild(d.events, kpi)
    assert rebuilt.snapshot(live=False) == d.p.snapshot(live=False)
    assert rebuilt.last_seq == d.p.last_seq
    assert rebuilt.reactions() == []  # nothing was left undone live
    # The reports' batch fold (KPIs, ledgers) sees every visit as the live projection does.
    folded = {vid: v.to_dict() for vid, v in fold_visits(d.events).items()}
    assert folded == {vid: v.to_dict() for vid, v in d.p.visits.items()}


def test_rebuild_of_an_empty_store() -> None:
    assert Projection().snapshot() == {"open": [], "queue": [], "scale_queue": [], "unassigned": []}


def test_drivers_expected_waits_follow_the_recent_pace() -> None:
    from agent.domain.visit_projection import release_interval_min

    d = Driver()
    plates = [f"苏A1111{i}" for i in range(8)]
    for plate in plates:
        arrive(d, plate)
    # before the day shows its pace: the default of 5 minutes per release
    assert [v["waits"]["expected_min"] for v in d.p.snapshot()["queue"]] == [
        5.0 * n for n in range(1, 9)
    ]
    for i, plate in enumerate(plates[:6]):
        d.t.advance(2 if i < 5 else 70)  # 2-minute gaps, then a 70-minute pause (not pace)
        d.do("visit.gate_in", plate=plate)
    assert release_interval_min(d.p.releases["gate"], 5.0) == 2.0
    assert [(v["plate"], v["waits"]["expected_min"]) for v in d.p.snapshot()["queue"]] == [
        ("苏A11116", 2.0),
        ("苏A11117", 4.0),
    ]

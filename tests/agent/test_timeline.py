"""The plant timeline: the same events from several terminals, in any arrival order, fold to
the same visits and the same KPI report."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import KpiConfig
from agent.domain import kpis, timeline
from agent.domain.events import Event, unpack
from agent.domain.kinds import Kind
from agent.domain.timeline import Timeline, fold, order_key
from agent.domain.visit_commands import CommandContext, command
from agent.domain.visit_projection import Projection
from tests.agent.timeline import BASE
from tests.agent.timeline import Timeline as Clock

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 29)


class Plant:
    """Three terminals recording one plant's visits, each stage on the terminal that does it."""

    def __init__(self) -> None:
        self.clocks = {t: Clock(t, f"{t}-e", f"{t}-b") for t in ("gate1", "wb1", "pk1")}
        self.p = Projection()
        self.events: list[Event] = []
        self.ids = 0

    def advance(self, minutes: float) -> None:
        for c in self.clocks.values():
            c.advance(minutes)

    def do(self, terminal: str, op: str, **req: Any) -> None:
        self.ids += 1
        ctx = CommandContext(
            new_visit_id=f"v{self.ids}", scales=("scale1",), default_scale="scale1"
        )
        for kind, data in command(self.p, op, req, ctx):
            self.append(terminal, kind, data)
        self.advance(1)

    def append(self, terminal: str, kind: str, data: dict[str, Any]) -> None:
        ev = self.clocks[terminal].event(kind, **data)
        self.events.append(ev)
        self.p.apply(ev)


def plant_day(plates: list[str], plant: Plant | None = None) -> list[Event]:
    """Visits through gate1, wb1 and pk1 (stages interleaved between the trucks)."""
    plant = plant or Plant()
    for n, plate in enumerate(plates):
        plant.do(
            "gate1",
            "visit.arrive",
            plate=plate,
            order=f"SO{n}",
            load="bagged",
            planned_kg=30000,
            product="P.O 42.5",
        )
    for plate in plates:
        plant.do("gate1", "visit.gate_in", plate=plate)
        plant.do("wb1", "visit.queue", plate=plate)
        plant.append(
            "wb1",
            "weighing.captured",
            {"weighing": f"t-{plate}", "scale": "scale1", "weight_kg": 15000},
        )
        plant.do("wb1", "visit.weigh", plate=plate, weighing=f"t-{plate}")
    for plate in plates[::2]:
        plant.do("pk1", "visit.loading_start", plate=plate, point="line1")
        plant.do("pk1", "visit.loading_finish", plate=plate, bags=600, bag_kg=50)
        plant.do("wb1", "visit.queue", plate=plate)
        plant.append(
            "wb1",
            "weighing.captured",
            {"weighing": f"g-{plate}", "scale": "scale1", "weight_kg": 45000},
        )
        plant.do("wb1", "visit.weigh", plate=plate, weighing=f"g-{plate}")
        plant.do("gate1", "visit.exit", plate=plate)
    return plant.events


def partition(plant: Plant) -> list[Event]:
    """Then the terminals cannot see each other: pk1 (its clock 3 min behind) loads a truck
    by plate and order before gate1's arrival of it reaches it, gate1 and wb1 both register
    one truck, and pk1 starts loading a truck gate1 has cancelled."""
    pk1 = plant.clocks["pk1"]
    truck = {"product": "P.O 42.5", "load": "bagged", "planned_kg": 20000}
    plant.append(
        "gate1", "visit.arrived", {"visit": "p1", "plate": "苏C1", "order": "SO7", **truck}
    )
    pk1.step_wall(-3)
    by_order = {"plate": "苏C1", "order": "SO7"}
    plant.append("pk1", "visit.loading_started", {**by_order, "point": "line2"})
    plant.append("gate1", "visit.gate_in", {"visit": "p1"})
    plant.advance(1)
    plant.append("pk1", "visit.loading_finished", {**by_order, "point": "line2", "bags": 400})
    for t, vid in (("gate1", "m-gate"), ("wb1", "m-wb")):
        plant.append(t, "visit.arrived", {"visit": vid, "plate": "苏C2", "order": "SO8", **truck})
        plant.advance(1)
    plant.append("wb1", "visit.queued_at_scale", {"visit": "m-wb", "scale": "scale1"})
    plant.append("gate1", "visit.gate_in", {"visit": "m-gate"})
    plant.append(
        "gate1", "visit.arrived", {"visit": "c1", "plate": "苏C3", "order": "SO9", **truck}
    )
    plant.append("gate1", "visit.cancelled", {"visit": "c1", "reason": "wrong order"})
    pk1.step_wall(5)
    plant.append(
        "pk1", "visit.loading_started", {"plate": "苏C3", "order": "SO9", "point": "line1"}
    )
    return plant.events


PLATES = ["苏A10001", "苏A10002", "苏A10003", "苏B20001"]
EVENTS = plant_day(PLATES)
PLANT = Plant()
plant_day(PLATES, PLANT)
ALL = partition(PLANT)


def test_the_partition_folds_to_joined_and_merged_visits() -> None:
    p = fold(ALL, Projection)
    assert {vid: p.visits[vid].to_dict()["stage"] for vid in ("p1", "m-gate", "c1")} == {
        "p1": "loaded",
        "m-gate": "scale_queue",
        "c1": "cancelled",
    }
    assert [vid for vid in p.visits if vid.startswith(("m-", "pending:"))] == ["m-gate"]
    assert p.visits["m-gate"].merged_from == ["m-wb"]
    assert p.visits["m-gate"].queued is not None
    assert [f.check for f in p.visits["p1"].conflicts] == ["before_gate_in"]
    assert [f.check for f in p.visits["c1"].conflicts] == ["after_close"]
    report = kpis.compute(ALL, DAY, TZ, KpiConfig())
    planned = report["daily_completion"]["planned_t"]
    assert (
        planned
        == kpis.compute([e for e in ALL if e.data.get("visit") != "m-wb"], DAY, TZ, KpiConfig())[
            "daily_completion"
        ]["planned_t"]
    )  # the merged truck counts once


def streams(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for ev in events:
        out.setdefault(ev.terminal, []).append(ev)
    return out


def test_the_plant_day_touches_every_terminal() -> None:
    assert sorted(streams(EVENTS)) == ["gate1", "pk1", "wb1"]
    assert [e.at for e in EVENTS] == sorted(e.at for e in EVENTS)


def reference() -> Projection:
    return fold(EVENTS, Projection)


def test_fold_equals_the_projection_the_commands_were_checked_against() -> None:
    p = Plant()
    for ev in EVENTS:
        p.p.apply(ev)
    assert reference().snapshot(live=False) == p.p.snapshot(live=False)


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations([t for t, evs in streams(ALL).items() for _ in evs]),
    batch=st.integers(1, 7),
    keep=st.integers(1, 30),
    hot=st.integers(1, 8),
    block=st.integers(1, 4),
)
def test_any_interleaving_of_the_streams_folds_to_the_same_visits_and_kpis(
    order: list[str], batch: int, keep: int, hot: int, block: int
) -> None:
    """Streams arrive in any interleaving, in batches; each stream stays in seq order (the
    puller stores contiguous runs only). A small snapshot tail forces refolds, and a small
    packed part of it puts late events among the compressed blocks."""
    queues = {t: list(evs) for t, evs in streams(ALL).items()}
    arrived = [queues[t].pop(0) for t in order]
    held: list[Event] = []
    tl = Timeline(Projection, keep=keep, hot=hot, block=block)
    for i in range(0, len(arrived), batch):
        chunk = arrived[i : i + batch]
        held.extend(chunk)
        tl.add(chunk)
        if tl.stale:
            tl.refold(sorted(held, key=order_key))  # as the store gives them
        assert tl.proj.snapshot(live=False) == fold(held, Projection).snapshot(live=False)
        # the snapshot is what its events fold to, whatever the live projection changed since
        base_key = tl.base_key
        after = [e for e in held if base_key is None or order_key(e) > base_key]
        assert list(tl.tail_events()) == sorted(after, key=order_key)
        assert len(tl.tail) <= hot and tl.tail_size == len(after)
        if base_key is not None:
            settled = fold([e for e in held if order_key(e) <= base_key], Projection)
            assert tl.base.visits == settled.visits
    assert tl.proj.snapshot(live=False) == fold(ALL, Projection).snapshot(live=False)
    assert {v: s.to_dict() for v, s in tl.proj.visits.items()} == {
        v: s.to_dict() for v, s in fold(ALL, Projection).visits.items()
    }
    cfg = KpiConfig()
    assert kpis.compute(arrived, DAY, TZ, cfg) == kpis.compute(ALL, DAY, TZ, cfg)


def test_a_late_event_among_the_compressed_blocks_goes_into_its_block_alone() -> None:
    """An event that sorts among the tail's compressed events is put into the block it sorts
    into: the other blocks stay compressed and the newest stay packed one by one, and the
    replay folds the same as every event in order."""
    history = sorted(ALL, key=order_key)
    late = history.pop(1)  # it sorts into the oldest block
    tl = Timeline(Projection, keep=len(ALL), hot=4, block=2)
    tl.add(history)
    blocks, hot = list(tl.cold), list(tl.tail)
    assert len(blocks) >= 3 and len(hot) <= 4
    assert tl.add([late]) is True and tl.replays == 1
    assert tl.cold[1:] == blocks[1:] and tl.tail == hot  # only the first block was opened
    assert list(tl.tail_events()) == sorted(ALL, key=order_key)
    assert tl.proj.snapshot(live=False) == fold(ALL, Projection).snapshot(live=False)
    assert tl.add([late]) is False and tl.replays == 1  # found in its block by its key


class Failing(Projection):
    """A projection whose fold raises while `broken` is set."""

    broken = False

    def apply(self, ev: Event) -> None:
        if Failing.broken:
            raise RuntimeError("a fault in the fold")
        super().apply(ev)


def test_a_replay_that_fails_leaves_the_timeline_to_be_refolded() -> None:
    """A replay lets the live projection go before it folds the tail again (never two held at
    once); when the fold fails, the timeline asks for a refold, which makes it whole."""
    history = sorted(ALL, key=order_key)
    late = history.pop(5)
    tl = Timeline(Failing, keep=len(ALL))
    tl.add(history)
    Failing.broken = True
    try:
        with pytest.raises(RuntimeError):
            tl.add([late])
    finally:
        Failing.broken = False
    assert tl.stale
    tl.refold(sorted(ALL, key=order_key))
    assert not tl.stale
    assert tl.proj.snapshot(live=False) == fold(ALL, Projection).snapshot(live=False)


def test_the_order_key_is_time_then_stream_then_seq() -> None:
    a, b = EVENTS[0], EVENTS[1]
    assert order_key(a) == (a.at, "gate1", "gate1-e", 1)
    assert sorted([b, a], key=order_key) == [a, b]
    assert BASE.year == DAY.year


def test_the_snapshot_is_kept_frozen_and_a_later_stage_changes_only_the_live_projection() -> None:
    """The snapshot is kept as a compressed pickle and thawed afresh for each use: a stage that
    comes later for a visit it holds changes the live projection, never the snapshot, and the
    thawed snapshot is equal, field by field, to a fold of the events it took."""
    gate = Clock("gate1", "gate1-e", "gate1-b")
    truck = {"product": "P.O 42.5", "load": "bagged", "planned_kg": 20000}
    events = [
        gate.event("visit.arrived", visit="v1", plate="苏C1", order="SO1", **truck),
        gate.event("visit.cancelled", visit="v1", reason="wrong order"),
    ]
    for n in range(2, 6):
        gate.advance(1)
        events.append(
            gate.event("visit.arrived", visit=f"v{n}", plate=f"苏C{n}", order="SO", **truck)
        )
    tl = Timeline(Projection, keep=2)
    tl.add(events)
    assert isinstance(tl.frozen, bytes) and tl.base_key == order_key(events[3])
    assert tl.base.visits == fold(events[:4], Projection).visits
    assert tl.base is not tl.base  # a new copy each time: changing one changes nothing kept
    before = tl.frozen

    gate.advance(1)
    late = gate.event("visit.gate_in", visit="v1")
    tl.add([late])
    assert tl.frozen == before
    whole = fold([*events, late], Projection)
    assert tl.proj.visits == whole.visits
    assert tl.proj.visits["v1"] != tl.base.visits["v1"]


def test_events_folded_already_change_nothing_and_replay_nothing() -> None:
    """A batch sent again (a peer's retry after a lost answer) is recognised in the tail by the
    events' place in the timeline: nothing changes and nothing is folded again."""
    tl = Timeline(Projection, keep=len(EVENTS))  # every event stays in the tail
    assert tl.add(EVENTS) is True
    before = tl.proj.snapshot(live=False)
    assert tl.add(EVENTS[3:9]) is False
    assert tl.add([EVENTS[-1], EVENTS[0]]) is False
    assert (tl.replays, tl.tail_size, tl.stale) == (0, len(EVENTS), False)
    assert tl.proj.snapshot(live=False) == before


def test_the_tail_keeps_events_packed_and_a_replay_folds_them_as_they_were() -> None:
    """The tail keeps each event as bytes: unpacked, an event appended here (its kind a `Kind`,
    a `Kind` in its data) is equal to the original, and a replay for a late event folds the
    tail to what the events fold to in order, holding the objects it was given."""
    gate, scale = Clock("gate1", "gate1-e", "gate1-b"), Clock("wb1", "wb1-e", "wb1-b")
    truck = {"plate": "苏C7", "order": "SO7", "load": "bulk", "planned_kg": 30_000}
    arrived = gate.event(Kind.VISIT_ARRIVED, visit="v7", **truck)
    scale.advance(3)
    weighed = scale.event("visit.weighed", visit="v7", weighing="t7", role="tare", weight_kg=15_000)
    gate.advance(9)
    gone = gate.event(Kind.VISIT_CANCELLED, visit="v7", reason=Kind.VISIT_CANCELLED)
    tl = Timeline(Projection)
    tl.add([arrived, gone])
    assert all(type(p) is bytes for p in tl.tail)
    assert list(tl.tail_events()) == [arrived, gone] and tl.last_key == order_key(gone)
    assert tl.add([weighed]) is True and tl.replays == 1  # between the two: a replay
    assert list(tl.tail_events()) == [arrived, weighed, gone]
    assert tl.proj.snapshot(live=False) == fold([arrived, weighed, gone], Projection).snapshot(
        live=False
    )
    assert any(ev is weighed for _, ev in tl.proj.visits["v7"].events)
    assert tl.add([weighed]) is False and tl.replays == 1  # found in the tail by its key


def test_a_refold_takes_a_long_history_a_page_at_a_time_and_folds_it_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restart refolds everything stored: the events are drawn a page at a time while the
    earlier ones are already folded, and the tail is cut back after each page, so neither the
    history nor a long tail is held at once."""
    monkeypatch.setattr(timeline, "REFOLD_PAGE", 3)
    history = sorted(ALL, key=order_key)
    place = {ev.id: n for n, ev in enumerate(history)}
    keep = 5
    tl = Timeline(Projection, keep=keep)
    ahead, tails = [], []  # at each event drawn: how far past the newest folded; the tail

    def stored() -> Iterator[Event]:
        for n, ev in enumerate(history):
            ahead.append(n - (place[unpack(tl.tail[-1]).id] if tl.tail else -1))
            tails.append(tl.tail_size)
            yield ev

    tl.refold(stored())
    assert not tl.stale and keep <= tl.tail_size <= keep + 3
    assert tl.proj.snapshot(live=False) == fold(ALL, Projection).snapshot(live=False)
    settled = fold(history[: -tl.tail_size], Projection)
    assert tl.base.visits == settled.visits and tl.building is None
    assert len(history) > 4 * keep and max(ahead) == 3 and max(tails) == keep + 3


@pytest.mark.parametrize("own", ["gate1", "wb1", "pk1"])
def test_a_refold_leaves_the_live_projection_what_a_fold_leaves_it_to_react_to(
    monkeypatch: pytest.MonkeyPatch, own: str
) -> None:
    """A refold reads the history into the snapshot and makes the live projection once, at
    the end: the visits whose own stages were folded into the snapshot are still the ones it
    checks, as after one fold of every event."""
    monkeypatch.setattr(timeline, "REFOLD_PAGE", 3)
    whole = fold(ALL, lambda: Projection(own=own))
    tl = Timeline(lambda: Projection(own=own), keep=5)
    tl.refold(sorted(ALL, key=order_key))
    assert tl.base.dirty == set() and whole.dirty
    assert (tl.proj.dirty, tl.proj.pending_auto) == (whole.dirty, whole.pending_auto)
    assert tl.proj.reactions() == whole.reactions()

"""Benchmark: what one late event costs the plant timeline once its projection is full.

A terminal's timeline keeps a snapshot (up to `KEEP_CLOSED` closed visits) and a tail of recent
events. An event that sorts inside the tail (a peer's event that arrives after a later one of
this terminal, or one stamped after a wall clock stepped back) makes the timeline thaw the
snapshot (kept as a compressed pickle) and fold the tail again, on the daemon's event loop. This prints that replay's time and
its parts, after ten busy days (2,000 trucks, about 14,000 events) from three terminals.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime

from agent.domain.events import unpack
from agent.domain.timeline import Timeline, thaw
from agent.domain.visit_projection import Projection
from bench.bench_projection_memory import TZ, _day, _Plant
from bench.common import Row

DAYS = 10
ROUNDS = 5
LATE_AT = datetime(2026, 11, 11, 6, tzinfo=TZ)  # after the days folded; its stamp is replaced


def _best_ms(work: Callable[[], object], rounds: int = ROUNDS) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def run() -> list[Row]:
    """Fold ten days, then time replays of one late event, a thaw of the snapshot, and the
    fold of the tail."""
    plant = _Plant()
    events = [e for d in range(DAYS) for e in _day(plant, d)]
    timeline = Timeline(lambda: Projection(own="gate1", tz=TZ))
    started = time.perf_counter()
    timeline.add(events)
    fold_s = time.perf_counter() - started

    def late_event() -> None:
        before = unpack(timeline.tail[-2])
        ev = plant.ev("pk1", LATE_AT, "visit.loading_started", point="l9", plate="X", order="Y")
        timeline.add([dataclasses.replace(ev, at=before.at)])

    def fold_tail() -> None:
        p = Projection(own="gate1", tz=TZ)
        for ev in timeline.tail_events():
            p.apply(ev)

    replay_ms = _best_ms(late_event)
    thaw_ms = _best_ms(lambda: thaw(timeline.frozen))
    tail_ms = _best_ms(fold_tail)
    n = f"({len(timeline.base.visits)} visits in the snapshot, a tail of {timeline.tail_size})"
    return [
        Row(f"timeline fold of {len(events)} events in order", fold_s * 1000, "ms"),
        Row(f"timeline replay for one late event {n}", replay_ms, "ms"),
        Row("  of it: the snapshot thawed", thaw_ms, "ms"),
        Row("  of it: the tail folded again", tail_ms, "ms"),
        Row("the snapshot kept frozen", len(timeline.frozen) / 2**20, "MiB"),
    ]

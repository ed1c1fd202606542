"""Benchmark: the memory a terminal's plant timeline holds once it is full, refolded from its
own store at start (as the visits service does after a restart or a power cut).

Ten busy days (2,000 trucks, about 14,000 events) are written through the real writer into a
fresh database, read back with `load_events` and folded into a `Timeline`; `tracemalloc`
measures what the events and the timeline hold afterwards, and the most they held on the way.
"""

from __future__ import annotations

import dataclasses
import gc
import tempfile
import tracemalloc
from pathlib import Path

from agent.daemon.services.visits import load_events
from agent.daemon.store import Store, Writer
from agent.domain.events import Event, Stamp, parse_at, unpack
from agent.domain.timeline import Timeline
from agent.domain.visit_projection import Projection
from bench.bench_projection_memory import TZ, _day, _Plant
from bench.common import Row

DAYS = 10


def _store(folder: Path) -> str:
    """A database holding ten busy days as one terminal's own events, in timeline order."""
    db = str(folder / "tally.db")
    plant = _Plant()
    writer = Writer(db, "gate1")
    try:
        for day in range(DAYS):
            futures = [
                writer.submit(ev.kind, ev.data, stamp=Stamp(parse_at(ev.at), n))
                for n, ev in enumerate(_day(plant, day))
            ]
            for f in futures:
                f.result()
    finally:
        writer.close()
    return db


def _late(timeline: Timeline) -> Event:
    """A packing line's stage stamped between the tail's last two events: it sorts inside the
    tail, so the timeline folds its tail again."""
    before = unpack(timeline.tail[-2])
    stage = {"point": "l9", "plate": "X", "order": "Y"}
    ev = _Plant().ev("pk1", parse_at(before.at), "visit.loading_started", **stage)
    return dataclasses.replace(ev, at=before.at)


def run() -> list[Row]:
    """Refold the stored days into a timeline and measure what it holds."""
    with tempfile.TemporaryDirectory(prefix="tally-bench-") as folder:
        db = _store(Path(folder))
        store = Store(db)
        try:
            gc.collect()
            tracemalloc.start()
            timeline = Timeline(lambda: Projection(own="gate1", tz=TZ))
            timeline.refold(load_events(store))
            gc.collect()
            held, peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            timeline.add([_late(timeline)])
            replay_peak = tracemalloc.get_traced_memory()[1] - held
            tracemalloc.stop()
        finally:
            store.close()
    ids = {ev.id for ev in timeline.tail_events()}
    for v in timeline.proj.held():
        ids.update(ev.id for _, ev in v.events)
    mib = held / 2**20
    return [
        Row(f"timeline refolded from the store ({DAYS} busy days): held", mib, "MiB"),
        Row("  its peak while refolding", peak / 2**20, "MiB"),
        Row("  a replay for one late event: its peak above that", replay_peak / 2**20, "MiB"),
        Row(f"  per event held ({len(ids)} events in the tail and the kept visits)",
            held / len(ids), "bytes"),
    ]  # fmt: skip

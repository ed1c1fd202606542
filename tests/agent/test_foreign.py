"""Foreign events in the local store: stored with their cursor in one transaction, only in
contiguous runs, never over a different first version, pruned like the own events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.daemon.foreign import LocalReader, ingest, prune
from agent.daemon.store import Store, Writer
from agent.domain.events import Event, Stamp
from agent.domain.timeline import order_key


def ev(seq: int, terminal: str = "gate1", epoch: str = "g1", at: str = "", **data: object) -> Event:
    return Event(
        terminal,
        epoch,
        seq,
        "visit.note",
        at or f"2026-11-29T01:00:{seq:02d}.000Z",
        seq,
        "b",
        dict(data) or {"n": seq},
    )


def test_only_the_contiguous_run_is_stored_and_the_cursor_moves_with_it(tmp_path: Path) -> None:
    w = Writer(str(tmp_path / "t.db"), "pk1")
    own = (w.terminal, w.epoch)
    try:
        done = w.call(ingest([ev(1), ev(2), ev(4), ev(1, "wb1", "w1")], {}, own, "central", "x"))
        result = done.result()
        assert [e.id for e in result.events] == ["gate1:g1:1", "gate1:g1:2", "wb1:w1:1"]
        assert result.cursors == {("gate1", "g1"): 2, ("wb1", "w1"): 1}
        assert result.gaps == ["gate1:g1 after 2"]
        again = w.call(ingest([ev(2), ev(3), ev(4)], {}, own, "wb1", "x")).result()
        assert ([e.seq for e in again.events], again.conflicts) == ([3, 4], [])
        reader = LocalReader(w.path)
        assert reader.cursors() == {("gate1", "g1"): 4, ("wb1", "w1"): 1}
        assert [r[2] for r in reader.rows_after("gate1", "g1", 1, 10)] == [2, 3, 4]
        reader.close()
    finally:
        w.close()


def test_other_content_under_a_held_id_is_quarantined_not_stored(tmp_path: Path) -> None:
    w = Writer(str(tmp_path / "t.db"), "pk1")
    own = (w.terminal, w.epoch)
    try:
        w.call(ingest([ev(1), ev(2)], {}, own, "central", "x")).result()
        forged = ev(2, n=99)
        result = w.call(ingest([forged], {}, own, "wb1", "later")).result()
        assert (result.events, result.conflicts) == ([], ["gate1:g1:2"])
        store = Store(w.path)
        assert store.query("SELECT terminal, epoch, seq, source FROM replica_quarantine") == [
            ("gate1", "g1", 2, "wb1")
        ]
        assert [e.data for e in store.foreign_events()] == [{"n": 1}, {"n": 2}]
        store.close()
    finally:
        w.close()


def test_own_events_are_never_stored_as_foreign(tmp_path: Path) -> None:
    w = Writer(str(tmp_path / "t.db"), "pk1")
    try:
        mine = ev(1, "pk1", w.epoch)
        result = w.call(ingest([mine], {}, ("pk1", w.epoch), "central", "x")).result()
        assert (result.events, result.cursors) == ([], {})
    finally:
        w.close()


def test_a_source_that_pruned_old_events_moves_the_cursor_to_what_it_holds(
    tmp_path: Path,
) -> None:
    w = Writer(str(tmp_path / "t.db"), "pk1")
    own = (w.terminal, w.epoch)
    try:
        result = w.call(ingest([ev(7), ev(8)], {("gate1", "g1"): 7}, own, "c", "x")).result()
        assert [e.seq for e in result.events] == [7, 8]
        assert result.cursors == {("gate1", "g1"): 8}
    finally:
        w.close()


def test_foreign_events_are_pruned_by_age_and_the_cursor_stays(tmp_path: Path) -> None:
    w = Writer(str(tmp_path / "t.db"), "pk1")
    own = (w.terminal, w.epoch)
    try:
        old = [ev(1, at="2026-01-01T00:00:00.000Z"), ev(2, at="2026-01-02T00:00:00.000Z")]
        w.call(ingest([*old, ev(3)], {}, own, "c", "x")).result()
        assert w.call(prune("2026-06-01T00:00:00.000Z", 100)).result() == 2
        reader = LocalReader(w.path)
        assert (reader.foreign_count(), reader.cursors()) == (1, {("gate1", "g1"): 3})
        reader.close()
    finally:
        w.close()


def test_an_event_is_found_by_its_id_and_its_corrections_by_what_they_name(
    tmp_path: Path,
) -> None:
    w = Writer(str(tmp_path / "t.db"), "pk1")
    store = Store(w.path)
    try:
        w.call(ingest([ev(1), ev(2, target_event="gate1:g1:1")], {}, (w.terminal, w.epoch),
                      "gate1", "x")).result()  # fmt: skip
        mine = w.append_sync("visit.note", {"target_event": "gate1:g1:1"})
        assert store.event("gate1:g1:1") == ev(1)
        assert store.event(mine.id) == mine
        for missing in ("gate1:g1:3", f"pk1:{w.epoch}:99", "pk1:other:1", "pk1", "a:b:c", ""):
            assert store.event(missing) is None, missing
        found = store.events_naming("visit.note", "target_event", "gate1:g1:1")
        assert sorted(e.id for e in found) == sorted([mine.id, "gate1:g1:2"])
        assert store.events_naming("visit.note", "target_event", "gate1:g1:9") == []
    finally:
        store.close()
        w.close()


def test_the_timeline_is_read_in_order_a_page_at_a_time_across_both_tables(
    tmp_path: Path,
) -> None:
    """Own events whose wall clock was stepped back, and other terminals' events in between,
    come out in (at, terminal, epoch, seq) order with pages smaller than either table."""
    w = Writer(str(tmp_path / "t.db"), "pk1")
    own = (w.terminal, w.epoch)
    base = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
    # the clock is stepped back after the fourth event, and two events share one instant
    minutes = [0, 2, 4, 6, 1, 3, 3, 8]
    try:
        for n, m in enumerate(minutes):
            kind = "visit.note" if n != 3 else "packer.tally"  # one kind the reader leaves out
            w.append_sync(kind, {"n": n}, stamp=Stamp(base + timedelta(minutes=m), n))
        theirs = [ev(s, at=f"2026-11-29T01:0{s}:00.000Z") for s in range(1, 8)]
        theirs += [ev(1, "wb1", "w1", at="2026-11-29T01:03:00.000Z")]
        w.call(ingest(theirs, {}, own, "central", "x")).result()
        store = Store(w.path)
        stored = [*store.iter_events(), *store.foreign_events()]
        for upto, since in ((8, ""), (6, ""), (8, "2026-11-29T01:03:00.000Z")):
            want = sorted(
                (
                    e
                    for e in stored
                    if e.kind == "visit.note"
                    and (e.terminal != "pk1" or e.seq <= upto)
                    and e.at >= since
                ),
                key=order_key,
            )
            got = store.timeline_events(prefixes=("visit",), upto=upto, since_at=since, batch=2)
            assert [e.id for e in got] == [e.id for e in want]
        mine = store.timeline_events(kinds=("visit.note",), foreign=False, batch=3)
        assert [e.data["n"] for e in mine] == [0, 4, 1, 5, 6, 2, 7]
        store.close()
    finally:
        w.close()

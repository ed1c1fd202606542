"""The event store: envelope, gapless seqs, group commit, state with events, crash safety."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.daemon import lifeline
from agent.daemon.foreign import LocalReader
from agent.daemon.store import (
    CACHE_KIB,
    MIGRATIONS,
    Store,
    StoreError,
    Writer,
    _migrations,
    delete_acknowledged,
    init_database,
    set_state,
)
from agent.domain.events import Event, Stamp, parse_at


def test_append_assigns_gapless_seqs_and_the_envelope(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    w = Writer(db, "wb1")
    stamp = Stamp.now()
    first = w.append_sync("visit.arrived", {"plate": "苏A12345"}, stamp=stamp)
    second = w.append_sync("agent.started", {"version": "x"})
    w.close()
    assert first.seq == 1 and second.seq == 2
    assert first.id == f"wb1:{w.epoch}:1"
    assert first.at.endswith("Z") and len(first.at) == len("2026-11-29T10:00:00.000Z")
    assert parse_at(first.at) == stamp.at.replace(microsecond=stamp.at.microsecond // 1000 * 1000)
    store = Store(db)
    assert store.events_after(0) == [first, second]
    assert store.events_after(0, kind="visit") == [first]
    assert store.count() == 2 and store.count("agent") == 1 and store.count("agent.st") == 0
    assert [e.seq for e in store.iter_events(batch=1)] == [1, 2]
    assert store.epoch == w.epoch and store.terminal == "wb1"


def test_every_connection_of_the_daemon_keeps_a_small_page_cache(tmp_path: Path) -> None:
    # several connections of 2 MiB each (SQLite's default) made RSS climb with the database
    db = str(tmp_path / "t.db")
    writer, store, plant = Writer(db, "wb1"), Store(db), LocalReader(db)
    try:
        for conn in (writer._conn, store._conn, plant._conn):
            assert conn.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
    finally:
        writer.close()
        store.close()
        plant.close()


def test_seqs_continue_after_reopen_and_epoch_is_kept(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    w = Writer(db, "wb1")
    w.append_sync("a.b", {})
    w.close()
    w2 = Writer(db, "wb1")
    ev = w2.append_sync("a.b", {})
    w2.close()
    assert (ev.seq, w2.epoch) == (2, w.epoch)


def test_a_new_database_gets_a_new_epoch(tmp_path: Path) -> None:
    assert init_database(str(tmp_path / "a.db"), "wb1") != init_database(
        str(tmp_path / "b.db"), "wb1"
    )


def test_a_database_of_another_terminal_is_refused(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    init_database(db, "wb1")
    with pytest.raises(StoreError) as info:
        init_database(db, "wb2")
    assert str(info.value) == (
        f"the database {db} belongs to terminal 'wb1', not 'wb2'; "
        "set terminal.id back or point terminal.database at a new file"
    )


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "t.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        init_database(str(bad), "wb1")
    assert bad.read_bytes() == b"this is not sqlite" * 100


def test_the_migration_list_names_every_migration_in_order() -> None:
    assert tuple(m.name for m in _migrations()._migrations) == MIGRATIONS


def _loads_sqlite_utils(db: str) -> bool:
    """Whether `init_database` on `db`, in a fresh process, loads sqlite-utils."""
    probe = (
        "import sys\nfrom agent.daemon.store import init_database\n"
        f"init_database({db!r}, 'wb1')\nprint('sqlite_utils' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1] == "True"


def test_a_current_database_opens_without_loading_sqlite_utils(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    assert _loads_sqlite_utils(db)  # a new database is created through its migrations
    assert not _loads_sqlite_utils(db)  # and then it is current: 4.5 MiB less in the daemon


def test_a_database_before_the_timeline_index_gets_it_and_keeps_its_events(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "t.db")
    w = Writer(db, "wb1")
    w.append_sync("visit.note", {"n": 1})
    w.close()
    conn = sqlite3.connect(db)
    with conn:  # the database as the version before the index left it
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0004_events_at'")
        conn.execute("DROP INDEX events_at")
    conn.close()
    store = Store(db)
    assert [e.data for e in store.timeline_events()] == [{"n": 1}]  # read before, unindexed
    store.close()
    init_database(db, "wb1")
    conn = sqlite3.connect(db)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT seq FROM events WHERE at >= ? ORDER BY at, seq", ("",)
    ).fetchall()
    rows = conn.execute("SELECT seq, data FROM events").fetchall()
    conn.close()
    assert "INDEX events_at" in str(plan)
    assert rows == [(1, '{"n": 1}')]


def test_a_database_one_migration_behind_is_migrated(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    epoch = init_database(db, "wb1")
    conn = sqlite3.connect(db)
    with conn:  # the database as the version before foreign events left it
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0003_foreign_events'")
        for table in ("foreign_events", "replica_cursors", "replica_quarantine"):
            conn.execute(f"DROP TABLE {table}")
    conn.close()
    assert init_database(db, "wb1") == epoch
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert {"foreign_events", "replica_cursors", "replica_quarantine"} <= tables


def test_state_commits_with_its_event(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    w = Writer(db, "wb1")
    w.append_sync("packer.tally", {"bags": 3}, state={"counter.line1.bags": {"raw": 103}})
    w.close()
    store = Store(db)
    assert store.get_state("counter.line1.bags") == {"raw": 103}
    assert store.state_prefix("counter.") == {"counter.line1.bags": {"raw": 103}}
    assert store.get_state("missing", 7) == 7


def test_typed_reads(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    w = Writer(db, "wb1")
    kinds = [
        ("visit.arrived", {"plate": "苏A12345"}),
        ("weighing.captured", {"scale": "s1", "weight_kg": 15000}),
        ("visitor.note", {}),
        ("weighing.captured", {"scale": "s2", "weight_kg": 42000}),
        ("window.arrived", {"window": "w1"}),
        ("operator.corrected", {"seq": 1}),
    ]
    evs = [w.append_sync(kind, data) for kind, data in kinds]
    store = Store(db)
    assert store.events_between(0, 6, prefixes=("visit",), kinds=("operator.corrected",)) == [
        evs[0],
        evs[5],
    ]
    assert store.events_between(1, 5, prefixes=("visit", "window")) == [evs[4]]
    assert store.events_between(0, 6, kinds=("weighing.captured",), limit=1) == [evs[1]]
    assert store.events_between(4, 6) == [evs[4], evs[5]]
    assert store.last_event("weighing.captured") == evs[3]
    assert store.last_event("weighing.captured", scale="s1") == evs[1]
    assert store.last_event("weighing.captured", scale="s3") is None
    assert store.last_event("clock.stepped") is None
    assert store.events_since("weighing.captured", evs[0].at) == [evs[1], evs[3]]
    assert store.events_since("weighing.captured", "9999") == []
    assert store.rows_after(5, 10) == [
        (6, "operator.corrected", evs[5].at, evs[5].mono_ns, evs[5].boot, '{"seq": 1}')
    ]
    assert (store.oldest_seq(), store.first_at_after(5), store.first_at_after(6)) == (
        1,
        evs[5].at,
        None,
    )
    assert store.seqs_before(4, "9999", 10) == [1, 2, 3, 4]
    assert store.seqs_before(6, evs[0].at, 10) == []
    assert (store.dead_letter_count(), store.dead_letters(5)) == (0, [])
    # nothing above the acknowledged seq is ever deleted
    w.call(lambda conn: set_state(conn, {"sync.acked_through": 2})).result()
    assert w.call(delete_acknowledged([1, 2, 3], "sync.acked_through")).result() == 2
    w.close()
    assert (store.oldest_seq(), store.count()) == (3, 4)


async def test_concurrent_appends_are_group_committed(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    w = Writer(db, "wb1")
    busy, release = threading.Event(), threading.Event()

    def hold(_conn: sqlite3.Connection) -> None:
        busy.set()
        release.wait(30)

    held = w.call(hold)  # the writer is busy, as if syncing a previous commit
    assert busy.wait(30)
    appends = [asyncio.ensure_future(w.append("x.y", {"i": i})) for i in range(500)]
    await asyncio.sleep(0)  # each append has run up to its wait: all 500 are queued
    release.set()
    events = await asyncio.gather(*appends)
    held.result(30)
    w.close()
    assert sorted(e.seq for e in events) == list(range(1, 501))
    assert w.commits == 1  # what gathered while the writer was busy is one transaction
    assert Store(db).count() == 500


def test_wal_and_migrations_are_in_place(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    Writer(db, "wb1").close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names == ["0001_events", "0002_dead_letters", "0003_foreign_events", "0004_events_at"]


def test_store_on_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        Store(str(tmp_path / "none.db"))
    assert "start the daemon once to create it" in str(info.value)


def test_event_round_trips_through_its_dict() -> None:
    ev = Event(
        "wb1", "e1", 3, "visit.sealed", "2026-11-29T10:00:00.123Z", 5, "b", {"seals": ["S1"]}
    )
    assert Event.from_dict(ev.to_dict()) == ev
    with pytest.raises(ValueError, match="no 'kind' field"):
        Event.from_dict({k: v for k, v in ev.to_dict().items() if k != "kind"})


def test_events_read_back_are_equal_and_share_their_names(tmp_path: Path) -> None:
    """A full timeline holds thousands of stored events: each read keeps the stream, kind and
    field names that other events already hold. Values are not shared (interning each of them
    grew the interpreter's table of interned strings for good)."""
    db = str(tmp_path / "t.db")
    w = Writer(db, "wb1")
    text = "刹车灯不亮，" * 20  # a long note
    written = [
        w.append_sync("visit.weighed", {"visit": "v-7", "role": "tare", "weight_kg": 15000}),
        w.append_sync("visit.weighed", {"visit": "v-7", "role": "gross", "weight_kg": 45000}),
        w.append_sync("operator.note", {"text": text, "operator": "v-7"}),
    ]
    w.close()
    store = Store(db)
    a, b, c = store.events_after(0)
    assert [a, b, c] == written
    assert (a.id, c.id) == (written[0].id, f"wb1:{a.epoch}:3")
    assert a.kind is b.kind and a.boot is c.boot and a.terminal is c.terminal
    role_a = next(k for k in a.data if k == "role")
    role_b = next(k for k in b.data if k == "role")
    assert role_a is role_b
    assert a.data["visit"] == b.data["visit"] == c.data["operator"] == "v-7"
    assert c.data["text"] == text
    again = Event.from_dict(b.to_dict())
    assert again.kind is a.kind and next(k for k in again.data if k == "role") is role_a
    moved = dataclasses.replace(a, seq=9)
    assert moved.id == f"wb1:{a.epoch}:9"


def test_sigkill_never_loses_an_acknowledged_event(tmp_path: Path) -> None:
    """Kill a real appending process 50 times; every acknowledged seq survives, gapless."""
    db = str(tmp_path / "crash.db")
    rng = random.Random(20261129)
    acknowledged: set[int] = set()
    for _ in range(50):
        proc = lifeline.popen(
            [sys.executable, "-m", "tests.agent.crash_writer", db],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # at least one commit before the kill
        assert first.strip().isdigit(), first
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        acknowledged.update(int(x) for x in [first, *rest.split()] if x.strip())
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        seqs = [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq")]
        conn.close()
        assert seqs == list(range(1, len(seqs) + 1))
        assert acknowledged <= set(seqs)
    assert len(acknowledged) > 50


def test_a_waiter_that_gives_up_never_stops_the_writer(tmp_path: Path) -> None:
    # A caller may stop waiting (asyncio.wait_for cancels the future) while its event is queued:
    # the event is still committed and the writer thread goes on with the next ones.
    import threading

    w = Writer(str(tmp_path / "t.db"), "wb1")
    hold, running = threading.Event(), threading.Event()

    def block(conn: sqlite3.Connection) -> bool:
        running.set()
        return hold.wait(10)

    blocker = w.call(block)
    assert running.wait(10)
    abandoned = w.submit("note.added", {"text": "queued behind the blocker"})
    assert abandoned.cancel()
    hold.set()
    assert blocker.result(10) is True
    after = w.submit("note.added", {"text": "after"}).result(10)
    w.close()
    store = Store(str(tmp_path / "t.db"))
    try:
        texts = [e.data["text"] for e in store.iter_events()]
        assert texts == ["queued behind the blocker", "after"]
        assert after.seq == 2
    finally:
        store.close()


def test_a_caller_that_gives_up_does_not_stop_the_writer(tmp_path: Path) -> None:
    """A task cancelled while its append waits (as every task is when the daemon stops) must not
    end the writer thread: later appends, such as `agent.stopped`, still commit."""
    db = str(tmp_path / "t.db")
    w = Writer(db, "wb1")
    # The writer is held in a call, so the appends are still queued when their callers give up
    # (without it, a writer fast enough on a quiet machine had stored them all first).
    held, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> bool:
        held.set()
        return release.wait(10)

    blocker = w.call(hold)
    assert held.wait(10)  # inside the call: what is submitted now stays queued
    futures = [w.submit("test.append", {"i": i}) for i in range(500)]
    given_up = sum(f.cancel() for f in futures)
    release.set()
    last = w.submit("agent.stopped", {"reason": "signal"})
    try:
        assert blocker.result(10) is True
        assert last.result(10).seq == 501
    finally:
        w.close()
    assert given_up == 500  # every one was still queued when cancelled: the case under test
    store = Store(db)
    assert store.count() == 501  # handed over is stored, whether its caller waited or not
    store.close()

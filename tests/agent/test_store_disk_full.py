"""The writer on a full file system: nothing is acknowledged until it is stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.daemon.store import Store, Writer
from tests.daemon import wait_for
from tests.smalldisk import fill, small_disk

__all__ = ["small_disk"]  # the fixture

BLOB = b"\1" * 200_000


def _insert(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO blobs VALUES (?)", (BLOB,))


def test_writer_holds_calls_and_appends_until_space_returns(small_disk: Path) -> None:
    db = str(small_disk / "tally.db")
    filler = small_disk / "filler"
    w = Writer(db, "wb1")
    told: list[bool] = []
    w.disk_listeners.append(told.append)  # the health service shows disk_full from these
    try:
        w.call(lambda c: c.execute("CREATE TABLE blobs (b BLOB)")).result(5)
        first = w.append_sync("test.note", {"n": 1})

        fill(filler)
        call = w.call(_insert)
        wait_for(lambda: w.disk_full)
        assert not call.done()
        filler.unlink()
        call.result(timeout=30)
        assert w.disk_full is False  # a call alone also ends the disk-full state

        fill(filler)
        pad = {f"pad{i}": "x" * 4000 for i in range(50)}  # 200 KB within the field limits
        held = w.submit("test.note", {"n": 2, **pad})
        wait_for(lambda: w.disk_full)
        assert not held.done()
        filler.unlink()
        second = held.result(timeout=30)
        assert w.disk_full is False
        assert (first.seq, second.seq) == (1, 2)
        assert told == [True, False, True, False]  # each change once, however many retries
    finally:
        w.close()
    store = Store(db)
    try:
        assert store.query("SELECT seq, kind FROM events") == [(1, "test.note"), (2, "test.note")]
        assert store.query("SELECT length(b) FROM blobs") == [(len(BLOB),)]
    finally:
        store.close()

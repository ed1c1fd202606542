"""An upgrade keeps the data: a database of the first schema migrates when the daemon opens it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from agent.daemon.store import Store, _migrations
from tests.daemon import Daemon, tally, write_config

OLD_EVENTS = [
    (1, "agent.started", "2026-01-02T03:04:05.000Z", 1000, "boot-a", {"version": "0.0.9"}),
    (
        2,
        "weighing.captured",
        "2026-01-02T03:05:00.000Z",
        2000,
        "boot-a",
        {"weighing": "w1", "scale": "scale1", "weight_kg": 48200},
    ),
    (3, "agent.stopped", "2026-01-02T03:06:00.000Z", 3000, "boot-a", {"reason": "signal"}),
]


def _old_database(path: Path) -> None:
    """A database as the first release wrote it: migration 0001 only, three events."""
    conn = sqlite3.connect(path)
    _migrations().apply(Database(conn), stop_before="0002_dead_letters")
    with conn:
        conn.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [
                ("epoch", "0123456789abcdef"),
                ("terminal", "wb1"),
                ("last_seq", "3"),
                ("created", "2026-01-02T03:04:05.000Z"),
            ],
        )
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
            [(s, k, a, m, b, json.dumps(d)) for s, k, a, m, b, d in OLD_EVENTS],
        )
    conn.close()


def test_the_daemon_migrates_an_old_database_and_keeps_its_events(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[storage]\nmin_free_mb = 0\n")
    db = tmp_path / "tally.db"
    _old_database(db)
    conn = sqlite3.connect(db)
    assert [m.name for m in _migrations().pending(Database(conn))] != []
    conn.close()

    with Daemon(config) as d:
        assert d.request("status")["last_weighing"] == {
            "weighing": "w1",
            "scale": "scale1",
            "weight_kg": 48200,
            "at": "2026-01-02T03:05:00.000Z",
        }

    conn = sqlite3.connect(db)
    assert _migrations().pending(Database(conn)) == []
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
    conn.close()
    store = Store(str(db))
    try:
        events = list(store.iter_events())
        assert store.epoch == "0123456789abcdef"
        assert [(e.seq, e.kind, e.at, e.data) for e in events[:3]] == [
            (s, k, a, d) for s, k, a, _m, _b, d in OLD_EVENTS
        ]
        # The new run continues the same epoch without a gap.
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.kind for e in events[3:]] == ["agent.started", "agent.stopped"]
    finally:
        store.close()
    listed = tally("events", "--config", str(config), "--kind", "weighing", "--json")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [
        "wb1:0123456789abcdef:2"
    ]

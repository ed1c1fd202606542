"""Durable appends per second through the group-commit writer against plain sqlite3."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

from agent.daemon.store import Writer
from bench.common import Row

N = 20_000
SEQUENTIAL_N = 500


def _payload(i: int) -> dict[str, object]:
    return {"packer": "line1", "bags": i % 40, "returned": 1, "broken": 0, "running_s": 60}


def run() -> list[Row]:
    """Run the three measurements and return their rows."""
    with tempfile.TemporaryDirectory() as tmp:
        writer = Writer(str(Path(tmp) / "w.db"), "bench")
        started = time.perf_counter()
        futures = [writer.submit("packer.tally", _payload(i)) for i in range(N)]
        for f in futures:
            f.result()
        burst = N / (time.perf_counter() - started)
        commits = writer.commits

        started = time.perf_counter()
        for i in range(SEQUENTIAL_N):
            writer.append_sync("packer.tally", _payload(i))
        one_by_one = SEQUENTIAL_N / (time.perf_counter() - started)
        writer.close()

        conn = sqlite3.connect(str(Path(tmp) / "plain.db"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, kind TEXT, at TEXT, mono_ns INTEGER,"
            " boot TEXT, data TEXT)"
        )
        rows = [
            (i + 1, "packer.tally", "2026-11-29T10:00:00.000Z", i, "b", json.dumps(_payload(i)))
            for i in range(N)
        ]
        started = time.perf_counter()
        with conn:
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
        plain = N / (time.perf_counter() - started)
        conn.close()
    return [
        Row(f"store: group-commit writer, {N} concurrent appends", burst, "events/s"),
        Row("store: transactions used for them", commits, "commits"),
        Row("store: one append at a time (each waits for its fsync)", one_by_one, "events/s"),
        Row(f"store: plain sqlite3 executemany, {N} rows in one txn", plain, "rows/s"),
        Row("store: group-commit / plain executemany", burst / plain, "ratio"),
    ]

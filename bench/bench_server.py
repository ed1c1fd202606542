"""Central server: ingest rate on SQLite and on PostgreSQL (the stores, batches of 500), then the
time of the day page, the month page and the KPI endpoint of a real `tally serve` over that
many stored events, first computed and then kept.

The size is `python -m bench server --server-events N` (or TALLY_BENCH_SERVER_EVENTS; default
20,000); `--server-engine sqlite` or `--server-engine postgresql` (TALLY_BENCH_SERVER_ENGINE)
measures one engine only: five terminals of one plant at a busy plant's 16,000 events a day, so 300,000 events
are about 19 days and 3,000,000 about half a year.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from agent.daemon import lifeline
from bench.common import Row
from sync.receiver.engine import ReceiverDb, open_db

EVENTS = int(os.environ.get("TALLY_BENCH_SERVER_EVENTS", "20000"))
ENGINE = os.environ.get("TALLY_BENCH_SERVER_ENGINE", "")  # "" measures both
PER_DAY = 16_000
BATCH = 500
TERMINALS = ("gate1", "wb1", "wb2", "pk1", "pk2")
DAY0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)  # 08:00 in Asia/Shanghai
READER = "bench-reader-token-01"


def _days() -> int:
    return max(1, -(-EVENTS // PER_DAY))


def _batches() -> Iterator[tuple[str, list[tuple[int, str, str, int, str, str]]]]:
    """(terminal, rows) batches of about EVENTS events: whole visits, day after day."""
    from tests.agent.timeline import Timeline
    from tests.sync.month import _visit

    rng = random.Random(11)
    lines = {t: Timeline(terminal=t, epoch="e1", boot="b1", start=DAY0) for t in TERMINALS}
    pending: dict[str, list[tuple[int, str, str, int, str, str]]] = {t: [] for t in TERMINALS}
    made = 0
    n = 0
    for d in range(_days()):
        today = min(PER_DAY, EVENTS - made)
        done = 0
        while done < today:
            terminal = TERMINALS[n % len(TERMINALS)]
            t = lines[terminal]
            t.wall = DAY0 + timedelta(days=d, minutes=rng.uniform(0, 14 * 60))
            events = _visit(t, rng, f"v{n}", rng.choice(["bagged", "bulk"]))
            if terminal.startswith("pk"):
                events.append(t.event("packer.tally", packer="line1", bags=rng.randint(300, 600),
                                      returned=rng.randint(0, 30), broken=rng.randint(0, 20),
                                      running_s=rng.randint(600, 900), bag_kg=50))  # fmt: skip
            n += 1
            done += len(events)
            for e in events:
                pending[terminal].append((e.seq, e.kind, e.at, e.mono_ns, e.boot,
                                          json.dumps(e.data, ensure_ascii=False)))  # fmt: skip
            if len(pending[terminal]) >= BATCH:
                yield terminal, pending[terminal][:BATCH]
                pending[terminal] = pending[terminal][BATCH:]
        made += done
    for terminal, rows in pending.items():
        for i in range(0, len(rows), BATCH):
            yield terminal, rows[i : i + BATCH]


def _ingest(db: ReceiverDb) -> tuple[int, float]:
    stored = 0
    spent = 0.0
    for terminal, rows in _batches():
        started = time.perf_counter()
        db.ingest(terminal, "e1", rows, [], "bench")
        spent += time.perf_counter() - started
        stored += len(rows)
    return stored, spent


def _pages(engine: str, db_arg: str, folder: Path) -> list[Row]:
    """Start `tally serve` on the database and time its pages and endpoints."""
    tokens = folder / "tokens"
    tokens.write_text("".join(f"p/{t}:tok-{t}-00000001\n" for t in TERMINALS) + f"@r:{READER}\n")
    tokens.chmod(0o600)
    proc = lifeline.popen(
        [sys.executable, "-m", "agent.cli", "serve", "--db", db_arg, "--listen", "127.0.0.1:0",
         "--tokens", str(tokens), "--timezone", "Asia/Shanghai"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().split()[1]
        day = (DAY0 + timedelta(days=_days() // 2)).date()
        month = day.strftime("%Y-%m")
        auth = {"Authorization": f"Bearer {READER}"}
        rows = []
        with httpx.Client(base_url=url, headers=auth, timeout=600) as client:
            for what, path, params in (
                ("day page", "/day", {"day": day.isoformat()}),
                ("month page", "/month", {"month": month}),
                ("KPI endpoint (a day)", "/api/v1/kpi", {"day": day.isoformat()}),
            ):
                for state in ("computed", "kept"):
                    started = time.perf_counter()
                    r = client.get(path, params=params)
                    took = time.perf_counter() - started
                    assert r.status_code == 200, r.text[:200]
                    rows.append(Row(f"server {engine} {what}, {state}", took * 1000, "ms"))
        return rows
    finally:
        proc.terminate()
        proc.wait(30)


def _measure(engine: str, db: ReceiverDb, db_arg: str, folder: Path) -> list[Row]:
    try:
        stored, spent = _ingest(db)
    finally:
        db.close()
    return [
        Row(
            f"server {engine} ingest {stored:,} events ({BATCH}/batch)", stored / spent, "events/s"
        ),
        *_pages(engine, db_arg, folder),
    ]


def run() -> list[Row]:
    """SQLite, then PostgreSQL when its server binaries are installed (or the one engine asked)."""
    rows: list[Row] = []
    if ENGINE in ("", "sqlite"):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "r.db")
            rows += _measure("sqlite", open_db(path), path, Path(folder))
    if ENGINE == "sqlite":
        return rows
    try:
        from tests.pgcluster import PgCluster

        cluster = PgCluster().start()
    except (ImportError, RuntimeError):
        return rows
    try:
        url = cluster.new_database()
        with tempfile.TemporaryDirectory() as folder:
            rows += _measure("postgresql", open_db(url), url, Path(folder))
    finally:
        cluster.stop()
    return rows

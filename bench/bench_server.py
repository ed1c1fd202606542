"""Central server: ingest rate on SQLite and on PostgreSQL (the stores, batches of 500), and a
day's report computed and then kept."""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

from agent.config import KpiConfig
from bench.common import Row
from sync.receiver import reports
from sync.receiver.engine import ReceiverDb, open_db

EVENTS = int(os.environ.get("TALLY_BENCH_SERVER_EVENTS", "20000"))
BATCH = 500
DAY0 = datetime(2026, 10, 1, tzinfo=UTC)


def _rows(start: int, n: int) -> list[tuple[int, str, str, int, str, str]]:
    out = []
    for seq in range(start, start + n):
        at = DAY0 + timedelta(seconds=seq * 20)
        data = {"visit": f"v{seq // 8}", "load": "bulk", "planned_kg": 30000}
        out.append(
            (
                seq,
                "visit.gate_in",
                at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                seq,
                "b",
                json.dumps(data),
            )
        )
    return out


def _measure(engine: str, db: ReceiverDb) -> list[Row]:
    started = time.perf_counter()
    for first in range(1, EVENTS + 1, BATCH):
        db.ingest("wb1", "e1", _rows(first, min(BATCH, EVENTS - first + 1)), [], "k")
    rate = EVENTS / (time.perf_counter() - started)
    day = date(2026, 10, 2)
    t0 = time.perf_counter()
    reports.day_report(db, day, "Asia/Shanghai", KpiConfig())
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    reports.day_report(db, day, "Asia/Shanghai", KpiConfig())
    kept = time.perf_counter() - t0
    return [
        Row(f"server {engine} ingest ({BATCH}/batch)", rate, "events/s"),
        Row(f"server {engine} day report, computed", cold * 1000, "ms"),
        Row(f"server {engine} day report, kept", kept * 1000, "ms"),
    ]


def run() -> list[Row]:
    """SQLite always; PostgreSQL when its server binaries are installed."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        db = open_db(os.path.join(folder, "r.db"))
        try:
            rows += _measure("sqlite", db)
        finally:
            db.close()
    try:
        from tests.pgcluster import PgCluster

        cluster = PgCluster().start()
    except (ImportError, RuntimeError):
        return rows
    try:
        db = open_db(cluster.new_database())
        try:
            rows += _measure("postgresql", db)
        finally:
            db.close()
    finally:
        cluster.stop()
    return rows

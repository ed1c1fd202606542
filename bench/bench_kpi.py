"""Receiver KPI endpoint: one day's report with 300,000 and 3,000,000 events stored (it must not
grow with history), and a terminal's POST latency while the endpoint is hammered."""

from __future__ import annotations

import gzip
import json
import os
import select
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.common import Row
from sync.receiver.store import ReceiverStore

SIZES = [int(n) for n in os.environ.get("TALLY_BENCH_KPI_EVENTS", "300000,3000000").split(",")]
PER_DAY = 3000  # events a busy plant stores in a day
TOKEN = "bench-kpi-token-0123456789"
DAY0 = datetime(2020, 1, 1, tzinfo=UTC)
VISIT_KINDS = [
    "visit.arrived",
    "visit.gate_in",
    "visit.weighed",
    "visit.loading_started",
    "visit.exited",
]


def _fill(db: str, n: int) -> list[str]:
    """`n` events, PER_DAY a day, straight into a migrated receiver database; its last 30 days."""
    ReceiverStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA journal_mode=WAL")
    rows = []
    last = DAY0
    for seq in range(1, n + 1):
        day, i = divmod(seq - 1, PER_DAY)
        at_dt = DAY0 + timedelta(days=day, seconds=i * 86_400 // PER_DAY)
        at = at_dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        last = at_dt
        if seq % 4 == 0:
            kind = "packer.tally"
            data = {
                "packer": "line1",
                "bags": 40,
                "returned": 1,
                "broken": 0,
                "running_s": 60,
                "bag_kg": 50,
            }
        else:
            kind = VISIT_KINDS[seq % 5]
            data = {
                "visit": f"v{seq // 10}",
                "load": "bulk",
                "planned_kg": 30000,
                "weighing": f"w{seq}",
            }
        rows.append(("wb1", "e1", seq, kind, at, seq * 10**9, "boot", json.dumps(data), at))
        if len(rows) == 50_000:
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            rows.clear()
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("INSERT INTO streams VALUES ('wb1', 'e1', ?)", (n,))
    conn.commit()
    conn.close()
    return [(last.date() - timedelta(days=d)).isoformat() for d in range(1, 31)]


def _serve(folder: Path, db: str) -> tuple[subprocess.Popen[bytes], str]:
    tokens = folder / "tokens"
    tokens.write_text(f"wb1:{TOKEN}\n", encoding="utf-8")
    tokens.chmod(0o600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "serve", "--db", db, "--listen", "127.0.0.1:0",
         "--tokens", str(tokens)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("listening "):
        proc.kill()
        raise RuntimeError(f"the receiver did not start: {line!r}")
    return proc, line.split()[1]


def _kpi_ms(client: httpx.Client, url: str, day: str) -> float:
    started = time.perf_counter()
    resp = client.get(f"{url}/api/v1/kpi", params={"day": day})
    resp.raise_for_status()
    return (time.perf_counter() - started) * 1000


def _post_ms(client: httpx.Client, url: str, seq: int) -> float:
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    events = [
        {"terminal": "wb1", "epoch": "live", "seq": s, "id": f"wb1:live:{s}", "kind": "operator.note",
         "at": at, "mono_ns": s, "boot": "b", "data": {"text": "x"}}
        for s in range(seq, seq + 10)
    ]  # fmt: skip
    body = gzip.compress(
        json.dumps({"terminal": "wb1", "epoch": "live", "events": events}).encode()
    )
    started = time.perf_counter()
    resp = client.post(f"{url}/api/v1/events", content=body, headers={"Content-Encoding": "gzip"})
    resp.raise_for_status()
    return (time.perf_counter() - started) * 1000


def _one(n: int) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tally-bench-kpi-") as tmp:
        db = str(Path(tmp) / "receiver.db")
        started = time.perf_counter()
        days = _fill(db, n)
        print(f"  filled {n:,} events in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        proc, url = _serve(Path(tmp), db)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            with httpx.Client(headers=auth, timeout=120) as client:
                _kpi_ms(client, url, days[-1])  # warm the page cache
                # Five different days: each is computed, none is answered from the cache.
                kpi = statistics.median(_kpi_ms(client, url, day) for day in days[:5])
                rows.append(Row(f"kpi one day ({n:,} events stored)", kpi, "ms (median of 5)"))
                quiet = [_post_ms(client, url, 1 + 10 * i) for i in range(20)]
                stop = threading.Event()

                def hammer() -> None:
                    with httpx.Client(headers=auth, timeout=120) as c:
                        i = 0
                        while not stop.is_set():  # a new day each call: the cache never helps
                            _kpi_ms(c, url, days[i % len(days)])
                            i += 1

                threads = [threading.Thread(target=hammer) for _ in range(50)]
                for t in threads:
                    t.start()
                time.sleep(1)
                busy = [_post_ms(client, url, 1001 + 10 * i) for i in range(20)]
                stop.set()
                for t in threads:
                    t.join()
            rows.append(
                Row(f"POST 10 events, idle ({n:,} stored)", statistics.median(quiet), "ms p50")
            )
            rows.append(
                Row(f"POST 10 events, 50 KPI callers ({n:,})", statistics.median(busy), "ms p50")
            )
            rows.append(Row(f"POST 10 events, 50 KPI callers ({n:,})", max(busy), "ms max"))
        finally:
            proc.terminate()
            proc.wait(30)
    return rows


def run() -> list[Row]:
    """The rows of the table, one size after the other."""
    return [row for n in SIZES for row in _one(n)]

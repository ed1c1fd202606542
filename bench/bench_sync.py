"""Sync drain: the real daemon sends a backlog to `tally serve` on loopback, against plain httpx."""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from agent.daemon import lifeline
from agent.daemon.client import DaemonUnavailable, request
from agent.daemon.store import Writer
from bench.common import Row
from sync import protocol

EVENTS = int(os.environ.get("TALLY_BENCH_SYNC_EVENTS", "1000000"))
BATCH = int(os.environ.get("TALLY_BENCH_SYNC_BATCH", "500"))
TOKEN = "bench-token-0123456789"


def _fill(db: str, n: int) -> None:
    """Write `n` realistic events straight into a fresh agent database."""
    Writer(db, "wb1").close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    chunk: list[tuple[int, str, str, int, str, str]] = []
    base = 1_764_410_400  # 2025-11-29T10:00:00Z
    for seq in range(1, n + 1):
        t = base + seq // 10
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{seq % 1000:03d}Z"
        if seq % 3:
            kind = "packer.tally"
            data = {
                "packer": f"line{seq % 4}",
                "from": at,
                "to": at,
                "bags": seq % 37,
                "returned": seq % 3,
                "broken": seq % 2,
                "running_s": 60,
                "bag_kg": 50,
            }
        else:
            kind = "weighing.captured"
            data = {
                "weighing": f"0193{seq:028x}",
                "scale": "scale1",
                "weight_kg": 14_000 + seq % 40_000,
                "mode": "gross",
                "stable_ms": 3100,
                "samples": 31,
            }
        chunk.append((seq, kind, at, seq * 1_000_000, "bench-boot", json.dumps(data)))
        if len(chunk) == 20_000:
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", chunk)
            chunk.clear()
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", chunk)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(n),))
    conn.commit()
    conn.close()


def _receiver(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    folder.mkdir(parents=True)
    tokens = folder / "tokens"
    tokens.write_text(f"wb1:{TOKEN}\n")
    tokens.chmod(0o600)
    proc = lifeline.popen(
        [
            *(sys.executable, "-m", "agent.cli", "serve", "--db", str(folder / "r.db")),
            *("--listen", "127.0.0.1:0", "--tokens", str(tokens)),
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("listening "):
        proc.kill()
        raise RuntimeError(f"the receiver did not start: {line!r}")
    return proc, line.split()[1]


def _stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _plain(db: str, url: str, epoch: str) -> float:
    """Seconds to read, encode and POST every batch with a bare httpx client."""
    conn = sqlite3.connect(db)
    started = time.perf_counter()
    after = 0
    with httpx.Client(timeout=60) as client:
        while True:
            rows = conn.execute(
                "SELECT seq, kind, at, mono_ns, boot, data FROM events WHERE seq > ?"
                " ORDER BY seq LIMIT ?",
                (after, BATCH),
            ).fetchall()
            if not rows:
                break
            first, after = rows[0][0], rows[-1][0]
            body = protocol.gzip_bytes(protocol.encode_batch("wb1", epoch, rows))
            resp = client.post(
                url + protocol.EVENTS_PATH,
                content=body,
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Encoding": "gzip",
                    "Idempotency-Key": protocol.idempotency_key("wb1", epoch, first, after),
                },
            )
            resp.raise_for_status()
    conn.close()
    return time.perf_counter() - started


def _daemon_drain(folder: Path, url: str) -> tuple[float, float]:
    """Seconds for the real daemon to drain its backlog, and its peak RSS in MiB."""
    token = folder / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    sock = Path(tempfile.mkdtemp(prefix="tally-bench-")) / "tally.sock"
    config = folder / "tally.toml"
    config.write_text(
        f'[terminal]\nid = "wb1"\ndatabase = "{folder}/agent.db"\nsocket = "{sock}"\n\n'
        f'[sync]\nurl = "{url}"\ntoken_file = "{token}"\nbatch_max = {BATCH}\n'
    )
    started = time.perf_counter()
    proc = lifeline.popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
        stderr=subprocess.DEVNULL,
    )
    peak = 0.0
    try:
        while True:
            time.sleep(0.2)
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode}")
            try:
                status = request(str(sock), "sync.sender.status", timeout=10)
            except DaemonUnavailable:
                continue
            if status["backlog"] == 0:
                break
        elapsed = time.perf_counter() - started
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    finally:
        _stop(proc)
    return elapsed, peak


def run() -> list[Row]:
    """Drain EVENTS events twice: plain httpx, then the daemon's sender."""
    with tempfile.TemporaryDirectory(prefix="tally-bench-sync-") as tmp:
        folder = Path(tmp)
        db = str(folder / "agent.db")
        print(f"  sync: filling a backlog of {EVENTS:,} events", file=sys.stderr, flush=True)
        _fill(db, EVENTS)
        epoch = sqlite3.connect(db).execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        plain_proc, plain_url = _receiver(folder / "plain")
        try:
            plain_s = _plain(db, plain_url, epoch[0])
        finally:
            _stop(plain_proc)
        agent_proc, agent_url = _receiver(folder / "agent-receiver")
        try:
            agent_s, peak_mb = _daemon_drain(folder, agent_url)
        finally:
            _stop(agent_proc)
    agent_eps = EVENTS / agent_s
    plain_eps = EVENTS / plain_s
    return [
        Row(f"sync drain, {EVENTS:,} events, batches of {BATCH}", agent_eps, "events/s"),
        Row("sync drain, plain httpx posting the same batches", plain_eps, "events/s"),
        Row("sync drain, daemon / plain httpx", agent_eps / plain_eps, "ratio"),
        Row("sync drain, daemon peak memory", peak_mb, "MiB"),
    ]

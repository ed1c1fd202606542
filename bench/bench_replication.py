"""Plant timeline: replication lag and CPU for five terminals at a busy plant's rate, and the
catch-up of 100,000 events after a long partition (real daemons on loopback)."""

from __future__ import annotations

import os
import socket
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from agent.daemon.client import request
from bench import procs
from bench.bench_sync import _fill
from bench.common import Row
from tests.daemon import Daemon, write_config

TERMINALS = ("t1", "t2", "t3", "t4", "t5")
DAY_EVENTS = int(os.environ.get("TALLY_BENCH_REPL_DAY", "16000"))
SPEED = float(os.environ.get("TALLY_BENCH_REPL_SPEED", "10"))  # times a busy day's rate
SECONDS = float(os.environ.get("TALLY_BENCH_REPL_S", "60"))
CATCH_UP = int(os.environ.get("TALLY_BENCH_REPL_CATCHUP", "100000"))
TICK = os.sysconf("SC_CLK_TCK")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _mesh(root: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """Configs of terminals that each serve a feed and pull from every other one."""
    ports = {t: _port() for t in names}
    tokens = {t: f"bench-token-{t}-0123456789" for t in names}
    configs = {}
    for t in names:
        folder = root / t
        folder.mkdir(parents=True)
        token = _private(folder / "token", tokens[t])
        readers = _private(folder / "readers", "".join(f"{o}:{tokens[o]}\n" for o in names))
        peers = "".join(
            f'[[peer]]\nname = "{o}"\nurl = "http://127.0.0.1:{ports[o]}"\n'
            f'token_file = "{token}"\n\n'
            for o in names
            if o != t
        )
        feed = f'[feed]\nlisten = "127.0.0.1:{ports[t]}"\ntokens_file = "{readers}"\n\n'
        configs[t] = write_config(folder, feed + peers, terminal=t)
    return configs


def _held(db: Path, terminal: str, seq: int) -> bool:
    conn = sqlite3.connect(db, timeout=5)
    try:
        return bool(
            conn.execute(
                "SELECT 1 FROM foreign_events WHERE terminal = ? AND seq = ?", (terminal, seq)
            ).fetchone()
        )
    finally:
        conn.close()


def _live(root: Path) -> list[Row]:
    configs = _mesh(root, TERMINALS)
    daemons = {t: Daemon(c).start() for t, c in configs.items()}
    try:
        time.sleep(2)  # every puller has made contact
        cpu0 = {t: procs.run_s(d.proc.pid) for t, d in daemons.items() if d.proc}
        interval = 86_400 / (DAY_EVENTS * SPEED)
        lags: list[float] = []
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < SECONDS:
            origin = TERMINALS[n % len(TERMINALS)]
            n += 1
            t0 = time.monotonic()
            seq = request(daemons[origin].socket, "note.add", text=f"bench {n}")["seq"]
            others = [configs[t].parent / "tally.db" for t in TERMINALS if t != origin]
            while not all(_held(db, origin, seq) for db in others):
                time.sleep(0.002)
            lags.append(time.monotonic() - t0)
            time.sleep(max(0.0, interval - (time.monotonic() - t0)))
        wall = time.monotonic() - started
        cpu = [
            (procs.run_s(d.proc.pid) - cpu0[t]) / wall * 100 for t, d in daemons.items() if d.proc
        ]
    finally:
        for d in daemons.values():
            d.stop()
    lags.sort()
    return [
        Row(
            f"replication: events at {SPEED:g}x a {DAY_EVENTS}/day plant, 5 terminals", n, "events"
        ),
        Row("replication: lag to all 4 others, median", statistics.median(lags) * 1000, "ms"),
        Row("replication: lag to all 4 others, p95", lags[int(len(lags) * 0.95)] * 1000, "ms"),
        Row("replication: lag to all 4 others, max", lags[-1] * 1000, "ms"),
        Row("replication: CPU per daemon (mean)", statistics.mean(cpu), "% of a core"),
        Row("replication: CPU per daemon (max)", max(cpu), "% of a core"),
    ]


def _catch_up(root: Path) -> list[Row]:
    configs = _mesh(root, ("src", "dst"))
    src_db = configs["src"].parent / "tally.db"
    _fill(str(src_db), CATCH_UP)
    conn = sqlite3.connect(src_db)
    conn.execute("UPDATE meta SET value = 'src' WHERE key = 'terminal'")
    conn.commit()
    conn.close()
    src = Daemon(configs["src"]).start()
    try:
        started = time.monotonic()
        dst = Daemon(configs["dst"]).start()
        try:
            db = configs["dst"].parent / "tally.db"
            while not _held(db, "src", CATCH_UP):
                time.sleep(0.05)
            took = time.monotonic() - started
            cpu = procs.cpu_s(dst.proc.pid) if dst.proc else 0.0
        finally:
            dst.stop()
    finally:
        src.stop()
    return [
        Row(f"replication: catch-up of {CATCH_UP} events", took, "s"),
        Row("replication: catch-up rate", CATCH_UP / took, "events/s"),
        Row("replication: catch-up CPU of the reader", cpu, "s"),
    ]


def run() -> list[Row]:
    """Both measurements, each in a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="tally-bench-") as tmp:
        return _live(Path(tmp) / "live") + _catch_up(Path(tmp) / "catch")

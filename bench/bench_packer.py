"""Daemon CPU seconds per hour polling 4 simulated packers with 6 points each at 1 Hz."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.daemon import lifeline
from bench.common import Row
from bench.procs import run_s

PACKERS = 4
WARMUP_S = 4.0
MEASURE_S = 20.0

POINTS = """
  [[packer.point]]
  role = "bags"
  function = 3
  address = 0
  [[packer.point]]
  role = "returned"
  function = 3
  address = 1
  [[packer.point]]
  role = "broken"
  function = 3
  address = 2
  [[packer.point]]
  role = "spout"
  name = "spout1"
  function = 3
  address = 5
  [[packer.point]]
  role = "loaded"
  function = 3
  address = 10
  type = "uint32"
  word_order = "little"
  [[packer.point]]
  role = "running"
  function = 1
  address = 0
  type = "bool"
"""


def _packer(name: str, port: int) -> str:
    return (
        f'[[packer]]\nname = "{name}"\nhost = "127.0.0.1"\nport = {port}\n'
        f"poll_s = 1.0\ntally_s = 60\n{POINTS}\n"
    )


def run() -> list[Row]:
    """Start 4 simulators and a real daemon, measure the daemon's CPU over ~20 s."""
    cli = [sys.executable, "-m", "agent.cli"]
    procs: list[subprocess.Popen[Any]] = []
    with tempfile.TemporaryDirectory(prefix="tally-bench-") as tmp:
        folder = Path(tmp)
        sim_map = folder / "map.toml"
        sim_map.write_text(_packer("sim", 502), encoding="utf-8")
        try:
            ports = []
            for i in range(PACKERS):
                args = ["--listen", "127.0.0.1:0", "--map", str(sim_map), "--seed", str(i + 1)]
                sim = lifeline.popen(
                    [*cli, "simulate", "packer", *args],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                procs.append(sim)
                assert sim.stdout is not None
                ports.append(int(sim.stdout.readline().strip().rsplit(":", 1)[1]))
            config = folder / "tally.toml"
            config.write_text(
                f'[terminal]\nid = "bench"\ndatabase = "{folder}/tally.db"\n'
                f'socket = "{folder}/tally.sock"\n\n'
                + "\n".join(_packer(f"line{i + 1}", p) for i, p in enumerate(ports)),
                encoding="utf-8",
            )
            daemon = lifeline.popen(
                [*cli, "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(daemon)
            time.sleep(WARMUP_S)
            c0, t0 = run_s(daemon.pid), time.monotonic()
            time.sleep(MEASURE_S)
            c1, t1 = run_s(daemon.pid), time.monotonic()
            online = _online(folder / "tally.db")
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
    per_hour = (c1 - c0) / (t1 - t0) * 3600
    return [
        Row(f"packer daemon CPU, {PACKERS} packers x 6 points @ 1 Hz", per_hour, "CPU s/h"),
        Row("packer daemon CPU share of one core", per_hour / 36, "%"),
        Row("packers online during the packer benchmark", online, "packers"),
        Row("packer live rates, a reading with the 15-minute window full", rates_us(), "us"),
    ]


def rates_us(readings: int = 2000) -> float:
    """In-process: a packer's live rates (`Rates.add` and `view`, as the packers service makes
    them for each reading) once its 15-minute window is full of 1 Hz readings, in µs. The
    daemon's CPU above is measured in its first seconds, before the window fills."""
    from agent.domain.counters import WINDOW_S, Progress, Rates

    t0 = datetime(2026, 12, 5, 2, tzinfo=UTC)
    r = Rates("Asia/Shanghai")
    for i in range(WINDOW_S):
        r = r.add(Progress(t0 + timedelta(seconds=i), 1, 0, 0, 1000))
    started = time.thread_time()
    for i in range(WINDOW_S, WINDOW_S + readings):
        now = t0 + timedelta(seconds=i)
        r = r.add(Progress(now, 1, 0, 0, 1000))
        r.view(now, 50)
    return (time.thread_time() - started) / readings * 1e6


def _online(db: Path) -> float:
    from agent.daemon.store import Store

    store = Store(str(db))
    try:
        return float(len({e.data["device"] for e in store.iter_events("device.online")}))
    finally:
        store.close()

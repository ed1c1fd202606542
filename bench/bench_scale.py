"""Scale benchmarks: parser throughput per format and the daemon's CPU on a 20 Hz stream."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from agent.daemon import lifeline
from bench import procs
from bench.common import Row
from drivers.scale import PROTOCOLS, encode, make_splitter

FRAMES = 50_000
CHUNK = 4096
DAEMON_SECONDS = 20.0
RATE_HZ = 20


def _stream(protocol: str) -> bytes:
    weights = [0, 0, 5_000, 20_000, 40_000, 40_010, 39_990, 40_000, 20_000, 0]
    return b"".join(
        encode(protocol, Decimal(weights[i % 10]), stable=i % 10 not in (2, 3, 8), parity=True)
        for i in range(FRAMES)
    )


def parse_rate(protocol: str) -> float:
    """Frames per second through splitter and parser, fed in 4 KiB reads."""
    data = _stream(protocol)
    splitter = make_splitter(protocol)
    started = time.perf_counter()
    for i in range(0, len(data), CHUNK):
        splitter.feed(data[i : i + CHUNK])
    elapsed = time.perf_counter() - started
    return splitter.frames / elapsed


def daemon_cpu_per_hour(*sim_args: str) -> float:
    """The daemon's CPU seconds per hour while reading a 20 frames/s Toledo simulator (trucks
    coming and going; `sim_args` change the simulator's plan)."""
    from agent.daemon.client import DaemonUnavailable, request

    folder = Path(tempfile.mkdtemp(prefix="tally-bench-"))
    cmd = [sys.executable, "-m", "agent.cli"]
    sim_cmd = [*cmd, "simulate", "scale", "--protocol", "toledo", "--rate", str(RATE_HZ)]
    sim = lifeline.popen([*sim_cmd, "--seed", "1", *sim_args], stdout=subprocess.PIPE)
    daemon: subprocess.Popen[bytes] | None = None
    try:
        assert sim.stdout is not None
        port = sim.stdout.readline().decode().strip()
        config = folder / "tally.toml"
        config.write_text(
            f'[terminal]\nid = "bench"\ndatabase = "{folder}/tally.db"\n'
            f'socket = "{folder}/tally.sock"\n\n'
            f'[[scale]]\nname = "scale1"\nport = "{port}"\nprotocol = "toledo"\n'
        )
        daemon = lifeline.popen(
            [*cmd, "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                request(str(folder / "tally.sock"), "ping", timeout=1)
                break
            except DaemonUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(2)  # past start-up work
        cpu0, t0 = procs.run_s(daemon.pid), time.monotonic()
        time.sleep(DAEMON_SECONDS)
        cpu1, t1 = procs.run_s(daemon.pid), time.monotonic()
        return (cpu1 - cpu0) / (t1 - t0) * 3600
    finally:
        for proc in (daemon, sim):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(20)
        if sim.stdout is not None:
            sim.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)


def run() -> list[Row]:
    """Every scale benchmark row."""
    rows = [Row(f"scale parse {p}", parse_rate(p), "frames/s") for p in PROTOCOLS]
    rows.append(Row(f"scale daemon CPU at {RATE_HZ} frames/s", daemon_cpu_per_hour(), "CPU s/hour"))
    # the deck empty all along (a quiet night): read on the quiet grid
    empty = daemon_cpu_per_hour("--empty-s", "3600")
    rows.append(Row(f"scale daemon CPU at {RATE_HZ} frames/s, empty deck", empty, "CPU s/hour"))
    for hold_s in (3.0, 10.0):
        rows.append(
            Row(
                f"scale step watch, a frame of a steady level held {hold_s:g} s at 20 frames/s",
                step_watch_us(hold_s),
                "us",
            )
        )
    return rows


def step_watch_us(hold_s: float, frames: int = 20_000) -> float:
    """In-process: the truck scale's step watch fed a loaded deck standing steady (noise of
    +-15 kg about 32,000 kg, band 40 kg) at 20 frames/s, in µs a frame once it holds its
    `hold_s` of frames (the weighbridge's default hold is 3 s)."""
    from agent.domain.capture import StepWatch

    watch = StepWatch(band_kg=40, hold_s=hold_s, min_weight_kg=500, silence_s=2.0)
    noise = [(i * 7919) % 31 - 15 for i in range(997)]  # the same every run
    warm = round(hold_s * 20) * 2
    for i in range(warm):
        watch.feed(i * 0.05, 32_000 + noise[i % 997], True)
    started = time.thread_time()
    for i in range(warm, warm + frames):
        watch.feed(i * 0.05, 32_000 + noise[i % 997], True)
    return (time.thread_time() - started) / frames * 1e6

"""Real-time figures the tests wait for but never assert: watchdog cadence, Modbus answer time."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import Row

WATCHDOG_USEC = 1_000_000  # the daemon pings every 0.5 s
PINGS = 12
READS = 500
SO_TIMESTAMP = 29  # Linux's value; Python's socket module lacks it


def watchdog_intervals() -> list[float]:
    """Seconds between the real daemon's WATCHDOG=1 datagrams, stamped by the kernel at send."""
    address = f"\0tally-bench-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    sock.settimeout(10)
    with tempfile.TemporaryDirectory(prefix="tally-bench-") as tmp:
        config = Path(tmp) / "tally.toml"
        config.write_text(
            f'[terminal]\nid = "bench"\ndatabase = "{tmp}/tally.db"\nsocket = "{tmp}/tally.sock"\n',
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "NOTIFY_SOCKET": "@" + address[1:],
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
        }
        daemon = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        sent: list[float] = []
        try:
            while len(sent) < PINGS:
                data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
                if b"WATCHDOG=1" in data.split(b"\n"):
                    [(_, _, raw)] = ancillary
                    sec, usec = struct.unpack("@ll", raw)
                    sent.append(sec + usec / 1e6)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(20)
            sock.close()
    return [b - a for a, b in itertools.pairwise(sent)]


async def _answer_times(port: int) -> list[float]:
    from drivers.modbus import Link, make_client

    client = make_client(Link("tcp", host="127.0.0.1", port=port, timeout_s=5.0))
    await client.connect()
    times = []
    try:
        for _ in range(READS):
            started = time.perf_counter()
            await client.read_holding_registers(0, count=2, device_id=1)
            times.append(time.perf_counter() - started)
    finally:
        client.close()
    return times


def modbus_answer_times() -> list[float]:
    """Seconds for one holding-register read from `tally simulate packer` on loopback."""
    sim = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "simulate", "packer", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sim.stdout is not None
        port = int(sim.stdout.readline().strip().rsplit(":", 1)[1])
        return asyncio.run(_answer_times(port))
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run() -> list[Row]:
    """The watchdog's interval (set for 0.5 s) and a Modbus read's round trip."""
    gaps = watchdog_intervals()
    answers = modbus_answer_times()
    return [
        Row("watchdog ping interval, mean (set 500 ms)", sum(gaps) / len(gaps) * 1000, "ms"),
        Row("watchdog ping interval, max", max(gaps) * 1000, "ms"),
        Row("Modbus loopback read, median", _quantile(answers, 0.5) * 1000, "ms"),
        Row("Modbus loopback read, 99th percentile", _quantile(answers, 0.99) * 1000, "ms"),
        Row("Modbus loopback read, max", max(answers) * 1000, "ms"),
    ]

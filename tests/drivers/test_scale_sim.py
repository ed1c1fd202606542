"""`tally simulate scale` as a real process: each format's trucks decode and capture."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import serial

from agent.daemon import lifeline
from agent.domain.capture import Capture, Captured, CaptureSettings
from drivers.scale import Reading, make_splitter
from tests.daemon import tally

WEIGHTS = [15_000, 42_000]
PROTOCOLS = ["toledo", "xk3190", "xk3190-eq", "ascii"]


def _start(protocol: str) -> subprocess.Popen[bytes]:
    return lifeline.popen(
        [sys.executable, "-m", "agent.cli", "simulate", "scale", "--protocol", protocol,
         "--rate", "100", "--weights", ",".join(map(str, WEIGHTS)), "--trucks", "2",
         "--empty-s", "2", "--ramp-s", "0.4", "--settle-s", "1.5", "--seed", "7"],
        stdout=subprocess.PIPE,
    )  # fmt: skip


def _read_all(path: str, proc: subprocess.Popen[bytes]) -> bytes:
    port = serial.Serial(path, timeout=0.2)
    data = bytearray()
    try:
        while True:
            try:
                data += port.read(4096)
            except serial.SerialException:
                break  # the simulator closed its side after the last truck
            if proc.poll() is not None and not port.in_waiting:
                break
    finally:
        port.close()
    return bytes(data)


def test_every_format_plays_trucks_that_capture_at_their_weights() -> None:
    procs = {p: _start(p) for p in PROTOCOLS}
    try:
        paths = {p: proc.stdout.readline().decode().strip() for p, proc in procs.items()}  # type: ignore[union-attr]
        assert all(path.startswith("/dev/pts/") for path in paths.values()), paths
        with ThreadPoolExecutor(len(PROTOCOLS)) as pool:
            futures = {p: pool.submit(_read_all, paths[p], procs[p]) for p in PROTOCOLS}
            data = {p: f.result() for p, f in futures.items()}
        assert {p: proc.wait(10) for p, proc in procs.items()} == dict.fromkeys(PROTOCOLS, 0)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
    for protocol, raw in data.items():
        splitter = make_splitter(protocol)
        items = splitter.feed(raw)
        assert splitter.corrupt == 0, protocol
        capture = Capture(CaptureSettings(hold_s=0.5, min_samples=5, clear_s=0.2))
        outcomes = []
        for i, item in enumerate(items):
            outcomes += capture.feed(i / 100, item if isinstance(item, Reading) else None)
        captured = [o.weight_kg for o in outcomes if isinstance(o, Captured)]
        assert len(captured) == 2, (protocol, outcomes)
        assert all(abs(c - w) <= 10 for c, w in zip(captured, WEIGHTS, strict=True)), captured
        flags = {r.stable for r in items if isinstance(r, Reading)}
        assert flags == ({True, False} if protocol in ("toledo", "ascii") else {None}), protocol
    # the Toledo line carries even parity in bit 7, as a 7E1 terminal read at 8N1
    assert any(b & 0x80 for b in data["toledo"])


def test_simulator_refuses_bad_options_in_one_sentence() -> None:
    proc = tally("simulate", "scale", "--protocol", "mettler")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "tally: unknown protocol 'mettler'; use one of toledo, xk3190, xk3190-eq, ascii\n"
    )
    proc = tally("simulate", "scale", "--protocol", "ascii", "--weights", "40t")
    assert proc.returncode == 2
    assert proc.stderr == (
        "tally: --weights must be whole kilograms separated by commas, not '40t'\n"
    )


def test_simulator_ends_on_sigterm(tmp_path: Path) -> None:
    proc = lifeline.popen(
        [sys.executable, "-m", "agent.cli", "simulate", "scale", "--protocol", "xk3190"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    path = proc.stdout.readline().decode().strip()
    assert os.path.exists(path)
    proc.terminate()
    assert proc.wait(10) == 0
    proc.stdout.close()


def test_a_bag_scale_simulator_shows_hundredths_that_capture_exactly() -> None:
    proc = lifeline.popen(
        [sys.executable, "-m", "agent.cli", "simulate", "scale", "--protocol", "ascii",
         "--rate", "100", "--division-kg", "0.01", "--weights", "50.12,49.94", "--trucks", "2",
         "--empty-s", "0.3", "--ramp-s", "0.2", "--settle-s", "1.5", "--noise-kg", "0"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        raw = _read_all(proc.stdout.readline().decode().strip(), proc)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    items = make_splitter("ascii").feed(raw)
    assert b"ST,GS,+00050.12kg" in raw and b"ST,GS,+00000.00kg" in raw
    capture = Capture(
        CaptureSettings(
            min_weight_kg=20, zero_band_kg=Decimal("0.2"), band_kg=Decimal("0.1"), hold_s=0.5,
            clear_s=0.2, exact=True,
        )
    )  # fmt: skip
    outcomes = []
    for i, item in enumerate(items):
        outcomes += capture.feed(i / 100, item if isinstance(item, Reading) else None)
    # on failure, what was read: the outcomes and how many frames showed each weight
    shown = collections.Counter(i.kg() if isinstance(i, Reading) else None for i in items)
    assert [getattr(o, "weight_kg", o) for o in outcomes] == [
        Decimal("50.12"),
        Decimal("49.94"),
    ], (outcomes, sorted(shown.items(), key=str))
    bad = tally(
        "simulate", "scale", "--protocol", "ascii", "--division-kg", "0.01", "--weights", "5O"
    )
    assert (bad.returncode, bad.stderr) == (
        2,
        "tally: --weights must be kilograms such as 50.12 separated by commas, not '5O'\n",
    )

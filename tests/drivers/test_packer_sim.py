from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

from pymodbus.client import ModbusTcpClient

from agent.cli.commands.simulate import load_map
from agent.daemon import lifeline
from drivers.modbus_points import decode
from drivers.packer_sim import BAGS_START, Packer, default_points
from tests.daemon import tally

ROOT = Path(__file__).resolve().parents[2]


def test_sample_config_map_matches_the_simulator() -> None:
    assert load_map(str(ROOT / "systemd" / "tally.toml"))[0] == (1, default_points())


def test_one_simulated_hour() -> None:
    p = Packer(1, default_points(), random.Random(7))
    p.until = 10**9  # no stops
    p.next_reset = 10**9  # no power cycle
    start_loaded = p.loaded
    for i in range(1, 36_001):
        p.step(i * 0.1, 0.1)
    filled = p.bags - BAGS_START
    assert filled == 2000
    assert 0.01 < p.returned / filled < 0.05
    assert 0 < p.broken / filled < 0.03
    assert p.loaded - start_loaded == filled - p.returned - p.broken


def test_stops_and_power_cycles_happen() -> None:
    p = Packer(1, default_points(), random.Random(1))
    states = set()
    resets = 0
    for i in range(1, 8 * 36_000):  # eight simulated hours
        before = p.bags
        p.step(i * 0.1, 0.1)
        states.add(p.running)
        resets += p.bags < before
    assert states == {True, False}
    assert resets >= 1
    assert any("power cycle" in line for line in p.log)
    assert any("stopped for" in line for line in p.log)


def test_simulator_serves_the_map_and_ends_on_sigterm() -> None:
    proc = lifeline.popen(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "simulate",
            "packer",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "20",
            "--seed",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        host, port = first.removeprefix("listening ").split(":")
        assert first == f"listening 127.0.0.1:{port}"
        client = ModbusTcpClient(host, port=int(port), timeout=2)
        assert client.connect()
        points = default_points()

        def read() -> dict[str, object]:
            out: dict[str, object] = {}
            for sp in points:
                pt = sp.point
                if pt.function == 1:
                    rr = client.read_coils(pt.address, count=1, device_id=1)
                    out[sp.role] = decode(pt, rr.bits[:1])
                else:
                    n = 2 if pt.type == "uint32" else 1
                    rr = client.read_holding_registers(pt.address, count=n, device_id=1)
                    out[sp.role] = decode(pt, rr.registers)
            return out

        first_values = read()
        import time

        deadline = time.monotonic() + 10
        while read()["bags"] == first_values["bags"] and time.monotonic() < deadline:
            time.sleep(0.1)
        later = read()
        client.close()
        assert sorted(first_values) == ["bags", "broken", "loaded", "returned", "running"]
        assert later["bags"] != first_values["bags"]
        assert first_values["running"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_bad_listen_and_bad_map_exit_2(tmp_path: Path) -> None:
    r = tally("simulate", "packer", "--listen", "nowhere")
    assert (r.returncode, r.stderr) == (
        2,
        "tally: --listen 'nowhere' must be HOST:PORT, e.g. 127.0.0.1:5020\n",
    )
    bad = tmp_path / "map.toml"
    bad.write_text('[[packer]]\nname = "l1"\nhost = "x"\n[[packer.point]]\nrole = "bagz"\n')
    r = tally("simulate", "packer", "--listen", "127.0.0.1:0", "--map", str(bad))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "packer[0].point[0].role: must be one of 'bags', 'returned', 'returned_over', 'broken', "
        "'loaded', 'running', 'spout', not 'bagz'",
        "packer[0].point[0].function: is required",
        "packer[0].point[0].address: is required",
    ]

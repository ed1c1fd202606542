"""The real daemon reading the real simulator over a pseudo-terminal produces weighings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agent.daemon import lifeline
from tests.daemon import Daemon, tally, wait_for, write_config


def test_daemon_captures_the_simulators_trucks(tmp_path: Path) -> None:
    sim = lifeline.popen(
        [sys.executable, "-m", "agent.cli", "simulate", "scale", "--protocol", "toledo",
         "--rate", "20", "--weights", "14800,43500", "--empty-s", "2.5", "--ramp-s", "1",
         "--settle-s", "3", "--seed", "3"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert sim.stdout is not None
        port = sim.stdout.readline().decode().strip()
        config = write_config(
            tmp_path,
            f'[[scale]]\nname = "scale1"\nport = "{port}"\nprotocol = "toledo"\n'
            "hold_s = 1.0\nclear_s = 1.0\n",
        )
        with Daemon(config) as daemon:

            def weighings() -> list[dict[str, object]]:
                proc = tally("events", "--config", str(config), "--kind", "weighing", "--json")
                return [json.loads(line) for line in proc.stdout.splitlines()]

            events = wait_for(lambda: len(weighings()) >= 2 and weighings(), timeout=60)
            assert daemon.request("ping") is not None
        captured = [e["data"] for e in events if e["kind"] == "weighing.captured"]
        # the simulator plays its trucks from its own start: a daemon slow to start (a loaded
        # machine) meets the second truck first, so the two are matched whatever their order
        nearest = [min((14800, 43500), key=lambda w: abs(c["weight_kg"] - w)) for c in captured]
        assert sorted(nearest[:2]) == [14800, 43500]
        assert all(abs(c["weight_kg"] - w) <= 10 for c, w in zip(captured, nearest, strict=True))
        assert {c["scale"] for c in captured} == {"scale1"}
        assert all(c["samples"] >= 5 and c["stable_ms"] >= 1000 for c in captured)
        assert [e["kind"] for e in events][:2] == ["weighing.captured", "weighing.captured"]
    finally:
        sim.terminate()
        sim.wait(10)
        if sim.stdout is not None:
            sim.stdout.close()

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import PointConfig
from agent.daemon.store import Store
from tests.daemon import Daemon, tally, wait_for, write_config
from tests.drivers.modbus_server import ThreadedServer

BAGS = PointConfig("bags", 3, 0, "uint16")
RUNNING = PointConfig("running", 1, 0, "bool")


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    s = ThreadedServer().start()
    try:
        yield s
    finally:
        s.close()


def packer_toml(port: int) -> str:
    return f"""
[[packer]]
name = "line1"
host = "127.0.0.1"
port = {port}
poll_s = 0.1
timeout_s = 5  # a timeout here would only mean a busy machine, not a silent unit
tally_s = 1
max_bags_per_s = 1000.0
  [[packer.point]]
  role = "bags"
  function = 3
  address = 0
  [[packer.point]]
  role = "running"
  function = 1
  address = 0
  type = "bool"
"""


def stored_raw(db: Path) -> int | None:
    store = Store(str(db))
    try:
        state = store.get_state("packer.line1")
    finally:
        store.close()
    return None if state is None else int(state["last"]["bags"][0])


def test_bags_counted_exactly_once_across_stops_and_a_crash(
    tmp_path: Path, server: ThreadedServer
) -> None:
    config = write_config(tmp_path, packer_toml(server.server.port))
    db = tmp_path / "tally.db"
    server.set(1, RUNNING.point(), True)
    server.set(1, BAGS.point(), 65_500)  # the baseline: not counted

    def run_until(value: int) -> Daemon:
        daemon = Daemon(config).start()
        wait_for(lambda: stored_raw(db) == value, timeout=15)
        return daemon

    # 1. first run: baseline, then 30 bags
    d = run_until(65_500)
    server.set(1, BAGS.point(), 65_530)
    wait_for(lambda: stored_raw(db) == 65_530, timeout=15)
    assert d.stop() == 0
    # 2. while stopped the counter wraps: 26 bags counted once after the restart
    server.set(1, BAGS.point(), 20)
    d = run_until(20)
    server.set(1, BAGS.point(), 50)
    wait_for(lambda: stored_raw(db) == 50, timeout=15)
    # 3. a crash (SIGKILL), more bags meanwhile, then a clean run again
    server.set(1, BAGS.point(), 57)
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    server.set(1, BAGS.point(), 80)
    d = run_until(80)
    assert d.stop() == 0

    store = Store(str(db))
    try:
        tallies = [e.data for e in store.iter_events("packer.tally")]
        discontinuities = [e.data for e in store.iter_events("counter.discontinuity")]
    finally:
        store.close()
    assert sum(t["bags"] for t in tallies) == (80 - 65_500) % 65_536 == 116
    assert discontinuities == [
        {"device": "line1", "point": "bags", "previous": 65_530, "current": 20, "cause": "wrap"}
    ]
    # the events are listed by the real CLI too
    r = tally("events", "--config", str(config), "--kind", "packer.tally", "--json")
    assert r.returncode == 0
    assert len(r.stdout.splitlines()) == len(tallies)


def test_ctl_packer_reason(tmp_path: Path, server: ThreadedServer) -> None:
    extra = packer_toml(server.server.port).replace("tally_s = 1", "tally_s = 60\nstop_after_s = 1")
    config = write_config(tmp_path, extra)
    server.set(1, RUNNING.point(), False)
    with Daemon(config):
        r = tally(
            "ctl", "--config", str(config), "packer-reason",
            "--packer", "line9", "--reason", "belt torn", "--repair-min", "40",
        )  # fmt: skip
        assert (r.returncode, r.stderr) == (
            2,
            "tally: there is no packer 'line9'; the packers are: line1\n",
        )
        r = tally(
            "ctl", "--config", str(config), "packer-reason",
            "--packer", "line1", "--reason", "belt torn", "--repair-min", "40",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        reply = json.loads(r.stdout)
        assert {k: reply[k] for k in ("packer", "reason", "expected_repair_min")} == {
            "packer": "line1",
            "reason": "belt torn",
            "expected_repair_min": 40,
        }
        r = tally(
            "ctl", "--config", str(config), "packer-reason",
            "--packer", "line1", "--reason", "x", "--repair-min", "soon",
        )  # fmt: skip
        assert r.returncode == 2
        assert "argument --repair-min: invalid int value: 'soon'" in r.stderr
    store = Store(str(tmp_path / "tally.db"))
    try:
        stops = [e.data for e in store.iter_events("packer.stopped")]
    finally:
        store.close()
    assert [(s["reason"], s["expected_repair_min"]) for s in stops][-1] == ("belt torn", 40)
    assert stops[-1]["since"] == reply["since"]

"""The daemon as tally.service runs it: optimised, every module's byte code found under the
cache prefix `make install` fills, weighing a truck and syncing it to the real receiver."""

from __future__ import annotations

import json
import re
from pathlib import Path

from agent.daemon import bytecode
from tests.daemon import Daemon, scale_simulator, tally, wait_for, write_config
from tests.sync.helpers import Receiver, write_private

REPO = Path(__file__).resolve().parents[2]
TOKEN = "optimised-daemon-token-0123456789"


def unit_environment() -> dict[str, str]:
    """The Environment= lines of systemd/tally.service."""
    env: dict[str, str] = {}
    for line in (REPO / "systemd/tally.service").read_text(encoding="utf-8").splitlines():
        if line.startswith("Environment="):
            for pair in line.removeprefix("Environment=").split():
                name, value = pair.split("=", 1)
                env[name] = value
    return env


def test_the_unit_runs_the_daemon_optimised_from_its_own_byte_code() -> None:
    env = unit_environment()
    assert env["PYTHONOPTIMIZE"] == "2"
    assert env["PYTHONPYCACHEPREFIX"] == "/opt/tally/pycache"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # it may not write, so install compiles


def test_the_optimised_daemon_weighs_and_syncs_from_byte_code_alone(tmp_path: Path) -> None:
    prefix = tmp_path / "pycache"
    # one process: the tests beside it on a 2-core runner keep a core (a timing test starved)
    packages = [REPO / "agent", REPO / "drivers", REPO / "sync"]
    counts = bytecode.compile_all([*bytecode.python_roots(), *packages], prefix, workers=1)
    assert counts["written"] > 300
    receiver = Receiver(tmp_path / "receiver", f"wb1:{TOKEN}\n").start()
    token = write_private(tmp_path / "token", TOKEN)
    env = {
        **unit_environment(),
        "PYTHONPYCACHEPREFIX": str(prefix),
        "PYTHONVERBOSE": "1",  # names the file each module's code came from
    }
    try:
        with scale_simulator(
            *("--protocol", "toledo", "--rate", "20", "--weights", "14800"),
            *("--empty-s", "1", "--ramp-s", "0.5", "--settle-s", "2.5", "--seed", "5"),
        ) as port:
            config = write_config(
                tmp_path / "agent",
                f'[[scale]]\nname = "scale1"\nport = "{port}"\nprotocol = "toledo"\n'
                "hold_s = 1.0\nclear_s = 0.5\n\n"
                f'[sync]\nurl = "{receiver.url}"\ntoken_file = "{token}"\ninterval_s = 0.1\n',
            )
            with Daemon(config, env=env) as daemon:
                weighed = wait_for(
                    lambda: [
                        e
                        for e in map(json.loads, tally(
                            "events", "--config", str(config), "--kind", "weighing", "--json"
                        ).stdout.splitlines())
                        if e["kind"] == "weighing.captured"
                    ],
                    timeout=60,
                )  # fmt: skip
                seq = weighed[0]["seq"]
                wait_for(lambda: daemon.request("sync.sender.status")["acked_through"] >= seq)
                log = daemon.log()
        assert abs(weighed[0]["data"]["weight_kg"] - 14800) <= 10
        stats = json.loads(tally("serve", "stats", "--db", str(receiver.db), "--json").stdout)
        assert stats["terminals"][0]["max_seq"] >= seq
        loaded = re.findall(r"^# code object from '?(.*?)'?$", log, re.MULTILINE)
        assert len(loaded) > 300  # the whole daemon: stdlib, pyserial, httpx, Tally
        from_source = [f for f in loaded if not f.endswith(".opt-2.pyc")]
        assert from_source == []
        assert all(f.startswith(str(prefix)) for f in loaded)
        # the sender's HTTP is h11 on asyncio (sync/transport.py): httpx's own transport would
        # bring httpcore and anyio, 2 MiB kept for the daemon's life
        assert [f for f in loaded if re.search(r"/(httpcore|anyio)/", f)] == []
    finally:
        receiver.stop()

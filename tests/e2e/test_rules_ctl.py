"""The standard's rules against the real daemon: a bulk loader's stop on the drivers' board, a
handover stop, and the operator signed in on every operator event recorded through `tally ctl`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from textual.widgets import Static

from agent import cli
from agent.daemon.store import Store
from agent.domain.kinds import OPERATOR_KINDS
from tests.daemon import Daemon, tally, wait_for, write_config
from tests.drivers.modbus_server import ThreadedServer
from tests.e2e.test_packer_restart import RUNNING
from tui.board import BoardApp

TZ = ZoneInfo("Asia/Shanghai")
DEADLINE_S = 30.0  # generous: the machine may be loaded; nothing here measures speed


@pytest.fixture
def server() -> Iterator[ThreadedServer]:
    s = ThreadedServer().start()
    try:
        yield s
    finally:
        s.close()


def ctl(config: Path, *args: str) -> Any:
    """Run `tally ctl --config F --json ...`; it must succeed."""
    r = tally("ctl", "--config", str(config), "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def events(db: Path, kind: str | None = None) -> list[Any]:
    store = Store(str(db))
    try:
        return list(store.iter_events(kind))
    finally:
        store.close()


async def test_a_bulk_loaders_stop_reaches_the_drivers_board_with_its_repair_time(
    tmp_path: Path, server: ThreadedServer
) -> None:
    # the shift changes now (local time): a stop now is a handover stop
    now = datetime.now(TZ)
    config = write_config(
        tmp_path,
        f"""
[checks]
shift_starts = ["{now:%H:%M}"]
handover_window_min = 5

[[packer]]
name = "bulk1"
kind = "bulk"
host = "127.0.0.1"
port = {server.server.port}
poll_s = 0.1
timeout_s = 5
stop_after_s = 1
  [[packer.point]]
  role = "running"
  function = 1
  address = 0
  type = "bool"
""",
    )
    server.set(1, RUNNING.point(), True)
    with Daemon(config) as d:
        wait_for(lambda: d.request("status")["devices"].get("bulk1", {}).get("online"), 20)
        server.set(1, RUNNING.point(), False)
        wait_for(lambda: events(tmp_path / "tally.db", "packer.stopped"), DEADLINE_S)
        reply = ctl(
            config,
            "packer-reason",
            "--packer",
            "bulk1",
            "--reason",
            "斗提机故障",
            "--repair-min",
            "25",
        )
        assert (reply["packer"], reply["expected_repair_min"]) == ("bulk1", 25)
        app = BoardApp(d.socket, "en", tz=TZ)
        async with app.run_test(size=(120, 40)) as pilot:
            board = app.query_one("#board-stopped", Static)

            def shown() -> str:
                return str(board.render())

            for _ in range(int(DEADLINE_S / 0.1)):
                if "25 min" in shown():
                    break
                await pilot.pause(0.1)
            assert "■ bulk1  斗提机故障  25 min" in shown()
            app.workers.cancel_group(app, "link")  # no state may arrive while the app closes
            await pilot.pause()
    stops = [e.data for e in events(tmp_path / "tally.db", "packer.stopped")]
    assert [(s["kind"], s["handover"], s["reason"]) for s in stops] == [
        ("bulk", True, None),
        ("bulk", True, "斗提机故障"),
    ]
    # a bulk loader counts no bags and takes no spot checks
    r = tally(
        "ctl", "--config", str(config), "check-print", "--packer", "bulk1", "--result", "pass"
    )
    assert r.returncode != 0


def test_every_operator_event_through_ctl_carries_its_operator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path,
        '[[packer]]\nname = "line1"\nhost = "127.0.0.1"\nport = 1\n\n[checks]\nbag_samples = 1\n',
    )

    def run(*args: str) -> Any:
        """`tally ctl --json ...` in this process (a process each would only add minutes)."""
        assert cli.main(["ctl", "--config", str(config), "--json", *args]) == 0
        return json.loads(capsys.readouterr().out)

    with Daemon(config):
        assert ctl(config, "who") == {}
        signed = ctl(config, "sign-in", "--name", "0173", "--post", "weighbridge")
        assert (signed["operator"], signed["post"]) == ("0173", "weighbridge")
        plate = ("--plate", "苏A12345")
        run("arrive", *plate, "--order", "SO1", "--product", "P.O 42.5",
            "--load", "bulk", "--planned-kg", "30000")  # fmt: skip
        run("gate-in", *plate)
        run("queue", *plate, "--scale", "scale1")
        run("loading-start", *plate, "--point", "bulk1")
        run("loading-finish", *plate)
        run("seal", *plate, "--seal", "A1")
        run("exit", *plate, "--seals-seen", "A1", "--reason", "scale down")  # never weighed
        run("arrive", "--plate", "京B88888", "--order", "SO2", "--product", "P.O 42.5",
            "--load", "bagged", "--planned-kg", "30000")  # fmt: skip
        run("cancel", "--plate", "京B88888", "--reason", "wrong order")
        run("window-arrive", "--window", "sales", "--service", "plan_order")
        run("window-serve", "--window", "sales")
        run("check-bags", "--packer", "line1", "--kg", "50.1")
        run("packer-calibrated", "--packer", "line1")
        run("packer-reason", "--packer", "line1", "--reason", "belt", "--repair-min", "5")
        run("note", "--text", "scale 1 cleaned")
        run("plan", "--day", "2026-12-01", "--tonnes", "1200")
        seal = events(tmp_path / "tally.db", "visit.sealed")[-1]
        run("correct", "--event", seal.id, "--field", "seals", "--new", "A2", "--reason", "typo")
        # naming another operator on one command overrides the signed-in one
        run("check-print", "--packer", "line1", "--result", "pass", "--by", "qc",
            "--operator", "QC李娜")  # fmt: skip
        assert ctl(config, "sign-out")["operator"] == "0173"
    recorded = [e for e in events(tmp_path / "tally.db") if e.kind in OPERATOR_KINDS]
    kinds = {e.kind for e in recorded}
    assert OPERATOR_KINDS - kinds == {
        "visit.weighed",  # needs a truck scale's capture
        "ticket.print_requested",  # needs a printer
        "ticket.reprinted",
    }
    assert {(e.kind, e.data["operator"]) for e in recorded} == {
        *((k, "0173") for k in kinds - {"check.print_code"}),
        ("check.print_code", "QC李娜"),
    }
    signs = [(e.kind, e.data) for e in events(tmp_path / "tally.db", "operator")
             if e.kind.startswith("operator.signed")]  # fmt: skip
    assert signs == [
        ("operator.signed_in", {"operator": "0173", "post": "weighbridge"}),
        ("operator.signed_out", {"operator": "0173", "post": "weighbridge"}),
    ]

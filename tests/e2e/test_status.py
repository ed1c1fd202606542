"""`tally status` and the `health` topic against the real daemon."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agent.daemon.client import AsyncClient
from agent.daemon.store import Writer
from tests.daemon import Daemon, tally, wait_for, write_config


def test_status_of_a_healthy_daemon_and_the_health_topic(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[storage]\nmin_free_mb = 0\n")
    # A weighing stored by an earlier run: status finds it in the store.
    w = Writer(str(tmp_path / "tally.db"), "wb1")
    captured = w.append_sync(
        "weighing.captured",
        {
            "weighing": "w1",
            "scale": "scale1",
            "weight_kg": 48200,
            "mode": "gross",
            "stable_ms": 3000,
            "samples": 30,
        },
    )
    w.close()
    with Daemon(config) as d:
        out = tally("status", "--config", str(config))
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == "tally wb1: healthy"
        assert lines[2:4] == [
            "  devices   none configured or none reported yet",
            "  sync      off",
        ]
        assert lines[-1] == f"  weighing  48200 kg on scale1 at {captured.at}"
        js = tally("status", "--config", str(config), "--json")
        assert js.returncode == 0
        summary = json.loads(js.stdout)
        assert summary["healthy"] is True
        assert summary["last_weighing"] == {
            "weighing": "w1",
            "scale": "scale1",
            "weight_kg": 48200,
            "at": captured.at,
        }
        assert summary["disk"]["path"] == str(tmp_path)
        assert summary["disk"]["full"] is False
        health = asyncio.run(_first_health(d.socket))
        assert sorted(health) == [
            "clock_offset_ms",
            "disk_free_mb",
            "disk_full",
            "last_seq",
            "last_weighing_at",
            "uptime_s",
            "version",
        ]
        assert health["last_weighing_at"] == captured.at
        assert health["disk_full"] is False
        assert health["last_seq"] >= 2


async def _first_health(socket: str) -> Any:
    client = AsyncClient(socket)
    await client.connect()
    try:
        async with asyncio.timeout(10):
            async for topic, state in client.states():
                if topic == "health":
                    return state
    finally:
        await client.close()


def test_status_is_unhealthy_below_the_disk_floor(tmp_path: Path) -> None:
    # No test machine has this much free: disk_low is raised and status exits 1.
    config = write_config(tmp_path, "[storage]\nmin_free_mb = 10000000\n")
    with Daemon(config) as d:
        wait_for(lambda: d.request("status")["alerts"], timeout=10)
        out = tally("status", "--config", str(config))
        assert out.returncode == 1
        assert out.stdout.splitlines()[0] == "tally wb1: UNHEALTHY"
        summary = d.request("status")
        assert [a["alert"] for a in summary["alerts"]] == ["disk_low"]
        assert summary["problems"] == [
            f"the disk holding {tmp_path} has {summary['disk']['free_mb']} MiB free,"
            " below 10000000 MiB"
        ]
    ev = tally("events", "--config", str(config), "--kind", "alert", "--json")
    assert [json.loads(line)["data"]["alert"] for line in ev.stdout.splitlines()] == ["disk_low"]


def test_status_without_a_daemon_exits_1(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = tally("status", "--config", str(config))
    assert out.returncode == 1
    assert out.stdout == ""
    assert "no Tally daemon answers on" in out.stderr
    js = tally("status", "--config", str(config), "--json")
    assert js.returncode == 1
    assert json.loads(js.stdout)["healthy"] is False

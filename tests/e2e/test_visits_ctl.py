"""The real daemon driven by `tally ctl` through visit stages (no scale needed), then KPIs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.daemon import Daemon, tally, wait_for, write_config


def ctl(config: Path, *args: str) -> Any:
    """Run `tally ctl --config F ...` and return its JSON answer (the command must succeed)."""
    r = tally("ctl", "--config", str(config), *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def refused(config: Path, *args: str) -> str:
    """Run a command that must be refused; return its one-line message."""
    r = tally("ctl", "--config", str(config), *args)
    assert (r.returncode, r.stdout) == (2, ""), r
    return r.stderr.strip()


def test_visits_through_ctl_then_kpi_and_rebuild(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[kpi]\nqueue_alert = 1\n")
    with Daemon(config) as d:
        bagged = ctl(
            config,
            "arrive",
            "--plate",
            "苏ａ·12345",
            "--order",
            "SO1",
            "--product",
            "P.O 42.5",
            "--load",
            "bagged",
            "--planned-kg",
            "30000",
        )
        assert bagged["plate"] == "苏A12345"
        bulk = ctl(
            config,
            "arrive",
            "--plate",
            "京B-88888",
            "--order",
            "SO2",
            "--product",
            "P.O 42.5",
            "--load",
            "bulk",
            "--planned-kg",
            "33000",
        )
        ctl(
            config,
            "arrive",
            "--plate",
            "粤BD12345",
            "--order",
            "SO3",
            "--product",
            "P.C 32.5",
            "--load",
            "bulk",
            "--planned-kg",
            "20000",
        )
        # Three queue at the gate, more than queue_alert = 1.
        snap = d.request("visits.list")
        assert [v["plate"] for v in snap["queue"]] == ["苏A12345", "京B88888", "粤BD12345"]
        wait_for(lambda: "queue_long" in {a["alert"] for a in alerts(config)})

        assert refused(
            config,
            "arrive",
            "--plate",
            "苏A1234O",
            "--order",
            "S",
            "--product",
            "P",
            "--load",
            "bulk",
            "--planned-kg",
            "100",
        ) == (
            "tally: plate '苏A1234O' contains the letter I or O, which plates never use;"
            " did you mean 1 or 0?"
        )
        assert refused(
            config,
            "arrive",
            "--plate",
            "苏B12345",
            "--order",
            "S",
            "--product",
            "P",
            "--load",
            "bulk",
            "--planned-kg",
            "100001",
        ) == ("tally: planned kg must be a whole number from 1 to 100000, not 100001")
        assert refused(config, "queue", "--plate", "苏A12345") == (
            f"tally: 苏A12345 (visit {bagged['visit']}) is not through the gate yet;"
            " record gate-in first"
        )

        v = ctl(config, "gate-in", "--plate", "苏A12345")
        assert (v["stage"], v["visit"]) == ("gated_in", bagged["visit"])
        assert refused(config, "gate-in", "--visit", bagged["visit"]).startswith(
            "tally: 苏A12345 (visit "
        )
        ctl(config, "queue", "--plate", "苏A12345")
        assert [v["plate"] for v in d.request("visits.list")["scale_queue"]] == ["苏A12345"]
        assert refused(config, "weigh", "--plate", "苏A12345") == (
            "tally: there is no unassigned weighing; wait for the scale to capture one"
        )
        ctl(config, "loading-start", "--plate", "苏A12345", "--point", "line1")
        v = ctl(config, "loading-finish", "--plate", "苏A12345", "--bags", "600", "--bag-kg", "50")
        assert (v["stage"], v["bags"], v["bag_kg"]) == ("loaded", 600, 50)
        ctl(config, "exit", "--plate", "苏A12345", "--reason", "not weighed in this test")

        ctl(config, "gate-in", "--visit", bulk["visit"])
        ctl(config, "loading-start", "--visit", bulk["visit"], "--point", "bulk1")
        assert refused(config, "seal", "--visit", bulk["visit"], "--seal", "A1") == (
            f"tally: 京B88888 (visit {bulk['visit']}) has not finished loading;"
            " seal it after loading"
        )
        ctl(config, "loading-finish", "--visit", bulk["visit"])
        v = ctl(config, "seal", "--visit", bulk["visit"], "--seal", "A1,A2", "--seal", "A3")
        assert (v["stage"], v["seals"]) == ("sealed", ["A1", "A2", "A3"])
        assert refused(config, "exit", "--visit", bulk["visit"]) == (
            f"tally: 京B88888 (visit {bulk['visit']}) is sealed; give the seal numbers the gate"
            " sees (seals_seen) to let it out"
        )
        ctl(
            config,
            "exit",
            "--visit",
            bulk["visit"],
            "--seals-seen",
            "A3,A2,A1",
            "--reason",
            "not weighed in this test",
        )
        # One left at the gate: not more than 1, the alert clears.
        wait_for(lambda: "queue_long" not in {a["alert"] for a in alerts(config)})
        v = ctl(config, "cancel", "--plate", "粤BD12345", "--reason", "wrong order")
        assert (v["stage"], v["cancel_reason"]) == ("cancelled", "wrong order")

        arrived = next(
            e for e in events(config, "visit.arrived") if e["data"]["visit"] == bulk["visit"]
        )
        ctl(
            config,
            "correct",
            "--event",
            arrived["id"],
            "--field",
            "planned_kg",
            "--new",
            "32000",
            "--reason",
            "order amended",
            "--operator",
            "li",
        )
        assert d.request("visits.list", visit=bulk["visit"])["planned_kg"] == 32000

        assert d.request("visits.list") == {
            "open": [],
            "queue": [],
            "scale_queue": [],
            "unassigned": [],
        }
        day = local_day(arrived["at"])
        report = d.request("kpi.report", day=day)
        r = tally("kpi", "--config", str(config), "--day", day, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == report
        assert (
            report["bulk_turnaround"]["count"],
            report["seal_lag"]["count"],
            report["bag_load_wait"]["count"],
            report["daily_completion"]["planned_t"],
            report["daily_completion"]["completed_t"],
        ) == (1, 1, 1, 30.0, 30.0)
        if day == local_day(events(config, "visit")[-1]["at"]):  # not across midnight
            # the live state is the same report, with the share the TUI colours waits from
            live_kpi = {**report, "warn_share": 0.8}
            wait_for(lambda: topic(config, "kpi") == live_kpi, timeout=15)

        live = d.request("visits.list", live=False)
        closed = d.request("visits.list", visit=bulk["visit"])
        r = tally("rebuild", "--config", str(config), "--json")
        assert r.returncode == 0, r.stderr
        online = json.loads(r.stdout)
        assert (online["source"], online["matched"], online["visits"]) == ("daemon", True, live)
        assert d.stop() == 0

    r = tally("rebuild", "--config", str(config), "--json")
    assert r.returncode == 0, r.stderr
    offline = json.loads(r.stdout)
    assert (offline["source"], offline["visits"]) == ("offline", live)
    assert offline["summary"] == {
        **online["summary"],
        "last_seq": offline["summary"]["last_seq"],
        "events": offline["summary"]["events"],
    }
    r = tally("rebuild", "--config", str(config))
    assert r.stdout.splitlines()[0] == "rebuilt offline (no daemon is running)"
    # A restarted daemon has the same visits.
    with Daemon(config) as d:
        assert d.request("visits.list", live=False) == live
        assert d.request("visits.list", visit=bulk["visit"]) == closed


def topic(config: Path, name: str) -> Any:
    """The current state of one topic, read from the subscribe stream."""
    import asyncio

    from agent.config import load
    from agent.daemon.client import AsyncClient

    client = AsyncClient(load(config, check_paths=False).terminal.socket)

    async def first() -> Any:
        await client.connect()
        try:
            async for got, state in client.states():
                if got == name:
                    return state
        finally:
            await client.close()
        return None

    return asyncio.run(asyncio.wait_for(first(), 10))


def alerts(config: Path) -> list[dict[str, Any]]:
    """The active alerts."""
    return list(topic(config, "alerts")["active"])


def events(config: Path, kind: str) -> list[dict[str, Any]]:
    r = tally("events", "--config", str(config), "--kind", kind, "--json")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def local_day(at: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return when.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()

"""Live warnings end to end: a truck waits at the scale past a small target (set in the config so
the test runs in seconds); the alert shows on the TUI (Pilot) and in `tally status`, then clears."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.daemon import Daemon, tally, write_config
from tests.e2e.test_tui_actions import until
from tui.app import TallyApp
from tui.widgets import RowTable

TARGET_MIN = 0.1  # 6 s: the warning at half of it (3 s), overdue after 6 s


def status_lines(config: Path) -> list[str]:
    r = tally("status", "--config", str(config))
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


async def test_a_scale_queue_overruns_its_target_and_the_alert_shows_and_clears(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path,
        f"[storage]\nmin_free_mb = 0\n\n[kpi]\nweigh_wait_min = {TARGET_MIN}\nwarn_share = 0.5\n",
    )
    with Daemon(config) as d:
        vid = d.request(
            "visit.arrive",
            plate="苏A12345",
            order="SO1",
            product="P.O 42.5",
            load="bagged",
            planned_kg=30000,
        )["visit"]
        d.request("visit.gate_in", visit=vid)
        name = f"late.scale_wait.{vid}"
        overdue = (
            f"苏A12345 has been in the queue of the scale longer than its {TARGET_MIN:g} min target"
        )
        app = TallyApp(d.socket, "en", tz=ZoneInfo("Asia/Shanghai"), terminal="wb1")
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.connected and "visits" in app.states, "connected")
            await pilot.press("5")
            table = app.pane("health").query_one("#alerts", RowTable)

            def shown() -> dict[str, tuple[str, str, str]]:
                return {
                    r.key: (r.cells[0].text, r.cells[0].tone, r.cells[1].text)
                    for r in table._shown or ()
                }

            d.request("visit.queue", visit=vid)
            await until(pilot, lambda: shown().get(name, ("", "", ""))[1] == "bad", "overdue")
            assert shown()[name] == (name, "bad", overdue)
            lines = await asyncio.to_thread(status_lines, config)
            assert f"  alerts    {name}: {overdue}" in lines

            d.request("visit.cancel", visit=vid, reason="driver left")
            await until(pilot, lambda: name not in shown(), "the alert cleared")
        lines = await asyncio.to_thread(status_lines, config)
        assert not any(name in line for line in lines)
    r = tally("events", "--config", str(config), "--kind", "alert", "--json")
    mine: list[dict[str, Any]] = [
        json.loads(line) for line in r.stdout.splitlines() if name in line
    ]
    # raised once as a warning, once as overdue (no polling rewrites), cleared once
    assert [(e["kind"], e["data"].get("level")) for e in mine] == [
        ("alert.raised", "warning"),
        ("alert.raised", "overdue"),
        ("alert.cleared", None),
    ]

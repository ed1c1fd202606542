"""Alerts: raised once, cleared, kept across restarts, never lost to a concurrent change."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.daemon.alerts import STATE_KEY, Alerts
from agent.daemon.hub import Hub
from agent.daemon.store import Store, Writer


async def test_concurrent_raises_and_clears_all_land(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    writer = Writer(db, "wb1")
    store = Store(db)
    hub = Hub()
    alerts = Alerts(writer, hub, store)
    results = await asyncio.gather(*(alerts.raise_(f"a{i}", f"detail {i}") for i in range(10)))
    assert results == [True] * 10
    assert await alerts.raise_("a3", "detail 3") is False  # already active, same detail
    await asyncio.gather(alerts.clear("a1"), alerts.clear("a2"), alerts.raise_("b", "x"))
    alerts.show("disk_full", "the disk is full")
    await alerts.raise_("c", "y")
    writer.close()
    expected = {f"a{i}" for i in range(10)} - {"a1", "a2"} | {"b", "c"}
    assert {a["alert"] for a in hub.get("alerts")["active"]} == expected | {"disk_full"}
    stored = Store(db).get_state(STATE_KEY)
    assert set(stored) == expected  # what is only shown is not stored
    assert Store(db).count("alert.raised") == 12 and Store(db).count("alert.cleared") == 2
    # a restart brings back exactly the stored alerts, each with when it was raised
    again = Alerts(Writer(db, "wb1"), Hub(), Store(db))
    assert set(again.active) == expected
    assert all(v["since"].endswith("Z") for v in again.active.values())

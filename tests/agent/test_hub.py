"""The hub tells every listener and watcher, whatever one of them raises."""

from __future__ import annotations

import logging

import pytest

from agent.daemon.hub import Hub
from tests.agent.timeline import Timeline as Clock


def test_a_failing_listener_keeps_nothing_from_the_others(caplog: pytest.LogCaptureFixture) -> None:
    """A fault in one service's listener (the way a half-folded projection once went unseen) is
    logged with its traceback, and the other listeners, the watchers and the `events` topic
    still get everything."""
    hub = Hub()
    told: list[str] = []

    def broken(events: object) -> None:
        raise ValueError("a bug in one service")

    def broken_watcher(topic: str, value: object) -> None:
        raise KeyError(topic)

    hub.event_listeners += [broken, lambda evs: told.extend(ev.id for ev in evs)]
    hub.foreign_listeners += [broken, lambda evs: told.extend(f"foreign {ev.id}" for ev in evs)]
    hub.watchers += [broken_watcher, lambda topic, value: told.append(topic)]
    gate = Clock("gate1", "g", "gb")
    own, foreign = gate.event("visit.arrived", visit="v1"), gate.event("visit.exited", visit="v1")
    with caplog.at_level(logging.ERROR, logger="tally.hub"):
        hub.on_events([own])
        hub.on_foreign([foreign])
        hub.publish("health", {"ok": True})
    assert told == [own.id, "events", f"foreign {foreign.id}", "health"]
    assert hub.get("events")["last"][-1]["id"] == own.id
    failed = [r for r in caplog.records if r.name == "tally.hub"]
    assert len(failed) == 4 and all(r.exc_info for r in failed)
    assert "broken" in failed[0].getMessage() and "KeyError" not in failed[0].getMessage()

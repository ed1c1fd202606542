"""Retention prunes acknowledged events past the retention only; the disk floor raises an alert."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import StorageConfig
from agent.daemon.alerts import Alerts
from agent.daemon.hub import Hub
from agent.daemon.store import Store, Writer, set_state
from agent.domain.events import Stamp
from sync.sender.forwarder import Retention
from sync.sender.status import ACKED

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[Writer, Store, Alerts]]:
    db = str(tmp_path / "agent.db")
    writer = Writer(db, "wb1")
    store = Store(db)
    alerts = Alerts(writer, Hub(), store)
    yield writer, store, alerts
    store.close()
    writer.close()


async def test_prunes_only_acknowledged_events_older_than_the_retention(
    parts: tuple[Writer, Store, Alerts],
) -> None:
    writer, store, alerts = parts
    ages = [100, 95, 91, 89, 100, 100, 1]  # days; seq 1..7
    for i, days in enumerate(ages):
        stamp = Stamp(NOW - timedelta(days=days), i)
        await writer.append("operator.note", {"text": str(i)}, stamp=stamp)
    await writer.run(lambda conn: set_state(conn, {ACKED: 5}))
    retention = Retention(StorageConfig(retention_days=90), writer, store.path, alerts)
    assert await retention.prune(NOW) == 4
    # seq 4 is too young, 6 is old but not acknowledged, 7 is neither
    assert [e.seq for e in store.iter_events()] == [4, 6, 7]
    assert await retention.prune(NOW) == 0
    assert store.last_seq() == 7
    await writer.append("operator.note", {"text": "after"})
    assert store.last_seq() == 8  # seq numbers never reused after pruning


async def test_prunes_in_chunks(parts: tuple[Writer, Store, Alerts]) -> None:
    writer, store, alerts = parts
    old = Stamp(NOW - timedelta(days=200), 0)
    for _ in range(12_000):
        writer.submit("operator.note", {"text": "x"}, stamp=old)
    await writer.append("operator.note", {"text": "last"}, stamp=old)
    await writer.run(lambda conn: set_state(conn, {ACKED: 11_000}))
    retention = Retention(StorageConfig(retention_days=90), writer, store.path, alerts)
    assert await retention.prune(NOW) == 11_000
    assert store.count() == 1_001

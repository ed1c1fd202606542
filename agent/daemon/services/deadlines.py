"""Live warnings before a target is missed: the `late.*` alerts, raised and cleared on time.

A thin shell around agent/domain/deadlines.py: it evaluates the running waits of the plant's
open visits and of the window tickets of this terminal and of the others (replicated) whenever
either changes and at the next moment a wait crosses its warning share or its target (no
polling in between), and raises, upgrades and clears the alerts through agent/daemon/alerts.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from agent.daemon.runtime import Context
from agent.domain import deadlines
from agent.domain.visit import VisitState

MAX_SLEEP_S = 300.0  # look again at least this often: the wall clock may have been stepped


class Deadlines:
    """Raises `late.<target>.<id>` as a warning, then overdue; clears it when the stage happens."""

    name = "deadlines"

    def __init__(
        self,
        ctx: Context,
        open_visits: Callable[[], Iterable[VisitState]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ctx = ctx
        self.open_visits = open_visits
        self.clock = clock
        self.wake = asyncio.Event()
        self.wake.set()
        ctx.hub.watchers.append(self._on_publish)

    def _on_publish(self, topic: str, value: Any) -> None:
        if topic in ("visits", "windows"):
            self.wake.set()

    async def run(self) -> None:
        """Evaluate on every change and at the next due moment."""
        while True:
            self.wake.clear()
            sleep_s = await self.evaluate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sleep_s):
                    await self.wake.wait()

    async def evaluate(self) -> float:
        """Raise and clear the alerts as they stand now; return the seconds until the next change."""
        cfg = self.ctx.config.kpi
        windows = self.ctx.hub.get("windows") or {}
        tickets = [
            t for key in ("open", "others") for t in windows.get(key, []) if isinstance(t, dict)
        ]
        waits = deadlines.running(self.open_visits(), tickets, cfg)
        now = self.clock()
        found = deadlines.due(waits, now, cfg.warn_share)
        alerts = self.ctx.alerts
        for name in sorted(alerts.active):
            if name.startswith(deadlines.PREFIX) and name not in found:
                entry = alerts.active[name]
                await alerts.clear(name, deadlines.ended(entry.get("subject"), entry.get("target")))
        for name, d in sorted(found.items()):
            await alerts.raise_(
                name,
                d.detail,
                level=d.level,
                target=d.wait.target,
                subject=d.wait.subject,
                target_min=d.wait.target_min,
                due_at=d.due_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                **({"visit": d.wait.visit} if d.wait.visit else {}),
            )
        nxt = deadlines.next_change(waits, now, cfg.warn_share)
        if nxt is None:
            return MAX_SLEEP_S
        return min(MAX_SLEEP_S, max(0.05, (nxt - now).total_seconds()))

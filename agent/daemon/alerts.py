"""Active alerts: raised and cleared as events, kept across restarts, published to the UI."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.daemon.hub import Hub
from agent.daemon.store import Store, Writer
from agent.domain.events import Stamp, format_at

STATE_KEY = "alerts.active"


class Alerts:
    """Raises each alert once until it is cleared; every change is an event."""

    def __init__(self, writer: Writer, hub: Hub, store: Store) -> None:
        self.writer = writer
        self.hub = hub
        self.active: dict[str, dict[str, Any]] = dict(store.get_state(STATE_KEY, {}))
        # Raises and clears are serialised so two tasks never overwrite each other's change.
        self._lock = asyncio.Lock()
        self._publish()

    def _publish(self) -> None:
        self.hub.publish(
            "alerts",
            {"active": [{"alert": k, **v} for k, v in sorted(self.active.items())]},
        )

    def _stored(self, active: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """What survives a restart: every alert except those only shown (`show`)."""
        return {k: v for k, v in active.items() if v.get("stored", True)}

    async def raise_(self, alert: str, detail: str, **extra: Any) -> bool:
        """Raise `alert` unless it is already active; return whether an event was written."""
        async with self._lock:
            if alert in self.active and self.active[alert].get("detail") == detail:
                return False
            stamp = Stamp.now()
            entry = {"detail": detail, **extra, "since": format_at(stamp.at)}
            active = {**self.active, alert: entry}
            await self.writer.append(
                "alert.raised",
                {"alert": alert, "detail": detail, **extra},
                stamp=stamp,
                state={STATE_KEY: self._stored(active)},
            )
            self.active[alert] = entry
            self._publish()
            return True

    async def clear(self, alert: str, detail: str = "") -> bool:
        """Clear `alert` if it is active; return whether an event was written."""
        async with self._lock:
            if alert not in self.active:
                return False
            active = {k: v for k, v in self.active.items() if k != alert}
            await self.writer.append(
                "alert.cleared",
                {"alert": alert, "detail": detail},
                state={STATE_KEY: self._stored(active)},
            )
            self.active.pop(alert, None)
            self._publish()
            return True

    def show(self, alert: str, detail: str) -> None:
        """Show an alert that cannot be stored (the disk is full) without writing an event."""
        self.active[alert] = {"detail": detail, "stored": False}
        self._publish()

    def hide(self, alert: str) -> None:
        """Remove an alert shown with `show`."""
        if self.active.pop(alert, None) is not None:
            self._publish()

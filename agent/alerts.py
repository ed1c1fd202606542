"""Active alerts: raised and cleared as events, kept across restarts, published to the UI."""

from __future__ import annotations

from typing import Any

from agent.hub import Hub
from agent.store import Store, Writer

STATE_KEY = "alerts.active"


class Alerts:
    """Raises each alert once until it is cleared; every change is an event."""

    def __init__(self, writer: Writer, hub: Hub, store: Store) -> None:
        self.writer = writer
        self.hub = hub
        self.active: dict[str, dict[str, Any]] = dict(store.get_state(STATE_KEY, {}))
        self._publish()

    def _publish(self) -> None:
        self.hub.publish(
            "alerts",
            {"active": [{"alert": k, **v} for k, v in sorted(self.active.items())]},
        )

    async def raise_(self, alert: str, detail: str, **extra: Any) -> bool:
        """Raise `alert` unless it is already active; return whether an event was written."""
        if alert in self.active and self.active[alert].get("detail") == detail:
            return False
        active = {**self.active, alert: {"detail": detail, **extra}}
        ev = await self.writer.append(
            "alert.raised", {"alert": alert, "detail": detail, **extra}, state={STATE_KEY: active}
        )
        active[alert]["since"] = ev.at
        self.active = active
        self._publish()
        return True

    async def clear(self, alert: str, detail: str = "") -> bool:
        """Clear `alert` if it is active; return whether an event was written."""
        if alert not in self.active:
            return False
        active = {k: v for k, v in self.active.items() if k != alert}
        await self.writer.append(
            "alert.cleared", {"alert": alert, "detail": detail}, state={STATE_KEY: active}
        )
        self.active = active
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

"""The unattended weighbridge alert (`scale_unattended.<scale>`): trucks queued at an online truck
scale and no weighing captured for `[kpi] scale_unattended_min`. It wakes at the next due time."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from agent.domain.attendance import ScaleWatch, unattended
from agent.domain.events import Event, parse_at
from agent.domain.kinds import Kind

if TYPE_CHECKING:
    from agent.daemon.runtime import Context, Service

ALERT = "scale_unattended."


class AttendanceService:
    """Watches the scale queue, the scales' captures and their online state."""

    name = "attendance"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.scales = [s.name for s in ctx.config.scales if s.role == "truck"]
        self.limit = timedelta(minutes=ctx.config.kpi.scale_unattended_min)
        self.tz = ZoneInfo(ctx.config.terminal.timezone)
        self.last_capture: dict[str, datetime] = {}
        self.wake = asyncio.Event()
        ctx.hub.event_listeners.append(self._on_events)
        ctx.hub.watchers.append(self._on_publish)

    def _on_events(self, events: list[Event]) -> None:
        for ev in events:
            if ev.kind == Kind.WEIGHING_CAPTURED and ev.data.get("scale") in self.scales:
                self.last_capture[ev.data["scale"]] = ev.when
                self.wake.set()

    def _on_publish(self, topic: str, _value: Any) -> None:
        if topic in ("visits", "devices"):
            self.wake.set()

    def watches(self) -> dict[str, ScaleWatch]:
        """What the rule needs, from the live topics and the captures seen."""
        devices = self.ctx.hub.get("devices") or {}
        queue = (self.ctx.hub.get("visits") or {}).get("scale_queue") or []
        out: dict[str, ScaleWatch] = {}
        for name in self.scales:
            d = devices.get(name) or {}
            online = parse_at(d["since"]) if d.get("online") and d.get("since") else None
            queued = tuple(
                parse_at(v["queued_at"])
                for v in queue
                if isinstance(v, dict) and v.get("scale") == name and v.get("queued_at")
            )
            out[name] = ScaleWatch(online, queued, self.last_capture.get(name))
        return out

    async def run(self) -> None:
        """Raise and clear the alerts; sleep until the next scale could become unattended."""
        while True:
            self.wake.clear()
            now = datetime.now(UTC)
            watches = self.watches()
            result = unattended(watches, now, self.limit)
            for name in self.scales:
                alert = ALERT + name
                since = result.idle_since.get(name)
                if since is not None:
                    n = len(watches[name].queued_since)
                    local = since.astimezone(self.tz)
                    await self.ctx.alerts.raise_(
                        alert,
                        f"scale {name}: {n} truck(s) queued and no weighing since {local:%H:%M}; "
                        "the weighbridge must not pause (司磅员不得暂停地磅工作)",
                        scale=name,
                    )
                elif alert in self.ctx.alerts.active:
                    w = watches[name]
                    why = (
                        "the scale is offline"
                        if w.online_since is None
                        else "the queue is empty"
                        if not w.queued_since
                        else "a weighing was captured"
                    )
                    await self.ctx.alerts.clear(alert, why)
            sleep = None
            if result.next_due is not None:
                sleep = max(0.0, (result.next_due - datetime.now(UTC)).total_seconds()) + 0.05
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sleep):
                    await self.wake.wait()


def build(ctx: Context) -> list[Service]:
    """The attendance watch, when the terminal has a truck scale."""
    if not any(s.role == "truck" for s in ctx.config.scales):
        return []
    return [AttendanceService(ctx)]

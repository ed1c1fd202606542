"""The service-window capability in the daemon: window.arrive / window.serve ops and live state
(this terminal's open tickets, and the other terminals' from replicated events)."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.daemon.runtime import Context, Service
from agent.domain.events import Event
from agent.domain.window_services import PlantWindows, WindowBook


class Windows:
    """Keeps the open tickets, validates window commands and appends their events."""

    name = "windows"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.book = WindowBook()
        self.lock = asyncio.Lock()
        for ev in ctx.store.iter_events("window"):
            self.book.apply(ev)
        # Other terminals' tickets: every terminal warns of every late window (docs/replication.md).
        self.others = PlantWindows()
        for ev in ctx.store.foreign_events(prefixes=("window",)):
            self.others.apply(ev)
        ctx.api.register("window.arrive", self.arrive)
        ctx.api.register("window.serve", self.serve)
        ctx.api.register("windows.list", self.list)
        ctx.hub.event_listeners.append(self.on_events)
        ctx.hub.foreign_listeners.append(self.on_foreign)
        self._publish()

    def on_events(self, events: list[Event]) -> None:
        """Fold committed window events into the book."""
        changed = False
        for ev in events:
            if ev.kind.startswith("window."):
                self.book.apply(ev)
                changed = True
        if changed:
            self._publish()

    def on_foreign(self, events: list[Event]) -> None:
        """Fold other terminals' window events as they are replicated here."""
        if [ev for ev in events if self.others.apply(ev)]:
            self._publish()

    def _state(self) -> dict[str, Any]:
        return {
            "open": [
                {
                    "ticket": t.ticket,
                    "window": t.window,
                    "service": t.service,
                    "arrived_at": t.arrived_at,
                }
                for t in self.book.open.values()
            ],
            "others": self.others.open_tickets(),
        }

    def _publish(self) -> None:
        self.ctx.hub.publish("windows", self._state())

    async def arrive(self, req: dict[str, Any]) -> Any:
        """Op `window.arrive {window, service, ticket?}` → the ticket."""
        async with self.lock:
            data = self.book.arrive(req.get("window"), req.get("service"), req.get("ticket"))
            ev = await self.ctx.writer.append("window.arrived", data)
            self.book.apply(ev)
        return {**data, "at": ev.at}

    async def serve(self, req: dict[str, Any]) -> Any:
        """Op `window.serve {ticket? | window?, service?}` → the served ticket."""
        async with self.lock:
            data = self.book.serve(req.get("ticket"), req.get("window"), req.get("service"))
            ev = await self.ctx.writer.append("window.served", data)
            self.book.apply(ev)
        return {**data, "at": ev.at}

    async def list(self, req: dict[str, Any]) -> Any:
        """Op `windows.list` → the open tickets."""
        return self._state()

    async def run(self) -> None:
        """Nothing to poll: the ops do the work."""
        await asyncio.Event().wait()


def build(ctx: Context) -> list[Service]:
    """The window service (always present: any terminal may host a window)."""
    return [Windows(ctx)]

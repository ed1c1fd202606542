"""The `plant` topic: other terminals' alerts, packer stops and offline devices, from the
foreign events this terminal holds (docs/replication.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.domain.events import Event, format_at
from agent.domain.plant import KINDS, Attention

if TYPE_CHECKING:
    from agent.daemon.runtime import Context, Service

LOOKBACK_DAYS = 7  # older stops and alerts are history, not attention


def build(ctx: Context) -> list[Service]:
    """Publish `plant` and register `plant.status`; no service of its own."""
    attention = Attention()
    since = format_at(datetime.now(UTC) - timedelta(days=LOOKBACK_DAYS))
    attention.add(ctx.store.foreign_events(kinds=KINDS, since_at=since))
    ctx.hub.publish("plant", attention.snapshot())

    def on_foreign(events: list[Event]) -> None:
        if attention.add(ev for ev in events if ev.kind in KINDS):
            ctx.hub.publish("plant", attention.snapshot())

    async def status(req: dict[str, Any]) -> dict[str, Any]:
        return attention.snapshot()

    ctx.hub.foreign_listeners.append(on_foreign)
    ctx.api.register("plant.status", status)
    return []

"""Health of the daemon: the `health` topic, the disk monitor, the `status` op and sd_notify."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent import notify, testhooks

if TYPE_CHECKING:
    from agent.runtime import Context


def build(ctx: Context) -> list[Any]:
    """The health services of the daemon (notification included)."""
    testhooks.install(ctx)
    services: list[Any] = []
    services.extend(notify.build(ctx))
    return services

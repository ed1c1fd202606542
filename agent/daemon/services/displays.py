"""Outdoor weight displays: each `[[display]]` shows its scale's live weight (the `scale.NAME`
topic), blank while that scale is offline."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agent.config import DisplayConfig
from agent.daemon.runtime import Context, Service
from drivers.display import SerialDisplay, Shown
from drivers.serial_scale import PortSettings


def shown(topic: Any) -> Shown:
    """What a display shows for a `scale.NAME` topic value (blank unless online with a weight)."""
    if not isinstance(topic, dict) or not topic.get("online") or topic.get("weight") is None:
        return Shown(None)
    return Shown(Decimal(str(topic["weight"])), bool(topic.get("stable")))


class DisplayService:
    """One outdoor display."""

    def __init__(self, ctx: Context, cfg: DisplayConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.name = f"display.{cfg.name}"
        self.driver = SerialDisplay(
            PortSettings(cfg.port, cfg.baudrate, cfg.bytesize, cfg.parity, cfg.stopbits),
            cfg.protocol,
            cfg.rate_hz,
            on_state=self._state,
        )

    async def _state(self, online: bool, reason: str) -> None:
        await self.ctx.device_state(self.name, online, reason, kind="display")

    async def run(self) -> None:
        """Feed the display until cancelled."""
        topic = f"scale.{self.cfg.scale}"
        await self.driver.run(lambda: shown(self.ctx.hub.get(topic)))


def build(ctx: Context) -> list[Service]:
    """A service per configured display."""
    return [DisplayService(ctx, d) for d in ctx.config.displays]

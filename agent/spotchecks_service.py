"""Spot checks in the daemon: bag-weight and print-code entries, what is due, overdue alerts."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.api import CommandError
from agent.config import NAME
from agent.events import Event
from agent.runtime import Context
from agent.spotchecks import CheckError, SpotChecks, bag_verdict

REFRESH_S = 30.0


class SpotCheckService:
    """Validates check entries into events, publishes the `checks` topic, raises overdue alerts."""

    name = "spotchecks"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.checks = SpotChecks(
            ctx.config.checks,
            ZoneInfo(ctx.config.terminal.timezone),
            [p.name for p in ctx.config.packers],
        )
        for ev in ctx.store.iter_events("packer"):
            self.checks.apply(ev)
        for ev in ctx.store.iter_events("check"):
            self.checks.apply(ev)
        ctx.api.register("check.bag_weight", self.bag_weight)
        ctx.api.register("check.print_code", self.print_code)
        ctx.api.register("checks.due", self.list_due)
        ctx.hub.event_listeners.append(self.on_events)
        self.wake = asyncio.Event()

    def on_events(self, events: list[Event]) -> None:
        """Fold committed packer and check events."""
        for ev in events:
            if ev.kind.startswith(("packer.", "check.")):
                self.checks.apply(ev)
                self.wake.set()

    def _packer(self, req: dict[str, Any]) -> str:
        name = req.get("packer")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise CommandError("packer must be the name of a packer, e.g. line1")
        known = set(self.checks.packers)
        if known and name not in known:
            raise CommandError(
                f"there is no packer {name!r}; known packers: {', '.join(sorted(known))}"
            )
        return name

    async def bag_weight(self, req: dict[str, Any]) -> Any:
        """Op `check.bag_weight {packer, samples_kg: [kg...], operator?}` → the verdict."""
        name = self._packer(req)
        samples = req.get("samples_kg")
        if not isinstance(samples, list):
            raise CommandError("samples_kg must be a list of bag weights in kg")
        p = self.checks.packers.get(name)
        try:
            verdict = bag_verdict(samples, p.bag_kg if p else 50, self.ctx.config.checks)
        except CheckError as exc:
            raise CommandError(str(exc)) from None
        data = {"packer": name, **verdict, "operator": str(req.get("operator") or "")}
        await self.ctx.writer.append("check.bag_weight", data)
        return data

    async def print_code(self, req: dict[str, Any]) -> Any:
        """Op `check.print_code {packer, result: pass|fail, note?, operator?}`."""
        name = self._packer(req)
        result = req.get("result")
        if result not in ("pass", "fail"):
            raise CommandError("result must be pass or fail")
        note = req.get("note") or ""
        if not isinstance(note, str) or len(note) > 500:
            raise CommandError("note must be a text of at most 500 characters")
        data = {
            "packer": name,
            "result": result,
            "note": note,
            "operator": str(req.get("operator") or ""),
        }
        await self.ctx.writer.append("check.print_code", data)
        return data

    async def list_due(self, req: dict[str, Any]) -> Any:
        """Op `checks.due` → the checks due now."""
        return {"due": [d.to_dict() for d in self.checks.due(datetime.now(UTC))]}

    async def run(self) -> None:
        """Refresh the `checks` topic and the overdue alerts every REFRESH_S or on new events."""
        raised: set[str] = set()
        while True:
            due = self.checks.due(datetime.now(UTC))
            self.ctx.hub.publish("checks", {"due": [d.to_dict() for d in due]})
            overdue = {f"check_overdue.{d.packer}.{d.check}": d for d in due if d.overdue}
            for alert, d in overdue.items():
                await self.ctx.alerts.raise_(
                    alert, f"{d.check} check on {d.packer} is overdue since {d.due_at.isoformat()}"
                )
            for alert in raised - set(overdue):
                await self.ctx.alerts.clear(alert, "done")
            raised = set(overdue)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), REFRESH_S)


def build(ctx: Context) -> list[SpotCheckService]:
    """The spot-check service, when the terminal has packers."""
    return [SpotCheckService(ctx)] if ctx.config.packers else []

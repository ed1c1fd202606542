"""Spot checks in the daemon: bag-weight and print-code entries, what is due, overdue alerts."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import NAME
from agent.daemon.api import CommandError
from agent.daemon.runtime import Context, Service
from agent.domain.events import Event
from agent.domain.spotchecks import BY, CheckError, Collected, SpotChecks, bag_verdict

log = logging.getLogger("tally.spotchecks")
REFRESH_S = 30.0


class SpotCheckService:
    """Validates check entries into events, publishes the `checks` topic, raises overdue alerts,
    and records a bag-weight check once a packer's bag scale has weighed `bag_samples` bags."""

    name = "spotchecks"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.checks = SpotChecks(
            ctx.config.checks,
            ZoneInfo(ctx.config.terminal.timezone),
            [p.name for p in ctx.config.packers if p.kind != "bulk"],
        )
        self.bulk = {p.name for p in ctx.config.packers if p.kind == "bulk"}
        self.bag_scales = {s.packer: s.name for s in ctx.config.scales if s.role == "bags"}
        self.recording: dict[str, int] = {}  # packer -> seq of its scale check not yet folded
        for ev in heapq.merge(
            ctx.store.iter_events("packer"), ctx.store.iter_events("check"), key=lambda e: e.seq
        ):
            if ev.data.get("packer") not in self.bulk:
                self.checks.apply(ev)
        ctx.api.register("check.bag_weight", self.bag_weight)
        ctx.api.register("packer.calibrated", self.calibrated)
        ctx.api.register("check.print_code", self.print_code)
        ctx.api.register("checks.due", self.list_due)
        ctx.hub.event_listeners.append(self.on_events)
        self.wake = asyncio.Event()

    def on_events(self, events: list[Event]) -> None:
        """Fold committed packer and check events."""
        for ev in events:
            if ev.kind.startswith(("packer.", "check.")) and ev.data.get("packer") not in self.bulk:
                self.checks.apply(ev)
                self.wake.set()
            pending = self.recording.get(str(ev.data.get("packer")))
            if ev.kind == "check.bag_weight" and pending is not None and pending <= ev.seq:
                del self.recording[ev.data["packer"]]

    def _packer(self, req: dict[str, Any]) -> str:
        name = req.get("packer")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise CommandError("packer must be the name of a packer, e.g. line1")
        known = {p.name for p in self.ctx.config.packers if p.kind != "bulk"}
        if name in self.bulk:
            raise CommandError(f"{name} is a bulk loader; spot checks are for packers")
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
        verdict = bag_verdict(samples, p.bag_kg if p else 50, self.ctx.config.checks)
        data = {
            "packer": name,
            **verdict,
            "operator": str(req.get("operator") or ""),
            "source": "typed",
            "by": _by(req),
        }
        await self.ctx.writer.append("check.bag_weight", data)
        return data

    async def record_collected(self, c: Collected) -> None:
        """Record the bag-weight check a bag scale's samples make (like a typed one)."""
        p = self.checks.packers.get(c.packer)
        try:
            verdict = bag_verdict(c.samples_kg, p.bag_kg if p else 50, self.ctx.config.checks)
        except CheckError as exc:  # the bag mass changed under the samples: wait for a typed one
            log.warning("cannot judge the bag scale's samples on %s: %s", c.packer, exc)
            self.recording[c.packer] = self.checks.last_seq + 1
            return
        data = {"packer": c.packer, **verdict, "operator": "", "source": "scale", "scale": c.scale}
        ev = await self.ctx.writer.append("check.bag_weight", data)
        if ev.seq > self.checks.last_seq:  # not folded yet: do not record these samples twice
            self.recording[c.packer] = ev.seq
        log.info("bag-weight check on %s from %s: %s", c.packer, c.scale, verdict["result"])

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
            "by": _by(req),
        }
        await self.ctx.writer.append("check.print_code", data)
        return data

    async def calibrated(self, req: dict[str, Any]) -> Any:
        """Op `packer.calibrated {packer, operator?}`: the crew calibrated it at start-up."""
        name = self._packer(req)
        data = {"packer": name, "operator": str(req.get("operator") or "")}
        ev = await self.ctx.writer.append("packer.calibrated", data)
        return {**data, "at": ev.at}

    async def list_due(self, req: dict[str, Any]) -> Any:
        """Op `checks.due` → the checks due now and the bag scales' progress (the topic's value)."""
        return self.topic()

    def topic(self) -> dict[str, Any]:
        """The `checks` topic value: checks due now, bag samples collected per packer."""
        return {
            "due": [d.to_dict() for d in self.checks.due(datetime.now(UTC))],
            "collecting": self.checks.collecting(self.bag_scales),
        }

    async def run(self) -> None:
        """Refresh the `checks` topic and the overdue alerts every REFRESH_S or on new events."""
        raised: set[str] = set()
        while True:
            for c in self.checks.collected():
                if c.packer not in self.recording:
                    await self.record_collected(c)
            due = self.checks.due(datetime.now(UTC))
            self.ctx.hub.publish(
                "checks",
                {
                    "due": [d.to_dict() for d in due],
                    "collecting": self.checks.collecting(self.bag_scales),
                },
            )
            overdue = {d.alert: d for d in due if d.overdue}
            for alert, d in overdue.items():
                who = "the quality office's " if d.by == "qc" else ""
                await self.ctx.alerts.raise_(
                    alert,
                    f"{who}{d.check} check on {d.packer} is overdue since {d.due_at.isoformat()}",
                )
            for alert in raised - set(overdue):
                await self.ctx.alerts.clear(alert, "done")
            raised = set(overdue)
            self.wake.clear()
            # not wait_for: on 3.11 it can swallow a cancellation that races a wake-up
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFRESH_S):
                    await self.wake.wait()


def _by(req: dict[str, Any]) -> str:
    by = req.get("by") or "crew"
    if by not in BY:
        raise CommandError("by must be crew (the packing crew) or qc (the quality office)")
    return str(by)


def build(ctx: Context) -> list[Service]:
    """The spot-check service, when the terminal has packers."""
    return [SpotCheckService(ctx)] if ctx.config.packers else []

"""Hand-built event streams for pure tests: one terminal's clocks, steps and reboots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agent.config import KpiConfig
from agent.domain.events import Event, format_at
from agent.domain.visit_commands import CommandContext, command
from agent.domain.visit_inputs import Refusal
from agent.domain.visit_projection import Projection

BASE = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)  # 09:00 in Asia/Shanghai


class Timeline:
    """Stamps events of one terminal: wall and monotonic clocks advance together unless stepped."""

    def __init__(
        self, terminal: str = "wb1", epoch: str = "e1", boot: str = "b1", start: datetime = BASE
    ) -> None:
        self.terminal, self.epoch, self.boot = terminal, epoch, boot
        self.wall = start
        self.mono_ns = 1_000_000_000_000
        self.seq = 0

    def advance(self, minutes: float) -> Timeline:
        """Both clocks move on by `minutes`."""
        self.wall += timedelta(minutes=minutes)
        self.mono_ns += int(minutes * 60_000_000_000)
        return self

    def step_wall(self, minutes: float) -> Timeline:
        """The wall clock jumps (NTP, an operator); the monotonic clock does not."""
        self.wall += timedelta(minutes=minutes)
        return self

    def reboot(self, boot: str) -> Timeline:
        """A new boot: the monotonic clock starts again near zero."""
        self.boot, self.mono_ns = boot, 5_000_000_000
        return self

    def event(self, kind: str, **data: Any) -> Event:
        """The next event of this terminal at the current clocks."""
        self.seq += 1
        return Event(
            self.terminal,
            self.epoch,
            self.seq,
            kind,
            format_at(self.wall),
            self.mono_ns,
            self.boot,
            data,
        )


class Driver:
    """Operator commands against a projection, appended as a store would, reactions included."""

    def __init__(
        self,
        kpi: KpiConfig | None = None,
        ctx: CommandContext | None = None,
        timeline: Timeline | None = None,
    ) -> None:
        self.p = Projection(kpi)
        self.t = timeline or Timeline()
        self.ctx = ctx or CommandContext(scales=("scale1",), default_scale="scale1")
        self.events: list[Event] = []
        self.ids = 0

    def append(self, kind: str, data: dict[str, Any]) -> Event:
        """Store one event and fold it in."""
        ev = self.t.event(kind, **data)
        self.events.append(ev)
        self.p.apply(ev)
        return ev

    def react(self) -> None:
        """Append what the projection asks for until it asks for nothing."""
        while True:
            out = self.p.reactions()
            if not out:
                return
            for kind, data in out:
                self.append(kind, data)

    def do(self, op: str, **req: Any) -> list[Event]:
        """Run one command; raise Refusal; return the events it appended."""
        self.ids += 1
        ctx = CommandContext(
            new_visit_id=f"v{self.ids}",
            scales=self.ctx.scales,
            default_scale=self.ctx.default_scale,
            packer_bag_kg=self.ctx.packer_bag_kg,
        )
        out = [self.append(k, d) for k, d in command(self.p, op, req, ctx)]
        self.react()
        return out

    def refused(self, op: str, **req: Any) -> str:
        """The refusal sentence of a command that must fail (and append nothing)."""
        before = len(self.events)
        try:
            self.do(op, **req)
        except Refusal as exc:
            assert len(self.events) == before
            return str(exc)
        raise AssertionError(f"{op} {req} was accepted")

    def capture(self, weight: int, scale: str = "scale1", weighing: str | None = None) -> str:
        """The scale captures a weighing; reactions (automatic matching) follow."""
        w = weighing or f"w{len(self.events) + 1}"
        self.append(
            "weighing.captured",
            {"weighing": w, "scale": scale, "weight_kg": weight, "mode": "gross"},
        )
        self.react()
        return w

"""The scale services: one per [[scale]], readings -> capture -> weighing events, live topic."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from agent.config import ScaleConfig
from agent.daemon.runtime import Context, Service
from agent.domain.capture import (
    Abandoned,
    Capture,
    CaptureSettings,
    FrozenWatch,
    Outcome,
    StepWatch,
)
from agent.domain.events import uuid7
from drivers.scale import Reading
from drivers.scale.reading import kg_value
from drivers.serial_scale import (
    DriverEvent,
    Frame,
    Offline,
    Online,
    PortSettings,
    SerialScale,
)
from drivers.ticks import next_tick

log = logging.getLogger("tally.scales")

PUBLISH_INTERVAL_S = 0.1  # live weights at most ~10 a second
PUBLISH_SLACK_S = 0.03  # a publish due this soon goes at once, not on a timer of its own
QUIET_STATES = frozenset({"armed", "captured"})  # read on the driver's quiet grid
COUNTERS_INTERVAL_S = 1.0  # a state where only the frame counters moved: at most once a second
COUNTERS = frozenset({"frames", "corrupt", "resyncs"})


def build(ctx: Context) -> list[Service]:
    """One service per configured scale."""
    return [ScaleService(ctx, cfg) for cfg in ctx.config.scales]


def weight_kg(reading: Reading) -> int | float | None:
    """The displayed weight in kg for the live view, keeping the indicator's decimals."""
    if reading.weight is None or reading.overload:
        return None
    value = kg_value(reading.weight, reading.unit)
    return int(value) if value == value.to_integral_value() else float(value)


def json_kg(kg: Decimal) -> int | float:
    """A kg value with at most a few decimals as a JSON number (50.12, or 50 when whole)."""
    return int(kg) if kg == kg.to_integral_value() else float(kg)


class ScaleService:
    """Drives one indicator: capture, events, `scale.<name>` topic, device state and alerts."""

    def __init__(self, ctx: Context, cfg: ScaleConfig, *, backoff_min_s: float = 0.5) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.name = f"scale.{cfg.name}"
        self.topic = f"scale.{cfg.name}"
        self.backoff_min_s = backoff_min_s
        self.bags = cfg.role == "bags"
        self.capture = Capture(CaptureSettings.from_config(cfg))
        # a bag put on or lifted off in one frame is normal; the step watch is for truck decks
        self.steps = (
            None
            if self.bags
            else StepWatch(cfg.band_kg, cfg.hold_s, cfg.min_weight_kg, cfg.silence_s)
        )
        self.frozen = FrozenWatch(cfg.min_weight_kg, cfg.frozen_alert_s)
        self.online = False
        self.reading: Reading | None = None
        self.last_weighing: dict[str, Any] | None = None
        self.last_sample: dict[str, Any] | None = None
        self.driver: SerialScale | None = None
        self._timer: asyncio.Handle | None = None
        self._flush: asyncio.TimerHandle | None = None  # counters held back, published later
        self._looked_at = 0.0  # when the state was last compared, published or not
        self._counted_at = 0.0  # when the counters were last published
        self._sent: dict[str, Any] | None = None
        self._step_alert = False

    async def run(self) -> None:
        """Read the scale until cancelled (the driver reconnects by itself)."""
        if self.bags:
            self.last_sample = self._stored_last_sample()
        else:
            self.last_weighing = self._stored_last_weighing()
        cfg = self.cfg
        self.driver = SerialScale(
            PortSettings(cfg.port, cfg.baudrate, cfg.bytesize, cfg.parity, cfg.stopbits),
            cfg.protocol,
            checksum=cfg.checksum,
            silence_s=cfg.silence_s,
            backoff_min_s=self.backoff_min_s,
        )
        self._publish()
        try:
            await self.driver.run(self._on_event)
        finally:
            for timer in (self._timer, self._flush):
                if timer is not None:
                    timer.cancel()
            self._timer = self._flush = None

    def _stored_last_weighing(self) -> dict[str, Any] | None:
        ev = self.ctx.store.last_event("weighing.captured", scale=self.cfg.name)
        if ev is None:
            return None
        data = ev.data
        return {"weighing": data["weighing"], "weight_kg": data["weight_kg"], "at": ev.at}

    def _stored_last_sample(self) -> dict[str, Any] | None:
        ev = self.ctx.store.last_event("check.bag_sample", scale=self.cfg.name)
        if ev is None:
            return None
        data = ev.data
        return {"packer": data["packer"], "weight_kg": data["weight_kg"], "at": ev.at}

    async def _on_event(self, event: DriverEvent) -> None:
        if isinstance(event, Frame):
            await self._on_frame(event)
        elif isinstance(event, Online):
            self.online = True
            await self.ctx.device_state(self.cfg.name, True, "", "scale")
            self._touch()
        elif isinstance(event, Offline):
            was_online, self.online = self.online, False
            self.reading = None
            if was_online:
                log.warning("%s offline: %s", self.cfg.name, event.reason)
            await self._outcomes(self.capture.interrupt(time.monotonic()))
            await self.ctx.device_state(self.cfg.name, False, event.reason, "scale")
            self._touch()

    async def _on_frame(self, frame: Frame) -> None:
        t = frame.mono_ns / 1e9
        item = frame.item
        reading = item if isinstance(item, Reading) else None
        await self._outcomes(self.capture.feed(t, reading, frame.batch))
        if self.driver is not None:
            # an empty deck at zero has nothing to watch but the next load, a weighed truck
            # nothing but its leaving: read on the quiet grid until a frame shows a load coming
            # on (the capture leaves "armed") or the deck empty again ("captured" ends)
            self.driver.pace(self.capture.state in QUIET_STATES)
        kg = reading.kg() if reading is not None else None
        step = None
        if self.steps is not None:
            stable = reading.stable if reading is not None else None
            step = self.steps.feed(t, kg, stable, frame.batch)
        if step is not None:
            self._step_alert = True
            await self.ctx.alerts.raise_(
                f"scale_step.{self.cfg.name}",
                f"{self.cfg.name}: the weight stepped from {step.from_kg} kg to {step.to_kg} kg "
                "while stable with no vehicle moving",
                scale=self.cfg.name,
            )
        elif self._step_alert and kg is not None and abs(kg) <= self.cfg.zero_band_kg:
            self._step_alert = False
            await self.ctx.alerts.clear(f"scale_step.{self.cfg.name}", "the deck returned to zero")
        if reading is not None:
            self.reading = reading
            frozen = self.frozen.feed(t, reading.raw, kg)
            if frozen is True:
                await self.ctx.alerts.raise_(
                    f"scale_frozen.{self.cfg.name}",
                    f"{self.cfg.name}: byte-identical frames for {self.cfg.frozen_alert_s:g} s "
                    f"with {kg} kg on the deck (a frozen or replayed source?)",
                    scale=self.cfg.name,
                )
            elif frozen is False:
                await self.ctx.alerts.clear(f"scale_frozen.{self.cfg.name}", "frames vary again")
        self._touch()

    async def _outcomes(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if self.bags:
                await self._bag_outcome(outcome)
                continue
            if isinstance(outcome, Abandoned):
                await self.ctx.writer.append(
                    "weighing.abandoned",
                    {"scale": self.cfg.name, "reason": outcome.reason, "max_kg": outcome.max_kg},
                )
                continue
            weighing = uuid7()
            ev = await self.ctx.writer.append(
                "weighing.captured",
                {
                    "weighing": weighing,
                    "scale": self.cfg.name,
                    "weight_kg": outcome.weight_kg,
                    "mode": outcome.mode,
                    "stable_ms": outcome.stable_ms,
                    "samples": outcome.samples,
                },
            )
            self.last_weighing = {"weighing": weighing, "weight_kg": outcome.weight_kg, "at": ev.at}

    async def _bag_outcome(self, outcome: Outcome) -> None:
        """A bag scale's capture is one bag-weight sample of its packer, to 0.01 kg."""
        if isinstance(outcome, Abandoned):
            log.info("%s: a bag left the scale unstable (%s)", self.cfg.name, outcome.reason)
            return
        kg = Decimal(outcome.weight_kg).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        ev = await self.ctx.writer.append(
            "check.bag_sample",
            {"packer": self.cfg.packer, "scale": self.cfg.name, "weight_kg": json_kg(kg)},
        )
        self.last_sample = {"packer": self.cfg.packer, "weight_kg": json_kg(kg), "at": ev.at}

    def snapshot(self) -> dict[str, Any]:
        """The `scale.<name>` topic value (bag scales add role, packer and last_sample)."""
        r = self.reading
        splitter = self.driver.splitter if self.driver is not None else None
        extra: dict[str, Any] = {}
        if self.bags:
            extra = {"role": "bags", "packer": self.cfg.packer, "last_sample": self.last_sample}
        return {
            "name": self.cfg.name,
            "online": self.online,
            "weight": weight_kg(r) if r is not None and self.online else None,
            "unit": "kg",
            "stable": r.stable if r is not None and self.online else None,
            "state": self.capture.state,
            "last_weighing": self.last_weighing,
            "frames": splitter.frames if splitter else 0,
            "corrupt": splitter.corrupt if splitter else 0,
            "resyncs": splitter.resyncs if splitter else 0,
            **extra,
        }

    def _touch(self) -> None:
        """Publish now, or on the read grid's tick that ends the current 0.1 s interval
        (coalescing). Frames are read on that grid, so the publish usually falls due right
        after them and waits no timer of its own: a timer a few milliseconds later would wake
        the daemon once more for every read."""
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        due = self._looked_at + PUBLISH_INTERVAL_S
        if due - loop.time() <= PUBLISH_SLACK_S:
            self._timer = loop.call_soon(self._publish)
        else:
            self._timer = loop.call_at(next_tick(due - PUBLISH_SLACK_S), self._publish)

    def _publish(self) -> None:
        """Publish the state if what it shows changed; frame counters alone wait up to 1 s.

        A scale sends frames all day, so the counters change with every one: publishing them
        each time would redraw every TUI and wake every subscriber ten times a second for a
        weight that stands still."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        # the next frame's check waits out the interval too, changed or not: a scale at
        # 20 frames/s is looked at ten times a second, not built a snapshot per frame
        self._looked_at = now
        snap = self.snapshot()
        sent = self._sent
        if sent is not None:
            if snap == sent:
                return
            if now - self._counted_at < COUNTERS_INTERVAL_S and all(
                snap[k] == sent.get(k) for k in snap if k not in COUNTERS
            ):
                if self._flush is None:
                    when = self._counted_at + COUNTERS_INTERVAL_S
                    self._flush = loop.call_at(
                        next_tick(when - PUBLISH_SLACK_S), self._flush_counters
                    )
                return
        self._sent = snap
        self._counted_at = now
        self.ctx.hub.publish(self.topic, snap)

    def _flush_counters(self) -> None:
        """The counters held back are due."""
        self._flush = None
        self._publish()

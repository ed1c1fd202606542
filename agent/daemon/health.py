"""Health of the daemon: the `health` topic, the disk monitor, the `status` op and sd_notify."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.daemon import notify
from agent.domain.events import Event
from drivers.ticks import sleep_on_beat

if TYPE_CHECKING:
    from agent.daemon.runtime import Context

log = logging.getLogger("tally.health")

INTERVAL_S = 5.0  # the health topic and the disk look; an idle daemon wakes for little else
SYNC_STALE_S = 600  # the oldest unsent event older than this makes the terminal unhealthy
DISK_LOW = "disk_low"
DISK_FULL = "disk_full"


@dataclass(frozen=True, slots=True)
class Disk:
    """Free space of the file system that holds the database."""

    path: str
    free_mb: int
    total_mb: int


def disk_usage(database: str) -> Disk:
    """Free and total MiB (for unprivileged users) of the database's file system."""
    folder = str(Path(database).parent)
    st = os.statvfs(folder)
    return Disk(folder, st.f_bavail * st.f_frsize >> 20, st.f_blocks * st.f_frsize >> 20)


def disk_low_action(free_mb: int, min_free_mb: int, active: bool) -> str | None:
    """'raise', 'clear' or None for the disk_low alert; clears only 10 % above the floor."""
    if min_free_mb <= 0:
        return "clear" if active else None
    if not active and free_mb < min_free_mb:
        return "raise"
    if active and free_mb >= min_free_mb + max(1, min_free_mb // 10):
        return "clear"
    return None


def newest_weighing(*candidates: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The candidate last-weighing dict with the latest `at` (ISO UTC strings sort by time)."""
    best: dict[str, Any] | None = None
    for c in candidates:
        if c and (best is None or str(c.get("at", "")) > str(best.get("at", ""))):
            best = dict(c)
    return best


def summarize(
    health: Mapping[str, Any],
    *,
    terminal: str,
    devices: Mapping[str, Any],
    sync: Mapping[str, Any] | None,
    sync_configured: bool,
    disk: Disk,
    min_free_mb: int,
    last_weighing: Mapping[str, Any] | None,
    alerts: list[dict[str, Any]],
    clock_stepped_at: str | None,
    replicas: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `status` answer: every health fact plus `healthy` and the problems that deny it."""
    problems: list[str] = []
    for name, dev in sorted(devices.items()):
        if not dev.get("online"):
            why = f" ({dev['reason']})" if dev.get("reason") else ""
            problems.append(f"device {name} is offline since {dev.get('since')}{why}")
    if health.get("disk_full"):
        problems.append(
            f"the disk holding {disk.path} is full; events are held until space returns"
        )
    elif min_free_mb > 0 and disk.free_mb < min_free_mb:
        problems.append(
            f"the disk holding {disk.path} has {disk.free_mb} MiB free, below {min_free_mb} MiB"
        )
    if sync_configured:
        s: dict[str, Any] = {"enabled": True, "backlog": None, "oldest_unsent_s": None}
        s.update(sync or {"state": "starting"})
        oldest = s.get("oldest_unsent_s")
        if isinstance(oldest, int | float) and oldest > SYNC_STALE_S:
            problems.append(
                f"the oldest unsent event is {oldest:.0f} s old ({s.get('backlog')} waiting)"
                + (f"; last error: {s['last_error']}" if s.get("last_error") else "")
            )
        if s.get("dead_letters"):
            problems.append(f"{s['dead_letters']} events were rejected by the server")
    else:
        s = {"enabled": False}
    return {
        "healthy": not problems,
        "problems": problems,
        "terminal": terminal,
        "version": health.get("version"),
        "uptime_s": health.get("uptime_s"),
        "last_seq": health.get("last_seq"),
        "devices": dict(devices),
        "sync": s,
        "disk": {
            "path": disk.path,
            "free_mb": disk.free_mb,
            "total_mb": disk.total_mb,
            "min_free_mb": min_free_mb,
            "full": bool(health.get("disk_full")),
        },
        "clock": {"offset_ms": health.get("clock_offset_ms"), "stepped_at": clock_stepped_at},
        "last_weighing": dict(last_weighing) if last_weighing else None,
        "alerts": alerts,
        "replicas": list(replicas or []),
    }


class HealthService:
    """Publishes `health`, shows disk_full, raises disk_low and answers the `status` op."""

    name = "health"

    def __init__(self, ctx: Context, interval_s: float = INTERVAL_S) -> None:
        self.ctx = ctx
        self.interval_s = interval_s
        self.last_weighing: dict[str, Any] | None = None
        self.clock_stepped_at: str | None = None
        self._alerting: asyncio.Task[bool] | None = None
        self._disk = Disk(str(Path(ctx.config.terminal.database).parent), 0, 0)
        store = ctx.store
        weighing = store.last_event("weighing.captured")
        if weighing is not None:
            self._note_weighing(weighing.at, weighing.data)
        stepped = store.last_event("clock.stepped")
        self.clock_stepped_at = stepped.at if stepped is not None else None
        ctx.hub.event_listeners.append(self.on_events)
        ctx.api.register("status", self.status)

    def _note_weighing(self, at: str, data: Any) -> None:
        if isinstance(data, str):
            data = json.loads(data)
        self.last_weighing = {
            "weighing": data.get("weighing"),
            "scale": data.get("scale"),
            "weight_kg": data.get("weight_kg"),
            "at": at,
        }

    def on_events(self, events: list[Event]) -> None:
        """Hub listener: remember the newest weighing and clock step."""
        for ev in events:
            if ev.kind == "weighing.captured":
                self._note_weighing(ev.at, ev.data)
            elif ev.kind == "clock.stepped":
                self.clock_stepped_at = ev.at

    def _scale_weighing(self) -> dict[str, Any] | None:
        found = [
            v.get("last_weighing")
            for t, v in self.ctx.hub.topics.items()
            if t.startswith("scale.") and isinstance(v, Mapping)
        ]
        return newest_weighing(*found)

    def health(self) -> dict[str, Any]:
        """The `health` topic's value now (reads the disk)."""
        ctx = self.ctx
        with contextlib.suppress(OSError):
            self._disk = disk_usage(ctx.config.terminal.database)
        last = newest_weighing(self.last_weighing, self._scale_weighing())
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - ctx.started_mono),
            "last_seq": ctx.writer.last_seq,
            "disk_free_mb": self._disk.free_mb,
            "disk_full": ctx.writer.disk_full,
            "clock_offset_ms": ctx.status.get("clock_offset_ms", 0),
            "last_weighing_at": last["at"] if last else None,
        }

    def tick(self) -> dict[str, Any]:
        """One round: read the disk, show or hide disk_full, publish `health`."""
        ctx = self.ctx
        value = self.health()
        shown = ctx.alerts.active.get(DISK_FULL, {}).get("stored") is False
        if ctx.writer.disk_full and not shown:
            log.error("the disk holding %s is full; events are held", self._disk.path)
            # Nothing can be stored now: show the alert without an event.
            ctx.alerts.show(
                DISK_FULL,
                f"the disk holding {self._disk.path} is full; new events wait until space is freed",
            )
        elif not ctx.writer.disk_full and shown:
            log.warning("the disk holding %s has space again", self._disk.path)
            ctx.alerts.hide(DISK_FULL)
        ctx.hub.publish("health", value)
        self._check_disk_low()
        return value

    def _check_disk_low(self) -> None:
        ctx = self.ctx
        if ctx.writer.disk_full or (self._alerting is not None and not self._alerting.done()):
            return  # raising would wait on the full disk; disk_full is shown meanwhile
        min_free = ctx.config.storage.min_free_mb
        action = disk_low_action(self._disk.free_mb, min_free, DISK_LOW in ctx.alerts.active)
        if action == "raise":
            detail = (
                f"{self._disk.free_mb} MiB free on the disk holding {self._disk.path}, "
                f"below storage.min_free_mb = {min_free}; free some space"
            )
            self._alerting = asyncio.create_task(ctx.alerts.raise_(DISK_LOW, detail))
        elif action == "clear":
            detail = f"{self._disk.free_mb} MiB free"
            self._alerting = asyncio.create_task(ctx.alerts.clear(DISK_LOW, detail))

    async def status(self, req: dict[str, Any]) -> dict[str, Any]:
        """The `status` op: one health summary (see `summarize`)."""
        ctx = self.ctx
        value = self.health()
        return summarize(
            value,
            terminal=ctx.config.terminal.id,
            devices=ctx.hub.get("devices") or {},
            sync=ctx.hub.get("sync"),
            sync_configured=ctx.config.sync is not None,
            disk=self._disk,
            min_free_mb=ctx.config.storage.min_free_mb,
            last_weighing=newest_weighing(self.last_weighing, self._scale_weighing()),
            alerts=list((ctx.hub.get("alerts") or {}).get("active", [])),
            clock_stepped_at=self.clock_stepped_at,
            replicas=list((ctx.hub.get("replicas") or {}).get("peers", [])),
        )

    async def run(self) -> None:
        """Tick every interval, and at once when the disk fills up or has space again."""
        loop = asyncio.get_running_loop()

        def on_disk(full: bool) -> None:  # on the writer's thread
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self.tick)

        self.ctx.writer.disk_listeners.append(on_disk)
        try:
            while True:
                self.tick()
                await sleep_on_beat(self.interval_s)  # with the clock watch's look
        finally:
            self.ctx.writer.disk_listeners.remove(on_disk)
            if self._alerting is not None:
                self._alerting.cancel()


def build(ctx: Context) -> list[Any]:
    """The health services of the daemon (notification included)."""
    services: list[Any] = [HealthService(ctx)]
    services.extend(notify.build(ctx))
    return services

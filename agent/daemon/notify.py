"""systemd notification (sd_notify) from the daemon's own event loop: ready, watchdog, status."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.daemon.runtime import Context

log = logging.getLogger("tally.notify")

STATUS_MIN_INTERVAL_S = 1.0  # systemd needs no more; a busy scale must not flood it


def notify_address(value: str) -> str | bytes | None:
    """The socket address of a $NOTIFY_SOCKET value ('@name' is abstract), or None if unusable."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_interval_s(environ: Mapping[str, str], pid: int) -> float | None:
    """Half of $WATCHDOG_USEC in seconds when the watchdog is meant for `pid`, else None."""
    raw = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not raw.isdigit() or int(raw) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(raw) / 2_000_000


def status_line(topics: Mapping[str, Any]) -> str:
    """The one-line STATUS= text: devices online, sync backlog and the last weighing."""
    devices: Mapping[str, Any] = topics.get("devices") or {}
    online = sorted(d for d, v in devices.items() if v.get("online"))
    offline = sorted(d for d, v in devices.items() if not v.get("online"))
    if not devices:
        parts = ["no devices"]
    elif offline:
        parts = [f"devices {len(online)}/{len(devices)} online (offline: {', '.join(offline)})"]
    else:
        parts = [f"devices {len(online)}/{len(devices)} online"]
    sync = topics.get("sync")
    if not sync or not sync.get("enabled", True):
        parts.append("sync off")
    else:
        parts.append(f"backlog {sync.get('backlog', '?')}")
    last: dict[str, Any] | None = None
    for topic, value in topics.items():
        if not topic.startswith("scale.") or not isinstance(value, Mapping):
            continue
        lw = value.get("last_weighing")
        if lw and (last is None or str(lw.get("at", "")) > str(last.get("at", ""))):
            last = dict(lw)
    if last is None:
        parts.append("no weighing yet")
    else:
        parts.append(f"last weighing {last.get('weight_kg')} kg at {last.get('at')}")
    return "; ".join(parts)


class Notifier:
    """Sends datagrams to the service manager's notification socket; silent without one."""

    def __init__(self, address: str | bytes | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self._warned = False
        if address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        """Send `KEY=value` fields in one datagram; return whether it went out."""
        if self._sock is None or self.address is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode("utf-8"), self.address)
        except OSError as exc:
            # The manager being briefly unreachable must never take the daemon down.
            if not self._warned:
                log.warning("cannot notify the service manager (%s)", exc)
                self._warned = True
            return False
        return True

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class NotifyService:
    """READY=1 once serving, WATCHDOG=1 while the loop runs, STATUS= on change, STOPPING=1."""

    name = "notify"

    def __init__(self, ctx: Context, notifier: Notifier, watchdog_s: float | None) -> None:
        self.ctx = ctx
        self.notifier = notifier
        self.watchdog_s = watchdog_s
        self.ready = False
        self._status = ""
        self._dirty = asyncio.Event()

    def on_ready(self) -> None:
        """Ready hook: the config is valid, the database open and the local API listening."""
        if self.ready:
            return
        self.ready = True
        self._status = status_line(self.ctx.hub.topics)
        self.notifier.send("READY=1", f"STATUS={self._status}")
        log.info("notified the service manager: ready")

    def on_publish(self, topic: str, value: Any) -> None:
        """Hub watcher: a topic that STATUS= shows changed."""
        if topic in ("devices", "sync") or topic.startswith("scale."):
            self._dirty.set()

    async def run(self) -> None:
        """Ping the watchdog and refresh STATUS= until cancelled; then say STOPPING=1."""
        try:
            await asyncio.gather(self._watchdog(), self._statuses())
        except asyncio.CancelledError:
            if self.ctx.stopping.is_set():
                self.notifier.send("STOPPING=1", "STATUS=stopping")
            raise

    async def _watchdog(self) -> None:
        if self.watchdog_s is None:
            return
        while True:
            # The ping comes from a task of the loop itself: if anything wedges the loop,
            # the pings stop and systemd restarts the daemon. Devices play no part here.
            if self.ready:
                self.notifier.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s)

    async def _statuses(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            line = status_line(self.ctx.hub.topics)
            if self.ready and line != self._status:
                self._status = line
                self.notifier.send(f"STATUS={line}")
            await asyncio.sleep(STATUS_MIN_INTERVAL_S)


def build(ctx: Context, environ: Mapping[str, str] | None = None) -> list[NotifyService]:
    """The notification service, or nothing when no service manager asked for notifications."""
    env = os.environ if environ is None else environ
    address = notify_address(env.get("NOTIFY_SOCKET", ""))
    if address is None:
        return []
    notifier = Notifier(address)
    service = NotifyService(ctx, notifier, watchdog_interval_s(env, os.getpid()))
    ctx.ready_hooks.append(service.on_ready)
    ctx.hub.watchers.append(service.on_publish)
    return [service]

"""The daemon: opens the store and the local API, supervises device, domain and sync tasks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent import __version__
from agent.config import Config
from agent.daemon.alerts import Alerts
from agent.daemon.api import ApiServer
from agent.daemon.heap import HeapTrim, tune
from agent.daemon.hub import Hub
from agent.daemon.store import Store, StoreError, Writer
from agent.domain.events import Event
from drivers.ticks import sleep_on_beat

log = logging.getLogger("tally.runtime")

VERSION = __version__
CLOCK_STEP_S = 2.0
BACKOFF_MAX_S = 60.0


class Service(Protocol):
    """A long-running task of the daemon; it reconnects by itself and may raise to be restarted."""

    name: str

    async def run(self) -> None:
        """Run until cancelled."""


@dataclass
class Context:
    """What every service gets: config, writer, a reader, live state, the API and alerts."""

    config: Config
    writer: Writer
    store: Store
    hub: Hub
    api: ApiServer
    alerts: Alerts
    stopping: asyncio.Event
    started_mono: float = field(default_factory=time.monotonic)
    ready_hooks: list[Callable[[], None]] = field(default_factory=list)
    stop_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)

    async def device_state(
        self, device: str, online: bool, reason: str = "", kind: str = ""
    ) -> None:
        """Record a device going online or offline (an event only on a change of state)."""
        devices: dict[str, Any] = dict(self.hub.get("devices") or {})
        prev = devices.get(device)
        if prev is not None and prev["online"] == online:
            return
        ev = await self.writer.append(
            "device.online" if online else "device.offline", {"device": device, "reason": reason}
        )
        devices = dict(self.hub.get("devices") or {})
        devices[device] = {"online": online, "reason": reason, "since": ev.at, "kind": kind}
        self.hub.publish("devices", devices)


def config_sha256(config: Config) -> str:
    """The SHA-256 of the config file's bytes (empty string when built in memory)."""
    if not config.path:
        return ""
    return hashlib.sha256(Path(config.path).read_bytes()).hexdigest()


ServiceFactory = Callable[[Context], list[Service]]


def build_services(ctx: Context, factories: Sequence[ServiceFactory]) -> list[Service]:
    """Every service the given factories build for this context, in order."""
    services: list[Service] = []
    for factory in factories:
        services.extend(factory(ctx))
    return services


async def supervise(service: Service, stopping: asyncio.Event) -> None:
    """Run a service, restarting it with exponential backoff whenever it fails."""
    delay = 1.0
    while not stopping.is_set():
        started = time.monotonic()
        try:
            await service.run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; restarting in %.0f s", service.name, delay)
        if time.monotonic() - started > BACKOFF_MAX_S:
            delay = 1.0
        # not wait_for: on 3.11 it can swallow a cancellation that races a wake-up
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stopping.wait()
        delay = min(delay * 2, BACKOFF_MAX_S)


CLOCK_WATCH_S = 5.0  # a step is found within this; a shorter look only wakes an idle daemon


class ClockWatch:
    """Records `clock.stepped` when wall time jumps against the monotonic clock by over 2 s."""

    name = "clock"

    def __init__(self, ctx: Context, interval_s: float = CLOCK_WATCH_S) -> None:
        self.ctx = ctx
        self.interval_s = interval_s

    async def run(self) -> None:
        """Compare the two clocks every interval."""
        base = time.time_ns() - time.monotonic_ns()
        while True:
            await sleep_on_beat(self.interval_s)  # with the health and tickets services' looks
            offset = time.time_ns() - time.monotonic_ns()
            delta_ms = (offset - base) // 1_000_000
            if abs(delta_ms) > CLOCK_STEP_S * 1000:
                log.warning("wall clock stepped by %d ms", delta_ms)
                await self.ctx.writer.append("clock.stepped", {"delta_ms": delta_ms})
                base, delta_ms = offset, 0  # the status shows the drift since the last step
            self.ctx.status["clock_offset_ms"] = delta_ms


async def run(config: Config, factories: Sequence[ServiceFactory] = ()) -> int:
    """Run the daemon with the services the factories build, until SIGTERM/SIGINT (exit 0) or a
    failing store (exit 1)."""
    loop = asyncio.get_running_loop()
    if not tune():  # before the writer's thread and the first big block
        log.debug("not glibc: the C heap keeps its own mmap threshold")
    writer = Writer(config.terminal.database, config.terminal.id)
    store = Store(config.terminal.database)
    hub = Hub()

    def on_commit(events: list[Event]) -> None:
        loop.call_soon_threadsafe(hub.on_events, events)

    writer.listeners.append(on_commit)
    api = ApiServer(config.terminal.socket, hub)
    stopping = asyncio.Event()
    alerts = Alerts(writer, hub, store)
    ctx = Context(config, writer, store, hub, api, alerts, stopping)
    exit_code = 0

    def request_stop(signame: str) -> None:
        log.info("received %s; stopping", signame)
        stopping.set()

    def on_store_failure() -> None:  # on the writer's thread
        with contextlib.suppress(RuntimeError):  # the loop has closed: the daemon has ended
            loop.call_soon_threadsafe(stopping.set)

    writer.failure_listeners.append(on_store_failure)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop, sig.name)

    services: list[Service] = [ClockWatch(ctx), HeapTrim()]
    services.extend(build_services(ctx, factories))
    try:
        await api.start()
    except BaseException:
        writer.close()
        store.close()
        raise
    tasks: list[asyncio.Task[None]] = []
    reason = "signal"
    try:
        try:
            await writer.append(
                "agent.started",
                {"version": VERSION, "config_sha256": config_sha256(config), "pid": os.getpid()},
            )
        except StoreError:
            if writer.failed is None:
                raise  # the store refused this event alone: a start that cannot go on
            # the writer died between the API's start and the first event: it has set
            # `stopping`, and the daemon exits with 1 like any failed store, so the service
            # manager restarts it
        else:
            tasks = [asyncio.create_task(supervise(s, stopping), name=s.name) for s in services]
            for hook in ctx.ready_hooks:
                hook()
            log.info(
                "tally %s running as terminal %s (epoch %s, %d services) on %s",
                VERSION,
                config.terminal.id,
                writer.epoch,
                len(services),
                config.terminal.socket,
            )
        # a signal or the store's failure (its writer sets `stopping` too): no polling
        await stopping.wait()
        if writer.failed is not None:
            log.error(
                "the store failed (%s); exiting so the service manager restarts", writer.failed
            )
            reason = "store_failed"
            exit_code = 1
    finally:
        for t in tasks:
            t.cancel()
        done = await asyncio.wait(tasks, timeout=10) if tasks else (set(), set())
        for t in done[0]:
            if not t.cancelled() and t.exception() is not None:
                log.error("%s ended with %r", t.get_name(), t.exception())
        for stop_hook in ctx.stop_hooks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stop_hook(), 5)
        await api.close()
        if writer.failed is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.append("agent.stopped", {"reason": reason}), 5)
        writer.close()
        store.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped (%s)", reason)
    return exit_code


LINGER_S = 5.0


def serve(config: Config, factories: Sequence[ServiceFactory]) -> int:
    """Run the daemon to its end, then leave within a bounded time.

    `asyncio.run` waits without limit for tasks still alive after the daemon stopped (a
    connection handler of the feed, say) and for the worker threads. By then the store is
    closed and every event is on disk, so whatever lingers past `LINGER_S` is logged by name
    and the process leaves anyway: a stop must not hang until the service manager kills it.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        code = loop.run_until_complete(run(config, factories))
    except BaseException:
        wind_down(loop)  # a failed start: the caller reports it
        raise
    lingering = wind_down(loop)
    if lingering:
        log.warning("leaving although %s did not end", ", ".join(lingering))
        logging.shutdown()
        os._exit(code)
    return code


def wind_down(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Cancel what is left on `loop`, stop its worker threads, close it; name what would not end."""
    import threading

    lingering: list[str] = []
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            _done, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=LINGER_S))
            lingering += [f"task {t.get_name()}" for t in pending]
        loop.run_until_complete(
            asyncio.wait([loop.create_task(loop.shutdown_asyncgens())], timeout=LINGER_S)
        )
        shutdown = loop.create_task(loop.shutdown_default_executor())
        _done, pending = loop.run_until_complete(asyncio.wait([shutdown], timeout=LINGER_S))
        if pending:
            lingering.append("a worker thread")
        deadline = time.monotonic() + LINGER_S
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    lingering.append(f"thread {thread.name}")
    finally:
        if not lingering:
            asyncio.set_event_loop(None)
            loop.close()
    return lingering

"""The Modbus driver: polls packers over TCP or RTU, one bus at a time, each unit on its own."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from drivers.modbus_points import Point, ReadGroup, Value, plan
from drivers.ticks import GRID_S, on_grid, sleep_until

log = logging.getLogger("tally.modbus")

CONFIG_CODES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value"}
EXCEPTION_NAMES = {
    **CONFIG_CODES,
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


@dataclass(frozen=True, slots=True)
class Reading:
    """One poll of one packer: raw point values by key, read at `at` (UTC)."""

    unit: str
    at: datetime
    values: dict[str, Value]


@dataclass(frozen=True, slots=True)
class Status:
    """A packer's link went online or offline (only sent on a change)."""

    unit: str
    online: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ConfigFault:
    """The device refused a read with exception code 1-3 (or accepts it again: cleared)."""

    unit: str
    points: str
    detail: str
    cleared: bool = False


Item = Reading | Status | ConfigFault
Emit = Callable[[Item], None]


@dataclass(frozen=True, slots=True)
class Unit:
    """One packer on a bus: its unit id, poll interval and planned reads."""

    name: str
    device_id: int
    poll_s: float
    groups: tuple[ReadGroup, ...]


@dataclass(frozen=True, slots=True)
class Link:
    """How to reach a bus: a TCP host and port, or a serial port (any pyserial URL)."""

    transport: str
    host: str = ""
    port: int = 502
    serial_port: str = ""
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    timeout_s: float = 1.0

    @property
    def label(self) -> str:
        """Where the bus is, for messages."""
        return f"{self.host}:{self.port}" if self.transport == "tcp" else self.serial_port

    @property
    def bus(self) -> tuple[str, ...]:
        """What identifies the bus: one TCP endpoint or one serial port."""
        if self.transport == "tcp":
            return ("tcp", self.host, str(self.port))
        return ("rtu", self.serial_port)


@dataclass(frozen=True, slots=True)
class Device:
    """One packer as the driver sees it: its bus, unit id, poll interval and points by key."""

    name: str
    link: Link
    device_id: int = 1
    poll_s: float = 1.0
    points: tuple[tuple[str, Point], ...] = ()
    span_gaps: int = 0  # words (or bits) no point names that a read may span to join two reads


def make_client(link: Link) -> Any:
    """A pymodbus client that never reconnects by itself (the bus loop decides when)."""
    if link.transport == "tcp":
        return AsyncModbusTcpClient(
            link.host, port=link.port, timeout=link.timeout_s, retries=0, reconnect_delay=0
        )
    return AsyncModbusSerialClient(
        link.serial_port,
        framer=FramerType.RTU,
        baudrate=link.baudrate,
        parity=link.parity,
        stopbits=link.stopbits,
        timeout=link.timeout_s,
        retries=0,
        reconnect_delay=0,
    )


def raise_swallowed_cancel() -> None:
    """Raise the cancellation a library call swallowed.

    pymodbus waits for each answer with `asyncio.wait_for`, which on Python 3.11 returns the
    answer when it races a `cancel()`: the task is still marked as cancelling, and without this
    check the poll loop would go on for ever after its owner asked it to stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _read(client: Any, group: ReadGroup, device_id: int) -> Any:
    fn = {
        1: client.read_coils,
        2: client.read_discrete_inputs,
        3: client.read_holding_registers,
        4: client.read_input_registers,
    }[group.function]
    return await fn(group.address, count=group.count, device_id=device_id)


def _due(t: float, poll_s: float) -> float:
    """When a poll falls due: the grid's tick at or after `t`, unless the unit is polled more
    often than the grid ticks."""
    return on_grid(t) if poll_s >= GRID_S else t


class _Transient(Exception):
    """The unit did not answer usefully this time; back off and retry."""


@dataclass
class _UnitState:
    unit: Unit
    due: float = 0.0
    failures: int = 0
    online: bool | None = None
    retry_group: dict[ReadGroup, float] = field(default_factory=dict)
    groups: list[ReadGroup] = field(init=False)  # the reads of a poll, as planned

    def __post_init__(self) -> None:
        self.groups = list(self.unit.groups)


class Bus:
    """One connection (a TCP socket or a serial line) shared by its units, polled in turn."""

    def __init__(
        self,
        link: Link,
        units: Sequence[Unit],
        emit: Emit,
        *,
        backoff_max_s: float = 30.0,
        config_retry_s: float = 60.0,
    ) -> None:
        self.link = link
        self.units = [_UnitState(u) for u in units]
        self.emit = emit
        self.backoff_max_s = backoff_max_s
        self.config_retry_s = config_retry_s
        self.connect_failures = 0
        self.requests = 0

    def _status(self, us: _UnitState, online: bool, reason: str) -> None:
        if us.online is not online:
            us.online = online
            self.emit(Status(us.unit.name, online, reason))

    def _backoff(self, failures: int, poll_s: float) -> float:
        """Seconds until the next try: doubling from max(poll_s, 0.5), capped."""
        grown: float = max(poll_s, 0.5) * 2.0 ** max(failures - 1, 0)
        return min(grown, max(self.backoff_max_s, poll_s))

    async def run(self) -> None:
        """Poll until cancelled; the client is closed on the way out."""
        client = make_client(self.link)
        try:
            while True:
                raise_swallowed_cancel()
                us = min(self.units, key=lambda u: u.due)
                if us.due > time.monotonic():
                    await sleep_until(us.due)
                    continue
                if not client.connected and not await client.connect():
                    self.connect_failures += 1
                    delay = self._backoff(self.connect_failures, us.unit.poll_s)
                    for other in self.units:
                        self._status(other, False, f"cannot connect to {self.link.label}")
                        other.due = _due(time.monotonic() + delay, other.unit.poll_s)
                    continue
                self.connect_failures = 0
                await self._poll(client, us)
        finally:
            client.close()

    async def _poll(self, client: Any, us: _UnitState) -> None:
        unit = us.unit
        values: dict[str, Value] = {}
        started = time.monotonic()
        try:
            for group in list(us.groups):
                if us.retry_group.get(group, 0.0) > started:
                    continue
                values.update(await self._read_group(client, us, group))
        except _Transient as exc:
            us.failures += 1
            self._status(us, False, str(exc))
            us.due = _due(time.monotonic() + self._backoff(us.failures, unit.poll_s), unit.poll_s)
            log.debug("%s: %s; retry in %.1f s", unit.name, exc, us.due - time.monotonic())
            return
        us.failures = 0
        self._status(us, True, "")
        # Keep the cadence, but never try to catch up on missed polls. Every due time is a tick
        # of the daemon's grid, so the units of a bus are polled in one burst that starts in the
        # same wake-up as the scales' reads (drivers/ticks.py).
        us.due = _due(max(us.due + unit.poll_s, time.monotonic()), unit.poll_s)
        if values:
            self.emit(Reading(unit.name, datetime.now(UTC), values))

    async def _read_group(self, client: Any, us: _UnitState, group: ReadGroup) -> dict[str, Value]:
        unit = us.unit
        self.requests += 1
        try:
            rr = await _read(client, group, unit.device_id)
        except ModbusException:
            if not client.connected:
                raise _Transient(f"connection to {self.link.label} lost") from None
            raise _Transient(
                f"no response from unit {unit.device_id} within {self.link.timeout_s:g} s"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise _Transient(f"link error on {self.link.label} ({exc})") from None
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            if code in CONFIG_CODES and group.parts:
                return await self._split(client, us, group, code, name)
            if code in CONFIG_CODES:
                first = group not in us.retry_group
                us.retry_group[group] = time.monotonic() + self.config_retry_s
                if first:
                    self.emit(
                        ConfigFault(
                            unit.name,
                            group.names(),
                            f"unit {unit.device_id} refused function {group.function} at "
                            f"address {group.address} count {group.count} with exception "
                            f"code {code} ({name}); check the point map of {group.names()}",
                        )
                    )
                return {}
            raise _Transient(f"unit {unit.device_id} answered exception code {code} ({name})")
        words = rr.bits[: group.count] if group.function in (1, 2) else rr.registers
        if len(words) < group.count:
            raise _Transient(f"unit {unit.device_id} sent {len(words)} of {group.count} words")
        if us.retry_group.pop(group, None) is not None:
            self.emit(ConfigFault(unit.name, group.names(), "", cleared=True))
        return group.values(words)

    async def _split(
        self, client: Any, us: _UnitState, group: ReadGroup, code: int, name: str
    ) -> dict[str, Value]:
        """The unit refused a read that spans words no point names: from now on read the
        points it joined as they were before joining, starting with this poll."""
        at = us.groups.index(group)
        us.groups[at : at + 1] = group.parts
        log.info(
            "%s: unit %d refused function %d at address %d count %d (exception code %d, %s); "
            "its points are read in %d requests from now on",
            *(us.unit.name, us.unit.device_id, group.function, group.address, group.count),
            *(code, name, len(group.parts)),
        )
        values: dict[str, Value] = {}
        for part in group.parts:
            values.update(await self._read_group(client, us, part))
        return values


def units_by_link(devices: Sequence[Device]) -> dict[Link, list[Unit]]:
    """Group devices by their bus: one TCP endpoint or one serial port each."""
    buses: dict[tuple[str, ...], tuple[Link, list[Unit]]] = {}
    for d in devices:
        unit = Unit(d.name, d.device_id, d.poll_s, tuple(plan(d.points, d.span_gaps)))
        if d.link.bus in buses:
            buses[d.link.bus][1].append(unit)
        else:
            buses[d.link.bus] = (d.link, [unit])
    return {link: units for link, units in buses.values()}


class ModbusDriver:
    """Every bus of the given devices, each polled by its own task."""

    def __init__(
        self,
        devices: Sequence[Device],
        *,
        backoff_max_s: float = 30.0,
        config_retry_s: float = 60.0,
    ) -> None:
        self.links = units_by_link(devices)
        self.backoff_max_s = backoff_max_s
        self.config_retry_s = config_retry_s
        self.buses: list[Bus] = []

    async def run(self, emit: Emit) -> None:
        """Poll every bus until cancelled, handing readings and status changes to `emit`."""
        if not log.isEnabledFor(logging.DEBUG):
            # pymodbus logs every unanswered request with frame dumps; our status says it once.
            logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self.buses = [
            Bus(
                link,
                units,
                emit,
                backoff_max_s=self.backoff_max_s,
                config_retry_s=self.config_retry_s,
            )
            for link, units in self.links.items()
        ]
        async with asyncio.TaskGroup() as tg:
            for bus in self.buses:
                tg.create_task(bus.run(), name=f"modbus {bus.link.label}")

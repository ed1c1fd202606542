from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from drivers.modbus import (
    ConfigFault,
    Device,
    Link,
    ModbusDriver,
    Reading,
    Status,
    raise_swallowed_cancel,
)
from drivers.modbus_points import Point
from tests.drivers.modbus_server import LoopbackServer

POINTS: dict[str, tuple[Point, Any]] = {
    "u16": (Point(3, 0, "uint16"), 65535),
    "i16": (Point(3, 1, "int16"), -300),
    "u32b": (Point(3, 2, "uint32", "big"), 70_000),
    "u32l": (Point(3, 4, "uint32", "little"), 4_000_000_000),
    "i32b": (Point(3, 6, "int32", "big", True), -123_456),
    "f32l": (Point(4, 10, "float32", "little"), 99.5),
    "f32b": (Point(4, 12, "float32", "big", True), -0.25),
    "i32l": (Point(4, 20, "int32", "little"), 2_000_000_000),
    "flag": (Point(3, 30, "bool"), True),
    "coil": (Point(1, 3, "bool"), True),
    "di": (Point(2, 5, "bool"), True),
    "di0": (Point(2, 6, "bool"), False),
}


# A loopback answer is never this late, however busy the machine: a timeout in these tests means
# a silent unit, never a slow test run.
ANSWER_S = 5.0
SILENT_S = 2.0  # where a silent unit is the point: long enough for any loopback answer


def packer(
    name: str, server: LoopbackServer, unit: int = 1, *, poll_s: float, timeout_s: float
) -> Device:
    if server.rtu:
        link = Link("rtu", serial_port=server.url, timeout_s=timeout_s)
    else:
        link = Link("tcp", host="127.0.0.1", port=server.port, timeout_s=timeout_s)
    return Device(name, link, unit, poll_s)


class Run:
    """The driver running in the background with every emitted item kept."""

    def __init__(self, driver: ModbusDriver) -> None:
        self.driver = driver
        self.items: list[Any] = []
        self.task: asyncio.Task[None] | None = None

    def readings(self, unit: str) -> list[Reading]:
        return [i for i in self.items if isinstance(i, Reading) and i.unit == unit]

    def statuses(self, unit: str) -> list[tuple[bool, str]]:
        return [
            (i.online, i.reason) for i in self.items if isinstance(i, Status) and i.unit == unit
        ]

    async def until(self, predicate: Callable[[], Any], timeout: float = 30) -> Any:
        async with asyncio.timeout(timeout):
            while not (value := predicate()):
                await asyncio.sleep(0.02)
        return value


@contextlib.asynccontextmanager
async def running(
    packers: list[tuple[Device, list[tuple[str, Point]]]], **kw: Any
) -> AsyncIterator[Run]:
    run = Run(ModbusDriver([replace(d, points=tuple(points)) for d, points in packers], **kw))
    run.task = asyncio.create_task(run.driver.run(run.items.append))
    try:
        yield run
    finally:
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run.task


@contextlib.asynccontextmanager
async def serving(
    units: tuple[int, ...] = (1,), rtu: bool = False
) -> AsyncIterator[LoopbackServer]:
    server = await LoopbackServer(units, rtu=rtu).start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("rtu", [False, True], ids=["tcp", "rtu"])
async def test_every_type_and_word_order(rtu: bool) -> None:
    async with serving(rtu=rtu) as server:
        for pt, value in POINTS.values():
            await server.set(1, pt, value)
        cfg = packer("line1", server, poll_s=0.05, timeout_s=ANSWER_S)
        points = [(k, pt) for k, (pt, _) in POINTS.items()]
        async with running([(cfg, points)]) as run:
            first = await run.until(lambda: run.readings("line1"))
        assert first[0].values == {k: v for k, (_, v) in POINTS.items()}
        assert run.statuses("line1")[0] == (True, "")
        # One request per contiguous run of words: both words of a 32-bit value together.
        assert server.requests[:6] == [
            (1, 1, 3, 1),
            (1, 2, 5, 2),
            (1, 3, 0, 8),
            (1, 3, 30, 1),
            (1, 4, 10, 4),
            (1, 4, 20, 2),
        ]


@pytest.mark.parametrize("rtu", [False, True], ids=["tcp", "rtu"])
async def test_wrap_and_reset_reach_the_reading(rtu: bool) -> None:
    bags = Point(3, 0, "uint16")
    async with serving(rtu=rtu) as server:
        cfg = packer("line1", server, poll_s=0.05, timeout_s=ANSWER_S)
        async with running([(cfg, [("bags", bags)])]) as run:
            seen: list[int] = []

            def has(v: int) -> bool:
                seen[:] = [int(r.values["bags"]) for r in run.readings("line1")]
                return v in seen

            for v in (65534, 65535, 1, 3, 0, 2):
                await server.set(1, bags, v)
                await run.until(lambda v=v: has(v))  # type: ignore[misc]
        deduped = [v for i, v in enumerate(seen) if i == 0 or seen[i - 1] != v]
        assert deduped[-6:] == [65534, 65535, 1, 3, 0, 2]


async def test_illegal_address_is_a_config_fault_and_the_rest_still_reads() -> None:
    good = Point(3, 0, "uint32")
    bad = Point(3, 150, "uint16")
    async with serving() as server:
        await server.set(1, good, 123_456)
        cfg = packer("line1", server, poll_s=0.05, timeout_s=ANSWER_S)
        async with running([(cfg, [("bags", good), ("returned", bad)])]) as run:
            await run.until(lambda: len(run.readings("line1")) >= 3)
        faults = [i for i in run.items if isinstance(i, ConfigFault)]
        assert faults == [
            ConfigFault(
                "line1",
                "returned",
                "unit 1 refused function 3 at address 150 count 1 with exception code 2 "
                "(illegal data address); check the point map of returned",
            )
        ]
        assert {r.values.get("returned") for r in run.readings("line1")} == {None}
        assert run.readings("line1")[0].values == {"bags": 123_456}
        assert run.statuses("line1") == [(True, "")]
        # the bad read is retried slowly, not at every poll
        bad_reads = [r for r in server.requests if r[2] == 150]
        assert len(bad_reads) == 1


PACKER_POINTS = [  # the bench's packer map: holding registers 0-2, 5, 10-11 and a coil
    ("bags", Point(3, 0, "uint16")),
    ("returned", Point(3, 1, "uint16")),
    ("broken", Point(3, 2, "uint16")),
    ("spout1", Point(3, 5, "uint16")),
    ("loaded", Point(3, 10, "uint32", "little")),
    ("running", Point(1, 0, "bool")),
]
PACKER_VALUES = {"bags": 120, "returned": 3, "broken": 1, "spout1": 15, "loaded": 70_000}


async def _set_packer(server: LoopbackServer) -> None:
    for key, pt in PACKER_POINTS:
        await server.set(1, pt, PACKER_VALUES.get(key, True))


async def test_a_read_spans_the_gaps_between_points_when_allowed() -> None:
    async with serving() as server:
        await _set_packer(server)
        cfg = replace(packer("line1", server, poll_s=0.05, timeout_s=ANSWER_S), span_gaps=16)
        async with running([(cfg, PACKER_POINTS)]) as run:
            await run.until(lambda: len(run.readings("line1")) >= 3)
        assert run.readings("line1")[0].values == {**PACKER_VALUES, "running": True}
        # one read per function and poll, the words between the points read and dropped
        assert set(server.requests) == {(1, 1, 0, 1), (1, 3, 0, 12)}


async def test_a_unit_that_refuses_a_spanned_gap_is_read_point_run_by_point_run() -> None:
    async with serving() as server:
        await _set_packer(server)
        server.holes = {(1, 3, 3), (1, 3, 4)}  # addresses 3 and 4 are not mapped in this PLC
        cfg = replace(packer("line1", server, poll_s=0.05, timeout_s=ANSWER_S), span_gaps=16)
        async with running([(cfg, PACKER_POINTS)]) as run:
            await run.until(lambda: len(run.readings("line1")) >= 3)
        # every poll, the first included, brings every point; no fault is reported, since the
        # point map is right and only the joined read was not
        assert all(r.values == {**PACKER_VALUES, "running": True} for r in run.readings("line1"))
        assert [i for i in run.items if isinstance(i, ConfigFault)] == []
        assert run.statuses("line1") == [(True, "")]
        # the joined read was tried once; then the runs it joined, at every poll after
        registers = [r for r in server.requests if r[1] == 3]
        assert registers[:4] == [(1, 3, 0, 12), (1, 3, 0, 3), (1, 3, 5, 1), (1, 3, 10, 2)]
        assert registers.count((1, 3, 0, 12)) == 1
        assert set(registers[4:]) == {(1, 3, 0, 3), (1, 3, 5, 1), (1, 3, 10, 2)}


async def test_timeout_goes_offline_and_comes_back() -> None:
    bags = Point(3, 0, "uint16")
    async with serving() as server:
        cfg = packer("line1", server, poll_s=0.05, timeout_s=SILENT_S)
        async with running([(cfg, [("bags", bags)])], backoff_max_s=0.3) as run:
            await run.until(lambda: run.readings("line1"))
            server.silent.add(1)
            await run.until(lambda: len(run.statuses("line1")) == 2)
            server.silent.clear()
            await run.until(lambda: len(run.statuses("line1")) == 3)
        assert run.statuses("line1") == [
            (True, ""),
            (False, "no response from unit 1 within 2 s"),
            (True, ""),
        ]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (5, "unit 1 answered exception code 5 (acknowledge)"),
        (6, "unit 1 answered exception code 6 (server device busy)"),
        (11, "unit 1 answered exception code 11 (gateway target device failed to respond)"),
    ],
)
async def test_transient_exception_codes_back_off_and_recover(code: int, reason: str) -> None:
    bags = Point(3, 0, "uint16")
    async with serving() as server:
        cfg = packer("line1", server, poll_s=0.05, timeout_s=ANSWER_S)
        server.fail_with[1] = code
        async with running([(cfg, [("bags", bags)])], backoff_max_s=0.2) as run:
            await run.until(lambda: run.statuses("line1"))
            await asyncio.sleep(0.3)
            server.fail_with.clear()
            await run.until(lambda: run.readings("line1"))
        assert run.statuses("line1") == [(False, reason), (True, "")]
        assert [i for i in run.items if isinstance(i, ConfigFault)] == []


async def test_illegal_function_is_a_config_fault() -> None:
    bags = Point(3, 0, "uint16")
    async with serving() as server:
        cfg = packer("line1", server, poll_s=0.05, timeout_s=ANSWER_S)
        server.fail_with[1] = 1
        async with running([(cfg, [("bags", bags)])], config_retry_s=0.2) as run:
            await run.until(lambda: [i for i in run.items if isinstance(i, ConfigFault)])
            server.fail_with.clear()
            await run.until(lambda: run.readings("line1"))
        assert [i for i in run.items if isinstance(i, ConfigFault)] == [
            ConfigFault(
                "line1",
                "bags",
                "unit 1 refused function 3 at address 0 count 1 with exception code 1 "
                "(illegal function); check the point map of bags",
            ),
            ConfigFault("line1", "bags", "", cleared=True),
        ]
        assert run.statuses("line1") == [(True, "")]


@pytest.mark.parametrize("rtu", [False, True], ids=["tcp", "rtu"])
async def test_server_restart_is_picked_up(rtu: bool) -> None:
    bags = Point(3, 0, "uint16")
    server = await LoopbackServer((1,), rtu=rtu).start()
    cfg = packer("line1", server, poll_s=0.05, timeout_s=ANSWER_S)
    try:
        async with running([(cfg, [("bags", bags)])], backoff_max_s=0.3) as run:
            await server.set(1, bags, 7)
            await run.until(lambda: any(r.values == {"bags": 7} for r in run.readings("line1")))
            await server.stop()
            await run.until(lambda: len(run.statuses("line1")) >= 2)
            server = await LoopbackServer((1,), rtu=rtu, port=server.port).start()
            await server.set(1, bags, 9)
            await run.until(lambda: any(r.values == {"bags": 9} for r in run.readings("line1")))
        statuses = run.statuses("line1")
        assert statuses[0] == (True, "")
        assert statuses[1][0] is False
        assert statuses[-1] == (True, "")
    finally:
        await server.stop()


async def test_three_units_on_one_rtu_bus_with_one_silent() -> None:
    bags = Point(3, 0, "uint16")
    async with serving((1, 2, 3), rtu=True) as server:
        for unit in (1, 2, 3):
            await server.set(unit, bags, unit * 100)
        server.silent.add(3)
        cfgs = [
            (packer(f"p{u}", server, unit=u, poll_s=0.05, timeout_s=SILENT_S), [("bags", bags)])
            for u in (1, 2, 3)
        ]
        async with running(cfgs, backoff_max_s=1.0) as run:
            await run.until(lambda: run.statuses("p3"))
            await run.until(lambda: len(run.readings("p1")) >= 30 and len(run.readings("p2")) >= 30)
            asked_3 = sum(1 for r in server.requests if r[0] == 3)
            asked_1 = sum(1 for r in server.requests if r[0] == 1)
        assert run.statuses("p3") == [(False, "no response from unit 3 within 2 s")]
        assert run.statuses("p1") == [(True, "")]
        assert {r.values["bags"] for r in run.readings("p2")} == {200}
        assert run.readings("p3") == []
        # the silent unit is backed off on its own: asked far less often than the others
        assert asked_3 * 4 <= asked_1
        # one client for the bus
        assert len(run.driver.buses) == 1


async def test_a_cancellation_a_library_swallowed_still_stops_the_poll_loop() -> None:
    """What pymodbus' wait_for does on 3.11 when an answer races a cancel: the CancelledError
    is lost, the task stays marked as cancelling; the next turn of the loop raises it."""
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:
            raise_swallowed_cancel()
            turns += 1
            with contextlib.suppress(asyncio.CancelledError):  # the library's swallow
                await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    assert task.cancelled()
    assert turns >= 1

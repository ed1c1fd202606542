"""A real pymodbus server on loopback (TCP, or RTU framing on a socket:// URL) for the tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus_points import Point, Value, encode

REGISTERS = 100  # addresses 0..99 of each table exist; anything above is an illegal address


def device(unit: int, action: Any = None) -> SimDevice:
    """A unit with separate coil, discrete input, holding and input register tables."""
    bits = [SimData(0, values=[False] * 64, datatype=DataType.BITS)]
    bits2 = [SimData(0, values=[False] * 64, datatype=DataType.BITS)]
    return SimDevice(
        id=unit,
        simdata=(
            bits,
            bits2,
            [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
        ),
        action=action,
    )


class LoopbackServer:
    """Units 1..n on 127.0.0.1; units in `silent` get no answer (the request is dropped)."""

    def __init__(self, units: tuple[int, ...] = (1,), *, rtu: bool = False, port: int = 0) -> None:
        self.units = units
        self.rtu = rtu
        self.port = port
        self.silent: set[int] = set()
        self.requests: list[tuple[int, int, int, int]] = []  # (unit, function, address, count)
        self.fail_with: dict[int, int] = {}  # unit -> Modbus exception code answered to reads
        # (unit, function, address) that no point names and the unit refuses to read: a read
        # that covers one is answered with exception code 2 (illegal data address)
        self.holes: set[tuple[int, int, int]] = set()
        self.server: Any = None

    def _action(self, unit: int) -> Any:
        async def action(function: int, _start: int, address: int, count: int, *_: Any) -> Any:
            code = self.fail_with.get(unit)
            if code:
                return ExcCodes(code)
            if any((unit, function, a) in self.holes for a in range(address, address + count)):
                return ExcCodes.ILLEGAL_ADDRESS
            return None

        return action

    def _trace(self, sending: bool, pdu: Any) -> Any:
        if sending:
            return pdu
        self.requests.append(
            (pdu.dev_id, pdu.function_code, getattr(pdu, "address", 0), getattr(pdu, "count", 0))
        )
        return None if pdu.dev_id in self.silent else pdu

    async def start(self) -> LoopbackServer:
        """Listen (on a free port the first time, the same port after a restart)."""
        devices = [device(u, self._action(u)) for u in self.units]
        if self.rtu:
            self.server = ModbusSerialServer(
                devices, port=f"socket://127.0.0.1:{self.port}", trace_pdu=self._trace
            )
        else:
            self.server = ModbusTcpServer(
                devices, address=("127.0.0.1", self.port), trace_pdu=self._trace
            )
        await self.server.serve_forever(background=True)
        self.port = self.server.transport.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        """The socket:// URL an RTU client opens."""
        return f"socket://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Close the listener and every connection."""
        await self.server.shutdown()

    async def set(self, unit: int, point: Point, value: Value) -> None:
        """Store `value` where `point` reads it, encoded by the point's type and order."""
        words = encode(point, value)
        data: list[int] | list[bool] = (
            [bool(w) for w in words] if point.function in (1, 2) else words
        )
        await self.server.async_setValues(unit, point.function, point.address, data)


class ThreadedServer:
    """A LoopbackServer on its own event loop in a thread, for tests that drive subprocesses."""

    def __init__(self, units: tuple[int, ...] = (1,)) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = LoopbackServer(units)

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> ThreadedServer:
        """Start listening."""
        self.call(self.server.start())
        return self

    def set(self, unit: int, point: Point, value: Value) -> None:
        """Change a value."""
        self.call(self.server.set(unit, point, value))

    def close(self) -> None:
        """Stop the server and the thread."""
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

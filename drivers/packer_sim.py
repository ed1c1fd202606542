"""`tally simulate packer`: a Modbus TCP server that behaves like an 8-spout rotary packer."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drivers.errors import SimulatorUsageError
from drivers.modbus_points import Point, encode, width

if TYPE_CHECKING:
    import random

HELP = "run a simulated rotary packer on Modbus TCP (the point map of systemd/tally.toml)"

BAGS_PER_H = 2000  # 8 spouts, 50 kg bags: about 100 t/h
RETURN_P = 0.03  # checkweigher rejects (over/underweight)
BROKEN_P = 0.01
RUN_MEAN_S = 20 * 60  # mean running time between stops
STOP_S = (60.0, 360.0)  # a stop lasts this long (uniform)
RESET_MEAN_S = 2 * 3600  # mean time between power cycles (counters back to zero)
POWER_CYCLE_S = 20.0  # the PLC is down this long after a power cycle
BAGS_START = 65_000  # close to the 16-bit wrap, so it shows within the first quarter hour
STEP_S = 0.1


@dataclass(frozen=True, slots=True)
class SimPoint:
    """One point the simulator serves: the role whose value it shows, where, and its wrap.

    `role` is one of the values of `Packer.values()`; `modulus` (0: the register width)
    wraps a counter the way the PLC does.
    """

    role: str
    point: Point
    modulus: int = 0


def default_points() -> tuple[SimPoint, ...]:
    """The point map of the simulator (the one in systemd/tally.toml)."""
    return (
        SimPoint("bags", Point(3, 0, "uint16", label="bags"), 65536),
        SimPoint("returned", Point(3, 1, "uint16", label="returned"), 65536),
        SimPoint("broken", Point(3, 2, "uint16", label="broken"), 65536),
        SimPoint("loaded", Point(3, 10, "uint32", "little", label="loaded"), 2**32),
        SimPoint("running", Point(1, 0, "bool", label="running")),
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally simulate packer`."""
    p.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT",
        help="address to serve Modbus TCP on (port 0 picks a free one)",
    )
    p.add_argument(
        "--map",
        metavar="FILE",
        help="a tally.toml whose [[packer]] tables give units and point maps "
        "(default: the map of systemd/tally.toml, unit 1)",
    )
    p.add_argument("--seed", type=int, default=1, metavar="N", help="random seed (default 1)")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="X",
        help="run X times faster than real time (default 1; above ~30 raise max_bags_per_s)",
    )


@dataclass
class Packer:
    """One simulated unit: counters, the running bit and the random plan of stops."""

    unit: int
    points: tuple[SimPoint, ...]
    rng: random.Random
    bags: int = BAGS_START
    returned: int = 0
    broken: int = 0
    loaded: int = 0
    running: bool = True
    until: float = 0.0  # sim time of the next change of running
    next_reset: float = 0.0
    powered_off_until: float = 0.0
    carry: float = 0.0
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.until = self.rng.expovariate(1 / RUN_MEAN_S)
        self.next_reset = self.rng.expovariate(1 / RESET_MEAN_S)
        self.loaded = self.rng.randrange(0, 1_000_000)

    def step(self, t: float, dt: float) -> None:
        """Advance the packer by dt seconds of simulated time ending at t."""
        if t >= self.next_reset:
            self.next_reset = t + self.rng.expovariate(1 / RESET_MEAN_S)
            self.bags = self.returned = self.broken = 0
            self.running = False
            self.powered_off_until = t + POWER_CYCLE_S
            self.until = self.powered_off_until
            self.log.append(f"unit {self.unit}: power cycle, counters reset to 0")
        if t >= self.until:
            self.running = not self.running
            if self.running:
                self.until = t + self.rng.expovariate(1 / RUN_MEAN_S)
                self.log.append(f"unit {self.unit}: running")
            else:
                pause = self.rng.uniform(*STOP_S)
                self.until = t + pause
                self.log.append(f"unit {self.unit}: stopped for {pause:.0f} s")
        if not self.running:
            return
        self.carry += BAGS_PER_H / 3600 * dt
        while self.carry >= 1:
            self.carry -= 1
            self.bags += 1
            r = self.rng.random()
            if r < RETURN_P:
                self.returned += 1
            elif r < RETURN_P + BROKEN_P:
                self.broken += 1
            else:
                self.loaded += 1

    def values(self) -> dict[str, int | bool]:
        """The current value of every role."""
        return {
            "bags": self.bags,
            "returned": self.returned,
            "broken": self.broken,
            "loaded": self.loaded,
            "running": self.running,
            "spout": self.bags // 8,
        }


def _device(unit: int, points: tuple[SimPoint, ...]) -> Any:
    from pymodbus.simulator import DataType, SimData, SimDevice

    def top(functions: tuple[int, ...]) -> int:
        ends = [
            sp.point.address + width(sp.point) for sp in points if sp.point.function in functions
        ]
        return max([16, *ends])

    bits = top((1, 2)) + 16 - top((1, 2)) % 16
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, values=[False] * bits, datatype=DataType.BITS)],
            [SimData(0, values=[False] * bits, datatype=DataType.BITS)],
            [SimData(0, count=top((3,)), values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=top((4,)), values=0, datatype=DataType.REGISTERS)],
        ),
    )


async def serve(host: str, port: int, units: list[Packer], speed: float) -> None:
    """Serve the units and advance them until cancelled."""
    import asyncio
    import sys
    import time

    from pymodbus.server import ModbusTcpServer

    server: Any = ModbusTcpServer([_device(p.unit, p.points) for p in units], address=(host, port))
    if not await server.listen():
        raise OSError("the port is in use, or the address is not one of this PC's")
    bound = server.transport.sockets[0].getsockname()
    print(f"listening {bound[0]}:{bound[1]}", flush=True)
    started = time.monotonic()
    last = 0.0
    try:
        while True:
            t = (time.monotonic() - started) * speed
            for p in units:
                p.step(t, t - last)
                values = p.values()
                for sp in p.points:
                    pt = sp.point
                    value = values.get(sp.role, 0)
                    if sp.role != "running":
                        value = int(value) % (2**32 if width(pt) == 2 else 2**16)
                        if sp.modulus:
                            value %= sp.modulus
                    words = encode(pt, value)
                    data: list[int] | list[bool] = (
                        [bool(w) for w in words] if pt.function in (1, 2) else words
                    )
                    await server.async_setValues(p.unit, pt.function, pt.address, data)
                for line in p.log:
                    print(f"sim: {line}", file=sys.stderr, flush=True)
                p.log.clear()
            last = t
            await asyncio.sleep(STEP_S)
    finally:
        await server.shutdown()


def main(
    args: argparse.Namespace, units_points: list[tuple[int, tuple[SimPoint, ...]]] | None = None
) -> int:
    """Run the simulator until SIGTERM or Ctrl-C: `units_points` are (unit id, points) pairs,
    by default unit 1 with `default_points()`.

    Raises SimulatorUsageError with one sentence when an option is bad or the port is taken.
    """
    import asyncio
    import contextlib
    import logging
    import random
    import signal

    host, sep, port_text = args.listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise SimulatorUsageError(
            f"--listen {args.listen!r} must be HOST:PORT, e.g. 127.0.0.1:5020"
        )
    if not args.speed > 0:
        raise SimulatorUsageError(f"--speed must be above 0, not {args.speed}")
    points = units_points if units_points is not None else [(1, default_points())]
    units = [Packer(u, pts, random.Random(args.seed * 1000 + u)) for u, pts in points]
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    async def run() -> None:
        task = asyncio.create_task(serve(host, int(port_text), units, args.speed))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(run())
    except OSError as exc:
        raise SimulatorUsageError(
            f"cannot listen on {args.listen} ({exc}); pick another port"
        ) from None
    return 0

"""The bare libraries doing a terminal's device work, storing nothing: the benchmark's yardstick.

`python -m bench.bare --serial PTY [--serial PTY ...] --modbus HOST:PORT --units 1,2,3,4`
reads every serial port with pyserial (a thread per port, blocking reads, bytes counted and
dropped) and polls each Modbus unit once a second with pymodbus (the two reads the daemon plans
for the bench's point map: coil 0 and holding 0-11, which spans the gaps between holding 0-2, 5
and 10-11), until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading

import serial
from pymodbus.client import AsyncModbusTcpClient

READS = ((1, 0, 1), (3, 0, 12))  # (function, address, count)


def read_serial(url: str, stop: threading.Event) -> None:
    """Read the port until `stop`, keeping only a byte count."""
    port = serial.serial_for_url(url, timeout=0.1)
    n = 0
    while not stop.is_set():
        n += len(port.read(max(1, port.in_waiting)))
    port.close()


async def poll(host: str, port: int, units: list[int]) -> None:
    """Each unit's reads once a second, forever."""
    client = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
    await client.connect()
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        for unit in units:
            for fn, address, count in READS:
                read = client.read_coils if fn == 1 else client.read_holding_registers
                await read(address, count=count, device_id=unit)
        due += 1.0
        await asyncio.sleep(max(0.0, due - loop.time()))


def main() -> None:
    """Run until SIGTERM."""
    p = argparse.ArgumentParser()
    p.add_argument("--serial", action="append", default=[])
    p.add_argument("--modbus", default="")
    p.add_argument("--units", default="1")
    args = p.parse_args()
    stop = threading.Event()
    threads = [threading.Thread(target=read_serial, args=(u, stop)) for u in args.serial]
    for t in threads:
        t.start()
    print("ready", flush=True)

    async def run() -> None:
        ended = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, ended.set)
        task = None
        if args.modbus:
            host, port = args.modbus.rsplit(":", 1)
            units = [int(u) for u in args.units.split(",")]
            task = asyncio.create_task(poll(host, int(port), units))
        await ended.wait()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(run())
    stop.set()
    for t in threads:
        t.join(2)


if __name__ == "__main__":
    main()

"""The outdoor display's stream, read back on a pseudo-terminal through Tally's own parsers."""

from __future__ import annotations

import asyncio
import os
import tty
from decimal import Decimal
from typing import Any

import pytest

from agent.daemon.services.displays import shown
from drivers.display import SerialDisplay, Shown, frame
from drivers.scale import Reading, make_splitter
from drivers.serial_scale import PortSettings


async def read_back(master: int, protocol: str, until: Any, timeout: float = 10) -> list[Reading]:
    """Readings parsed from the pty until `until(readings)` holds."""
    splitter = make_splitter(protocol)
    readings: list[Reading] = []
    async with asyncio.timeout(timeout):
        while not until(readings):
            await asyncio.sleep(0.02)
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                continue
            readings += [i for i in splitter.feed(data) if isinstance(i, Reading)]
    return readings


@pytest.mark.parametrize("protocol", ["toledo", "xk3190", "ascii"])
async def test_display_shows_the_live_weight_and_blanks_offline(protocol: str) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    topic: dict[str, Any] = {"online": True, "weight": 15000, "stable": True}
    states: list[tuple[bool, str]] = []
    display = SerialDisplay(
        PortSettings(os.ttyname(slave)), protocol, 20.0, on_state=lambda o, r: states.append((o, r))
    )
    task = asyncio.create_task(display.run(lambda: shown(topic)))
    try:
        got = await read_back(master, protocol, lambda rs: len(rs) >= 3)
        assert {(r.weight, r.unit) for r in got} == {(Decimal(15000), "kg")}
        topic = {"online": False, "weight": None, "stable": None}
        if protocol == "xk3190":  # cannot blank: it falls silent
            await asyncio.sleep(0.3)
            with pytest.raises(BlockingIOError):
                while True:
                    os.read(master, 4096)
            await asyncio.sleep(0.3)
            with pytest.raises(BlockingIOError):
                os.read(master, 4096)
        else:
            got = await read_back(master, protocol, lambda rs: any(r.weight is None for r in rs))
            assert got[-1].weight is None
        topic = {"online": True, "weight": 23450, "stable": False}
        got = await read_back(master, protocol, lambda rs: any(r.weight == 23450 for r in rs))
        assert got[-1].weight == Decimal(23450)
        assert states == [(True, "")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        os.close(master)
        os.close(slave)


def test_frames_are_the_scale_encoders() -> None:
    assert frame("ascii", Shown(Decimal(15000))) == b"ST,GS,+0015000kg\r\n"
    assert frame("ascii", Shown(None)) == b"OL,GS,        kg\r\n"
    assert frame("xk3190", Shown(None)) == b""
    assert shown({"online": True, "weight": 50.12, "stable": True}) == Shown(Decimal("50.12"), True)
    assert shown(None) == Shown(None)

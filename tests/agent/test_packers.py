from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import PointConfig, parse
from agent.daemon.alerts import Alerts
from agent.daemon.api import ApiServer, CommandError
from agent.daemon.hub import Hub
from agent.daemon.runtime import Context
from agent.daemon.services.packers import PackersService
from agent.daemon.store import Store, Writer
from tests.drivers.modbus_server import LoopbackServer

BAGS = PointConfig("bags", 3, 0, "uint16")
RETURNED = PointConfig("returned", 3, 1, "uint16")
BROKEN = PointConfig("broken", 3, 2, "uint16")
LOADED = PointConfig("loaded", 3, 4, "uint32", "little")
RUNNING = PointConfig("running", 1, 0, "bool")


def config(tmp_path: Path, port: int, extra: str = "", points: str = "") -> Any:
    import tomllib

    text = f"""
[terminal]
id = "pk1"
database = "{tmp_path}/tally.db"
socket = "{tmp_path}/s"

[[packer]]
name = "line1"
host = "127.0.0.1"
port = {port}
poll_s = 0.05
timeout_s = 5  # a timeout here would only mean a busy machine, not a silent unit
tally_s = 1
stop_after_s = 1
{extra}
  [[packer.point]]
  role = "bags"
  function = 3
  address = 0
  [[packer.point]]
  role = "returned"
  function = 3
  address = 1
  [[packer.point]]
  role = "broken"
  function = 3
  address = 2
  [[packer.point]]
  role = "loaded"
  function = 3
  address = 4
  type = "uint32"
  word_order = "little"
  [[packer.point]]
  role = "running"
  function = 1
  address = 0
  type = "bool"
{points}

[checks]
handover_window_min = 0  # a stop is never a handover stop, whatever the time of day
"""
    return parse(tomllib.loads(text))


class Plant:
    """A PackersService on a real store, fed by a real Modbus server."""

    def __init__(self, tmp_path: Path, server: LoopbackServer, **kw: str) -> None:
        self.cfg = config(tmp_path, server.port, **kw)
        self.server = server
        self.writer = Writer(self.cfg.terminal.database, "pk1")
        self.store = Store(self.cfg.terminal.database)
        self.hub = Hub()
        self.api = ApiServer(self.cfg.terminal.socket, self.hub)
        self.alerts = Alerts(self.writer, self.hub, self.store)
        self.ctx = Context(
            self.cfg, self.writer, self.store, self.hub, self.api, self.alerts, asyncio.Event()
        )
        self.service = PackersService(self.ctx)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.service.run())

    async def stop(self) -> None:
        """Stop the service as the daemon does, then let the writer commit what is queued.

        A stop that lands while a tally's append is queued cancels the wait, not the write:
        the writer still commits it, as the daemon's Writer.close does. Reading the store
        before that commit would miss the interval (this once read 0 bags where 1 was due).
        """
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.writer.run(lambda _conn: None)  # behind every queued append

    def close(self) -> None:
        self.writer.close()
        self.store.close()

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e.data for e in self.store.iter_events(kind)]

    async def until(self, predicate: Callable[[], Any], timeout: float = 10) -> Any:
        async with asyncio.timeout(timeout):
            while not (value := predicate()):
                await asyncio.sleep(0.02)
        return value

    async def set(self, **values: Any) -> None:
        points = {
            "bags": BAGS,
            "returned": RETURNED,
            "broken": BROKEN,
            "loaded": LOADED,
            "running": RUNNING,
        }
        for key, value in values.items():
            await self.server.set(1, points[key].point(), value)

    async def seen(self, **values: Any) -> None:
        """Wait until the service has read these raw values."""
        await self.until(
            lambda: all(self.service.states["line1"].raw.get(k) == v for k, v in values.items())
        )


@contextlib.asynccontextmanager
async def plant(tmp_path: Path, **kw: str) -> AsyncIterator[Plant]:
    server = await LoopbackServer().start()
    p = Plant(tmp_path, server, **kw)
    try:
        yield p
    finally:
        if p.task and not p.task.done():
            await p.stop()
        await server.stop()
        p.close()


def tally_sum(p: Plant) -> tuple[int, int, int]:
    ts = p.events("packer.tally")
    return (
        sum(t["bags"] for t in ts),
        sum(t["returned"] for t in ts),
        sum(t["broken"] for t in ts),
    )


async def test_counts_across_wrap_and_reset_exactly_once(tmp_path: Path) -> None:
    async with plant(tmp_path) as p:
        await p.set(bags=65530, returned=10, broken=3, loaded=70_000, running=True)
        p.start()
        await p.seen(bags=65530, running=True)
        await p.set(bags=65535, returned=11)
        await p.seen(bags=65535)
        await p.set(bags=4, loaded=70_010)  # wrap: 5 bags
        await p.seen(bags=4)
        await p.set(bags=2, broken=4)  # power cycle: reset, 2 bags
        await p.seen(bags=2, broken=4)
        points = {"bags": 2, "returned": 11, "broken": 4, "loaded": 70_010, "running": True}
        await p.until(lambda: p.hub.get("packer.line1")["points"] == points)  # the topic follows
        await p.stop()
        assert tally_sum(p) == (5 + 5 + 2, 1, 1)
        assert p.events("counter.discontinuity") == [
            {"device": "line1", "point": "bags", "previous": 65535, "current": 4, "cause": "wrap"},
            {"device": "line1", "point": "bags", "previous": 4, "current": 2, "cause": "reset"},
        ]
        assert p.events("device.online") == [{"device": "line1", "reason": ""}]
        state = p.store.get_state("packer.line1")
        assert state["last"]["bags"][0] == 2
        assert (state["bags"], state["seen"], state["loaded"]) == (0, False, 10)
        tally = p.events("packer.tally")[0]
        assert sorted(tally) == [
            "bag_kg",
            "bags",
            "broken",
            "from",
            "packer",
            "returned",
            "running_s",
            "to",
        ]
        topic = p.hub.get("packer.line1")
        assert sorted(topic) == [
            "bag_kg",
            "day",
            "kind",
            "last15",
            "loaded",
            "name",
            "online",
            "points",
            "running",
            "stopped",
        ]
        assert topic["points"] == points
        assert (topic["loaded"], topic["day"]["bags"], topic["day"]["returned"]) == (10, 12, 1)


async def test_restart_of_the_service_counts_once(tmp_path: Path) -> None:
    async with plant(tmp_path) as p:
        await p.set(bags=100, running=True)
        p.start()
        await p.seen(bags=100)
        await p.set(bags=110)
        await p.seen(bags=110)
        await p.stop()
        await p.set(bags=125)  # counted while "the daemon" was stopped
        p2 = Plant(tmp_path, p.server)
        p2.writer.close()  # share the first writer: one writer per database
        p2.writer = p.writer
        p2.ctx.writer = p.writer
        p2.start()
        await p2.seen(bags=125)
        await p2.stop()
        p2.store.close()
        assert tally_sum(p)[0] == 25


async def test_stop_reason_and_start(tmp_path: Path) -> None:
    async with plant(tmp_path) as p:
        await p.set(bags=1, running=True)
        p.start()
        await p.seen(running=True)
        with pytest.raises(CommandError, match="packer line1 is running"):
            await p.service.reason({"packer": "line1", "reason": "jam", "expected_repair_min": 5})
        await p.set(running=False)
        await p.until(lambda: p.events("packer.stopped"))
        reply = await p.service.reason(
            {"packer": "line1", "reason": "spout 3 jammed", "expected_repair_min": 30}
        )
        stops = p.events("packer.stopped")
        assert [(s["packer"], s["reason"], s["expected_repair_min"]) for s in stops] == [
            ("line1", None, None),
            ("line1", "spout 3 jammed", 30),
        ]
        assert stops[0]["since"] == stops[1]["since"] == reply["since"]
        assert p.hub.get("packer.line1")["stopped"] == {
            "reason": "spout 3 jammed",
            "expected_repair_min": 30,
            "since": reply["since"],
        }
        await p.set(running=True)
        await p.until(lambda: p.events("packer.started"))
        assert p.events("packer.started") == [{"packer": "line1"}]
        # the state is published after the event is stored: wait for it, do not race it
        await p.until(lambda: p.hub.get("packer.line1")["stopped"] is None)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"packer": "line9", "reason": "x", "expected_repair_min": 1},
            "there is no packer 'line9'; the packers are: line1",
        ),
        (
            {"packer": "line1", "reason": "  ", "expected_repair_min": 1},
            "reason must be a short text saying why the packer stopped",
        ),
        (
            {"packer": "line1", "reason": "x" * 201, "expected_repair_min": 1},
            "reason is 201 characters; keep it to 200",
        ),
        (
            {"packer": "line1", "reason": "x", "expected_repair_min": "ten"},
            "expected_repair_min must be a whole number of minutes",
        ),
        (
            {"packer": "line1", "reason": "x", "expected_repair_min": -5},
            "expected_repair_min must be between 0 and 10080, not -5",
        ),
    ],
)
async def test_reason_validation(tmp_path: Path, request_: dict[str, Any], message: str) -> None:
    async with plant(tmp_path) as p:
        with pytest.raises(CommandError) as err:
            await p.service.reason(request_)
        assert str(err.value) == message
        assert p.events("packer.stopped") == []


async def test_illegal_address_raises_modbus_config_alert(tmp_path: Path) -> None:
    extra = '  [[packer.point]]\n  role = "spout"\n  name = "s1"\n  function = 3\n  address = 500\n'
    async with plant(tmp_path, points=extra) as p:
        p.start()
        await p.until(lambda: p.events("alert.raised"))
        assert p.events("alert.raised") == [
            {
                "alert": "modbus_config.line1",
                "detail": "packer line1: unit 1 refused function 3 at address 500 count 1 with "
                "exception code 2 (illegal data address); check the point map of s1",
            }
        ]


async def test_anomaly_is_alerted_not_counted(tmp_path: Path) -> None:
    async with plant(tmp_path) as p:
        await p.set(bags=10, running=True)
        p.start()
        await p.seen(bags=10)
        await p.set(bags=9000)
        await p.seen(bags=9000)
        await p.set(bags=9001)
        await p.seen(bags=9001)
        await p.stop()
        assert tally_sum(p)[0] == 1
        raised = p.events("alert.raised")
        assert [a["alert"] for a in raised] == ["packer_anomaly.line1"]
        assert raised[0]["detail"].startswith(
            "packer line1: counter bags went from 10 to 9000 (8990 counts, more than the "
        )


async def test_a_stop_while_a_tally_waits_for_the_writer_loses_no_bag(tmp_path: Path) -> None:
    """The daemon stops (a cancel) while an interval's tally is queued behind a busy writer:
    the cancel abandons the wait, never the write, and the clean stop's flush has nothing left
    to add. The bag is stored exactly once."""
    async with plant(tmp_path) as p:
        await p.set(bags=10, running=True)
        p.start()
        await p.seen(bags=10)
        await p.set(bags=11)
        await p.seen(bags=11)
        p.writer.call(lambda _conn: time.sleep(2))  # the writer thread busy, as under load
        await asyncio.sleep(1.2)  # an interval ends (tally_s = 1): its tally waits in the queue
        await p.stop()
        assert tally_sum(p)[0] == 1


async def test_the_last_interval_closes_on_time_after_the_unit_is_gone(tmp_path: Path) -> None:
    """The service sleeps until the next interval ends rather than ticking every second: with
    the unit gone no reading wakes it, and the interval that saw the last reading still closes
    at its end (tally_s = 1 here; the longest sleep is 30 s)."""
    async with plant(tmp_path) as p:
        p.start()
        await p.set(bags=0)
        await p.seen(bags=0)
        await p.set(bags=7)
        await p.seen(bags=7)
        await p.server.stop()
        await p.until(lambda: tally_sum(p)[0] == 7, timeout=10)

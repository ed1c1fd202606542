"""A scripted daemon for Pilot tests: the real ApiServer and Hub on a temporary Unix socket."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from agent.daemon.api import ApiServer, CommandError
from agent.daemon.hub import Hub
from tests.tui.fixtures import STATES

OPS = [
    "visit.arrive",
    "visit.gate_in",
    "visit.queue",
    "visit.weigh",
    "visit.loading_start",
    "visit.loading_finish",
    "visit.seal",
    "visit.exit",
    "visit.broken_bags",
    "visit.cancel",
    "packer.reason",
    "check.bag_weight",
    "check.print_code",
    "window.arrive",
    "window.serve",
]


@dataclass
class Plant:
    """The scripted daemon: what it was asked, and what it answers."""

    socket: str
    hub: Hub = field(default_factory=Hub)
    api: ApiServer | None = None
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # op → the sentence it refuses with
    answers: dict[str, Any] = field(default_factory=dict)  # op → its answer, when not the usual

    def handler(self, op: str) -> Callable[[dict[str, Any]], Any]:
        async def handle(req: dict[str, Any]) -> Any:
            self.requests.append((op, {k: v for k, v in req.items() if k not in ("id", "op")}))
            if op in self.refuse:
                raise CommandError(self.refuse[op])
            return self.answers.get(op, {"visit": "0190a000-0000-7000-8000-00000000000f"})

        return handle

    async def start(self) -> None:
        """Serve the ops and publish the fixed states."""
        self.api = ApiServer(self.socket, self.hub)
        for op in OPS:
            self.api.register(op, self.handler(op))
        await self.api.start()
        for topic, state in STATES.items():
            self.hub.publish(topic, state)

    async def stop(self) -> None:
        """The daemon goes away: the socket closes and disappears."""
        assert self.api is not None
        await self.api.close()
        self.api = None


@pytest.fixture
async def plant() -> AsyncIterator[Plant]:
    """A running scripted daemon (socket in a short temporary folder)."""
    folder = Path(tempfile.mkdtemp(prefix="tally-tui-"))
    p = Plant(str(folder / "tally.sock"))
    await p.start()
    try:
        yield p
    finally:
        if p.api is not None:
            await p.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def until(pilot: Pilot[Any], predicate: Callable[[], Any], timeout: float = 10) -> None:
    """Let the app run until `predicate()` holds (fail the test after `timeout` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("the app never reached the expected state")
        await pilot.pause(0.02)

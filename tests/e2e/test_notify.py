"""The daemon's sd_notify messages, received on a fake NOTIFY_SOCKET by the real process."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon, wait_for, write_config

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s
PING_S = WATCHDOG_USEC / 2_000_000
BLOCK_S = 4.0  # how long SIGUSR2 blocks the daemon's loop (test hook)
SO_TIMESTAMP = 29  # Linux's value (asm-generic/socket.h); Python's socket module lacks it


class FakeManager:
    """A datagram socket standing in for systemd's notification socket.

    The kernel stamps each datagram with the time it was sent, so the daemon's own cadence is
    measured whatever delays this (perhaps busy) test process has in reading them.
    """

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        self.address = address
        self.datagrams: list[tuple[float, list[str]]] = []  # (sent at, wall clock; fields)

    @property
    def messages(self) -> list[str]:
        """Every field received so far, in order."""
        return [f for _, fields in self.datagrams for f in fields]

    def pings(self) -> list[float]:
        """When each WATCHDOG=1 received so far was sent (wall clock seconds)."""
        return [at for at, fields in self.datagrams if "WATCHDOG=1" in fields]

    def receive(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for one datagram; whether one came."""
        self.sock.settimeout(timeout)
        try:
            data, ancillary, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
        except TimeoutError:
            return False
        [sent] = [
            sec + usec / 1e6
            for level, kind, raw in ancillary
            if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMP)
            for sec, usec in [struct.unpack("@ll", raw)]
        ]
        self.datagrams.append((sent, data.decode().split("\n")))
        return True

    def until(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        """Receive until `predicate()` holds; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            assert left > 0, f"not received within {timeout} s: {self.messages}"
            self.receive(min(left, 0.5))

    def drain(self) -> None:
        """Receive whatever is already queued."""
        while self.receive(0.2):
            pass


def _manager(tmp_path: Path, abstract: bool) -> FakeManager:
    if abstract:
        return FakeManager(f"@tally-test-{uuid.uuid4().hex}")
    return FakeManager(str(tmp_path / "notify.sock"))


@pytest.fixture(params=["abstract", "path"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeManager]:
    m = _manager(tmp_path, request.param == "abstract")
    yield m
    m.sock.close()


def _start(tmp_path: Path, manager: FakeManager, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    monkeypatch.setenv("NOTIFY_SOCKET", manager.address)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.setenv("TALLY_TEST_BLOCK_S", str(BLOCK_S))
    # A scale whose port does not exist: a dead device must not stop the watchdog.
    config = write_config(
        tmp_path / "t",
        f'[[scale]]\nname = "scale1"\nport = "{tmp_path}/no-such-port"\nprotocol = "xk3190"\n',
    )
    return Daemon(config, hooks=True).start()


def test_ready_once_watchdog_cadence_and_stopping(
    tmp_path: Path, manager: FakeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _start(tmp_path, manager, monkeypatch)
    try:
        manager.until(lambda: len(manager.pings()) >= 5)
        assert d.request("ping")["pong"] is True
    finally:
        assert d.stop() == 0
    manager.drain()
    # Paced by the watchdog interval, never a burst (a busy machine only lengthens the gaps).
    gaps = [b - a for a, b in itertools.pairwise(manager.pings())]
    assert min(gaps) >= PING_S - 0.05, gaps
    assert manager.messages.count("READY=1") == 1
    assert "STOPPING=1" in manager.messages
    assert manager.messages.index("READY=1") < manager.messages.index("STOPPING=1")
    # READY=1 carries the first STATUS= in the same datagram (devices may not be up yet).
    ready = manager.messages.index("READY=1")
    assert manager.messages[ready + 1].startswith("STATUS=")
    assert manager.messages[-1] == "STATUS=stopping"


def test_pings_stop_while_the_loop_is_blocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = _manager(tmp_path, abstract=True)
    d = _start(tmp_path, manager, monkeypatch)
    try:
        manager.until(lambda: len(manager.pings()) >= 2)
        assert d.proc is not None
        signalled = time.time()
        os.kill(d.proc.pid, signal.SIGUSR2)
        wait_for(lambda: "event loop unblocked" in d.log(), timeout=60)
        # The loop comes back by itself and so do the pings.
        manager.until(lambda: len(manager.pings()) >= 2 and manager.pings()[-1] > signalled + 4)
    finally:
        assert d.stop() == 0
        manager.sock.close()
    # No ping while the loop slept: one gap spans the whole block (the pings come from the loop,
    # not from a thread that would keep pinging a wedged daemon).
    pings = manager.pings()
    gaps = [b - a for a, b in itertools.pairwise(pings) if b > signalled]
    assert max(gaps) >= BLOCK_S - 0.05, gaps
    assert manager.messages.count("READY=1") == 1


def test_no_notify_socket_means_no_notifications(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    with Daemon(write_config(tmp_path / "t")) as d:
        assert d.request("ping")["pong"] is True
    assert "notified the service manager" not in d.log()

"""The daemon's sd_notify messages, received on a fake NOTIFY_SOCKET by the real process."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon, wait_for, write_config

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s


class FakeManager:
    """A datagram socket standing in for systemd's notification socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.address = address
        self.messages: list[str] = []

    def collect(self, seconds: float) -> list[str]:
        """Every message received within the next `seconds`, split into fields."""
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            got.extend(data.decode().split("\n"))
        self.messages.extend(got)
        return got

    def drain(self) -> list[str]:
        """Whatever is already queued."""
        return self.collect(0.05)


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
    monkeypatch.setenv("TALLY_TEST_BLOCK_S", "4")
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
        window = manager.collect(3.0)
        pings = window.count("WATCHDOG=1")
        # 0.5 s cadence over 3 s is 6; generous bounds so a busy machine does not fail it.
        assert 3 <= pings <= 10, window
        assert d.request("ping")["pong"] is True
    finally:
        assert d.stop() == 0
    manager.drain()
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
        wait_for(lambda: "WATCHDOG=1" in manager.collect(0.5), timeout=10)
        assert d.proc is not None
        os.kill(d.proc.pid, signal.SIGUSR2)
        wait_for(lambda: "blocking the event loop" in d.log(), timeout=10)
        manager.drain()  # pings sent before the loop stopped
        assert manager.collect(3.0) == []
        # The loop comes back by itself and so do the pings.
        wait_for(lambda: "WATCHDOG=1" in manager.collect(0.5), timeout=10)
    finally:
        assert d.stop() == 0
        manager.sock.close()
    assert manager.messages.count("READY=1") == 1


def test_no_notify_socket_means_no_notifications(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    with Daemon(write_config(tmp_path / "t")) as d:
        assert d.request("ping")["pong"] is True
    assert "notified the service manager" not in d.log()

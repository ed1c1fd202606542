"""A canary token never appears in any log, database file or event, even at debug level."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from agent.config import load
from agent.daemon import lifeline
from agent.daemon.client import DaemonUnavailable, request
from tests.daemon import tally, wait_for, write_config
from tests.sync.helpers import Receiver, write_private

CANARY = "canary-7f3a9c1e5b2d4068"
WRONG = "wrong-0d9e8c7b6a5f4e3d"


def test_the_token_never_leaks(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "receiver", f"wb1:{CANARY}\n").start()
    token = write_private(tmp_path / "token", WRONG)
    config = write_config(
        tmp_path / "agent",
        f'[sync]\nurl = "{receiver.url}"\ntoken_file = "{token}"\ninterval_s = 0.05\n',
    )
    socket_path = load(config, check_paths=False).terminal.socket
    log_path = tmp_path / "agent" / "daemon.log"
    with open(log_path, "wb") as log:
        proc = lifeline.popen(
            [sys.executable, "-m", "agent.cli", "-v", "run", "--config", str(config)],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:

        def ping() -> bool:
            try:
                request(socket_path, "ping", timeout=1)
            except DaemonUnavailable:
                return False
            return True

        wait_for(ping, timeout=60)
        status = wait_for(
            lambda: (
                (s := request(socket_path, "sync.sender.status"))["state"] == "auth_failed" and s
            )
        )
        assert status["last_error"] == (
            "the server refused the token with 401 (the token is not known to this server;"
            " check the token file); check sync.token_file"
        )
        write_private(token, CANARY + "\n")  # the operator fixes the token file
        request(socket_path, "note.add", text="after the fix")
        wait_for(lambda: request(socket_path, "sync.sender.status")["backlog"] == 0, timeout=60)
    finally:
        proc.terminate()
        proc.wait(20)
        receiver.stop()
    events = tally("events", "--config", str(config), "--json").stdout
    status_out = tally("sync", "status", "--config", str(config), "--json").stdout
    kinds = [line.split('"kind":"')[1].split('"')[0] for line in events.splitlines()]
    assert "alert.raised" in kinds and "alert.cleared" in kinds
    assert "DEBUG" in log_path.read_text()  # debug logging was on
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != token and p.name != "tokens"]
    assert {p.name for p in files} >= {"tally.db", "receiver.db", "daemon.log", "receiver.log"}
    for secret in (CANARY, WRONG):
        leaks = [str(p) for p in files if secret.encode() in p.read_bytes()]
        assert leaks == []
        assert secret not in events
        assert secret not in status_out

"""Bad input at the real daemon over its socket (issue 16): one sentence, never a stop."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.daemon.store import Store
from tests.daemon import Daemon, tally, write_config


class Line:
    """One raw connection to the local API: send a line of bytes, read one answer."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")

    def ask(self, raw: bytes) -> dict[str, Any]:
        self.sock.sendall(raw + b"\n")
        line = self.file.readline()
        assert line, "the daemon closed the connection"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def stored(config: Path) -> list[tuple[int, str, dict[str, Any]]]:
    db = str(config.parent / "tally.db")
    store = Store(db)
    try:
        return [(e.seq, e.kind, e.data) for e in store.iter_events()]
    finally:
        store.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    config = write_config(tmp_path_factory.mktemp("bad"))
    with Daemon(config) as d:
        d.request("note.add", text="before the attack", operator="ann")
        yield d


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"op": "note.add", "text": "x\ud800y"}, "text"),
        (
            {
                "op": "visit.arrive",
                "plate": "苏A12345",
                "order": "o\ud800",
                "product": "P.O 42.5",
                "load": "bulk",
                "planned_kg": 30000,
            },
            "order",
        ),
        (
            {"op": "window.arrive", "window": "sales", "service": "sales", "ticket": "\udfff"},
            "ticket",
        ),
    ],
)
def test_a_lone_surrogate_is_one_sentence_and_the_daemon_stays(
    daemon: Daemon, request_: dict[str, Any], field: str
) -> None:
    before = stored(daemon.config)
    line = Line(daemon.socket)
    try:
        answer = line.ask(json.dumps({"id": 7, **request_}).encode())  # \\ud800 escaped: valid JSON
        assert answer == {
            "id": 7,
            "ok": False,
            "error": f"{field} is not valid Unicode text (it holds a lone surrogate or undecodable"
            " bytes); type it again as UTF-8",
        }
        assert line.ask(b'{"id":8,"op":"ping"}')["ok"] is True
    finally:
        line.close()
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert stored(daemon.config) == before
    assert daemon.request("note.add", text="after")["seq"] == before[-1][0] + 1


def test_a_deeply_nested_line_is_one_sentence_on_a_live_connection(daemon: Daemon) -> None:
    line = Line(daemon.socket)
    try:
        assert line.ask(b"[" * 200_000 + b"]" * 200_000) == {
            "id": None,
            "ok": False,
            "error": "the request nests too deep; keep it to 16",
        }
        assert line.ask(b'{"id":1,"op":"ping","x":' + b"[" * 30 + b"]" * 30 + b"}") == {
            "id": 1,
            "ok": False,
            "error": "x[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0] nests deeper than 16 levels;"
            " send a flatter value",
        }
        assert line.ask(b'{"id":2,"op":"ping"}')["ok"] is True
    finally:
        line.close()


def test_op_fields_of_the_wrong_type_are_one_sentence(daemon: Daemon) -> None:
    line = Line(daemon.socket)
    try:
        asks = [
            (
                {"op": "window.arrive", "window": "sales", "service": ["sales"]},
                "service must be text, not a list",
            ),
            ({"op": "window.serve", "ticket": {"n": 1}}, "ticket must be text, not an object"),
            (
                {"op": "note.add", "text": "t", "operator": {"n": "ann"}},
                "operator must be text, not an object",
            ),
            (
                {"op": "note.add", "text": "t", "operator": "o" * 900_000},
                "operator has 900000 characters; keep it to at most 64",
            ),
        ]
        for i, (req, error) in enumerate(asks):
            assert line.ask(json.dumps({"id": i, **req}).encode()) == {
                "id": i,
                "ok": False,
                "error": error,
            }
    finally:
        line.close()


def test_subscriptions_per_connection_are_capped(daemon: Daemon) -> None:
    line = Line(daemon.socket)
    try:
        answers = []
        for i in range(5):
            line.sock.sendall(json.dumps({"id": i, "op": "subscribe"}).encode() + b"\n")
        while len(answers) < 5:
            msg = json.loads(line.file.readline())
            if "topic" not in msg:
                answers.append(msg)
        assert answers == [
            *({"id": i, "ok": True, "result": "subscribed"} for i in range(4)),
            {
                "id": 4,
                "ok": False,
                "error": "this connection already has 4 subscriptions; one stream carries every topic",
            },
        ]
    finally:
        line.close()


def test_two_hundred_clients_at_once(daemon: Daemon) -> None:
    def ping(_: int) -> bool:
        line = Line(daemon.socket)
        try:
            return line.ask(b'{"id":1,"op":"ping"}')["ok"] is True
        finally:
            line.close()

    socks = []
    try:
        for _ in range(200):  # connected, nothing sent yet: they wait in the listen backlog
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(daemon.socket)
            socks.append(s)
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            assert all(pool.map(ping, range(200)))
        out = tally("status", "--config", str(daemon.config))
        assert "no Tally daemon answers" not in out.stdout + out.stderr
    finally:
        for s in socks:
            s.close()


def test_ctl_with_bytes_that_are_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    config = write_config(tmp_path / "t")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "ctl",
            "--config",
            str(config),
            "note",
            "--text",
            b"\xff",
        ],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.decode() == (
        "tally: text is not valid Unicode text (it holds a lone surrogate or undecodable bytes);"
        " type it again as UTF-8\n"
    )


def test_check_config_refuses_a_socket_on_the_database(tmp_path: Path) -> None:
    config = tmp_path / "tally.toml"
    db = tmp_path / "tally.db"
    db.write_bytes(b"precious")
    config.write_text(
        f'[terminal]\nid = "wb1"\ndatabase = "{db}"\nsocket = "{db}"\n', encoding="utf-8"
    )
    out = tally("check-config", str(config))
    assert out.returncode == 2
    assert f"terminal.socket: '{db}' is the file of terminal.database" in out.stderr
    run = tally("run", "--config", str(config), timeout=60)
    assert run.returncode == 2
    assert db.read_bytes() == b"precious"


def test_the_old_test_hook_switch_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALLY_TEST_HOOKS", "1")
    config = write_config(tmp_path / "t")
    with Daemon(config) as d:
        line = Line(d.socket)
        try:
            answer = line.ask(b'{"id":1,"op":"debug.append","kind":"test.x","data":{}}')
        finally:
            line.close()
    assert answer["ok"] is False
    assert answer["error"].startswith("unknown op 'debug.append'")
    assert os.environ["TALLY_TEST_HOOKS"] == "1"

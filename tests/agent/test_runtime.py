"""The daemon as a real process: local API, subscribe, clean stop, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
from pathlib import Path

import pytest

from agent.daemon import runtime
from agent.daemon.store import Store
from tests.daemon import Daemon, tally, write_config


def _lines(sock_path: str, *requests: bytes, want: int) -> list[dict[str, object]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock_path)
        for r in requests:
            s.sendall(r)
        buf = b""
        while buf.count(b"\n") < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return [json.loads(line) for line in buf.splitlines()[:want]]


def test_local_api_answers_and_refuses_in_one_sentence(daemon: Daemon) -> None:
    replies = _lines(
        daemon.socket,
        b'{"id": 1, "op": "ping"}\n',
        b"not json\n",
        b'{"id": 3, "op": "fly"}\n',
        want=3,
    )
    assert replies[0]["id"] == 1 and replies[0]["ok"] is True
    assert replies[1] == {"id": None, "ok": False, "error": "the request is not a JSON object"}
    assert replies[2]["ok"] is False and replies[2]["id"] == 3
    assert str(replies[2]["error"]).startswith("unknown op 'fly'; known ops: ")


def test_subscribe_streams_state_messages(daemon: Daemon) -> None:
    replies = _lines(daemon.socket, b'{"id": 7, "op": "subscribe"}\n', want=2)
    assert replies[0] == {"id": 7, "ok": True, "result": "subscribed"}
    assert "topic" in replies[1] and "state" in replies[1]


def test_sigterm_stops_cleanly_with_started_and_stopped_events(config_path: Path) -> None:
    d = Daemon(config_path).start()
    assert d.stop(signal.SIGTERM) == 0
    store = Store(str(config_path.parent / "tally.db"))
    kinds = [e.kind for e in store.iter_events()]
    assert kinds == ["agent.started", "agent.stopped"]
    assert store.events_after(1)[0].data == {"reason": "signal"}
    assert not Path(d.socket).exists()


def test_sigint_also_stops_cleanly(config_path: Path) -> None:
    d = Daemon(config_path).start()
    assert d.stop(signal.SIGINT) == 0


def test_a_second_daemon_on_the_same_socket_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    other = write_config(tmp_path / "other")
    text = other.read_text(encoding="utf-8")
    other.write_text(
        text.replace(f'socket = "{other.parent}/tally.sock"', f'socket = "{daemon.socket}"'),
        encoding="utf-8",
    )
    r = tally("run", "--config", str(other), timeout=30)
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == (
        f"tally: another daemon is already serving {daemon.socket}; "
        "stop it or change terminal.socket"
    )
    assert (
        not (tmp_path / "other" / "tally.db").exists()
        or Store(str(tmp_path / "other" / "tally.db")).count() == 0
    )
    assert daemon.request("ping")["pong"] is True


def test_invalid_config_refuses_to_start_with_exit_2(tmp_path: Path) -> None:
    bad = write_config(tmp_path, '[kpi]\nqueue_alert = "many"\n')
    r = tally("run", "--config", str(bad))
    assert (r.returncode, r.stderr) == (2, "kpi.queue_alert: must be a whole number, not 'many'\n")
    assert not (tmp_path / "tally.db").exists()


def test_events_command_lists_json_envelopes_and_a_table(config_path: Path) -> None:
    Daemon(config_path).start().stop()
    r = tally("events", "--config", str(config_path), "--json")
    assert r.returncode == 0
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(e["seq"], e["kind"]) for e in rows] == [(1, "agent.started"), (2, "agent.stopped")]
    assert set(rows[0]) == {
        "terminal",
        "epoch",
        "seq",
        "id",
        "kind",
        "at",
        "mono_ns",
        "boot",
        "data",
    }
    assert rows[0]["id"] == f"wb1:{rows[0]['epoch']}:1"
    r = tally("events", "--config", str(config_path), "--kind", "agent.stopped")
    assert r.stdout.splitlines()[0].split() == ["SEQ", "AT", "(UTC)", "KIND", "DATA"]
    assert len(r.stdout.splitlines()) == 2 and "agent.stopped" in r.stdout


def test_events_without_a_database_says_so(config_path: Path) -> None:
    r = tally("events", "--config", str(config_path))
    assert r.returncode == 2
    assert r.stderr.startswith("tally: there is no database at ")


def test_a_failing_store_stops_the_daemon_with_exit_1(config_path: Path) -> None:
    import sqlite3
    import time

    d = Daemon(config_path).start()
    conn = sqlite3.connect(config_path.parent / "tally.db")
    conn.execute("ALTER TABLE events RENAME TO broken_events")  # the writer's inserts now fail
    conn.commit()
    conn.close()
    r = tally("ctl", "--config", str(config_path), "note", "--text", "shift change")
    assert r.returncode != 0
    assert d.proc is not None
    deadline = time.monotonic() + 20
    while d.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert d.stop() == 1
    assert "the store failed" in d.log()


def test_a_store_that_fails_on_the_first_event_stops_the_daemon_with_exit_1(
    config_path: Path,
) -> None:
    """The writer dies on `agent.started` itself (the API already answers by then): still the
    failed store's exit 1, not a refused start's 2, and nothing already stored is touched."""
    import sqlite3

    Daemon(config_path).start().stop()
    db = config_path.parent / "tally.db"
    conn = sqlite3.connect(db)
    before = conn.execute("SELECT * FROM events ORDER BY seq").fetchall()
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    conn.commit()
    conn.close()
    r = tally("run", "--config", str(config_path))
    assert r.returncode == 1, r.stderr
    assert "the store failed (refused)" in r.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT * FROM events ORDER BY seq").fetchall() == before
    conn.close()


def test_a_wall_clock_step_is_recorded_with_its_size_and_a_small_drift_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time
    import types
    from typing import cast

    from agent.daemon.store import Writer

    shift_ns = [0]  # what the wall clock has been moved by, against the monotonic clock
    clock = types.SimpleNamespace(
        monotonic_ns=time.monotonic_ns,
        time_ns=lambda: time.monotonic_ns() + 1_700_000_000 * 10**9 + shift_ns[0],
    )
    monkeypatch.setattr(runtime, "time", clock)
    writer = Writer(str(tmp_path / "t.db"), "wb1")
    status: dict[str, object] = {}
    ctx = cast(runtime.Context, types.SimpleNamespace(writer=writer, status=status))
    store = Store(str(tmp_path / "t.db"))

    async def scenario() -> list[int]:
        watch = asyncio.create_task(runtime.ClockWatch(ctx, interval_s=0.01).run())
        try:
            for shift_ms in (0, 1500, 6500, 1500):  # a drift within 2 s, on 5 s, back 5 s
                shift_ns[0] = shift_ms * 1_000_000
                await asyncio.sleep(0.2)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        return [e.data["delta_ms"] for e in store.events_after(0, kind="clock.stepped")]

    try:
        steps = asyncio.run(scenario())
        # the two clocks are read one after the other: a millisecond either way
        assert len(steps) == 2 and abs(steps[0] - 6500) <= 1 and abs(steps[1] + 5000) <= 1
        assert abs(cast(int, status["clock_offset_ms"])) <= 1  # measured from the last step
    finally:
        store.close()
        writer.close()


def test_what_outlives_the_daemon_is_named_and_not_waited_on_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task that will not be cancelled and a worker thread that will not return (what a stop
    could otherwise hang on) are given LINGER_S each, then named."""
    monkeypatch.setattr(runtime, "LINGER_S", 0.3)
    loop = asyncio.new_event_loop()
    release = threading.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    async def start() -> None:
        asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
        asyncio.get_running_loop().run_in_executor(None, release.wait)
        await asyncio.sleep(0)

    loop.run_until_complete(start())
    try:
        lingering = runtime.wind_down(loop)
        assert "task stubborn" in lingering
        assert "a worker thread" in lingering
    finally:
        release.set()
        loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop)))
        loop.close()


def test_a_daemon_winds_down_with_nothing_left_over() -> None:
    """The ordinary case: tasks that end on cancel, an idle executor; the loop is closed."""
    loop = asyncio.new_event_loop()

    async def start() -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(60), name="sleeper")
        await asyncio.get_running_loop().run_in_executor(None, sum, [1, 2])

    loop.run_until_complete(start())
    assert runtime.wind_down(loop) == []
    assert loop.is_closed()

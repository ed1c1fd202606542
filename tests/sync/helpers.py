"""Test parts for sync: the real receiver as a process, a faulty loopback proxy, sender parts."""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agent.config import SyncConfig
from agent.daemon import lifeline
from agent.daemon.alerts import Alerts
from agent.daemon.hub import Hub
from agent.daemon.store import Store, Writer
from sync.sender.forwarder import Sender, load_token


def write_private(path: Path, text: str) -> Path:
    """Write a file only its owner may read (mode 0600)."""
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


class Receiver:
    """`tally serve` as a real process; it keeps its port across restarts."""

    def __init__(
        self, folder: Path, tokens: str, *, extra: tuple[str, ...] = (), db_url: str = ""
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.db = folder / "receiver.db"
        self.db_url = db_url  # a postgresql:// URL, or "" for the SQLite file `db`
        self.db_arg = db_url or str(self.db)
        self.tokens = write_private(folder / "tokens", tokens)
        self.log_path = folder / "receiver.log"
        self.extra = extra
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> Receiver:
        """Start and wait for the `listening URL` line."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes it
        self.proc = lifeline.popen(
            [
                sys.executable,
                "-m",
                "agent.cli",
                "serve",
                "--db",
                self.db_arg,
                "--listen",
                f"127.0.0.1:{self.port}",
                "--tokens",
                str(self.tokens),
                *self.extra,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening "):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"receiver did not start: {line!r}\n{self.log()}")
        self.url = line.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def log(self) -> str:
        """What the receiver printed on stderr."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Query the receiver's database (`?` placeholders on either engine)."""
        if self.db_url:
            import psycopg

            with psycopg.connect(self.db_url) as pg:
                return [tuple(r) for r in pg.execute(sql.replace("?", "%s"), params).fetchall()]
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Faults:
    """What the proxy does to each new connection (decided with a seeded random generator).

    Each of the first `faulty` exchanges (request up, answer down) draws one fault at a
    random byte offset: a reset while the request goes up, a reset while the answer comes
    down, or a stall (the bytes stop; the client's deadline has to end it). The first
    `drop_answers` exchanges forward the request whole, then reset instead of forwarding
    the answer (the server has committed: a lost answer). Every chunk waits `latency_s`.
    """

    latency_s: float = 0.0
    reset_up: float = 0.0
    reset_down: float = 0.0
    stall: float = 0.0
    faulty: int = 0
    drop_answers: int = 0
    seed: int = 1


@dataclass
class ProxyCounts:
    """What the proxy did."""

    connections: int = 0
    requests: int = 0
    resets: int = 0
    stalls: int = 0
    dropped: int = 0
    log: list[str] = field(default_factory=list)


class Proxy:
    """A loopback TCP proxy in its own thread and event loop."""

    def __init__(self, target_port: int, faults: Faults) -> None:
        self.target_port = target_port
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.counts = ProxyCounts()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> Proxy:
        """Listen on an ephemeral loopback port."""
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(5)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close everything and end the thread."""

        async def _stop() -> None:
            assert self._server is not None
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _decide(self) -> tuple[str, int]:
        c = self.counts
        f = self.faults
        c.requests += 1
        if c.dropped < f.drop_answers:
            c.dropped += 1
            return "drop", 0
        if c.requests > f.faulty:
            return "none", 0
        r = self.rng.random()
        # Offsets within a request (headers and a small gzip body) or an answer (~150 bytes).
        if r < f.reset_up:
            return "reset_up", self.rng.randint(0, 600)
        if r < f.reset_up + f.reset_down:
            return "reset_down", self.rng.randint(0, 120)
        if r < f.reset_up + f.reset_down + f.stall:
            return "stall", self.rng.randint(0, 600)
        return "none", 0

    async def _client(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.counts.connections += 1
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(cwriter)
            self._tasks.discard(task)
            return
        done = asyncio.Event()
        # One exchange = the request bytes up, then the answer bytes down. A fault is drawn
        # for every exchange, so a kept-alive connection meets trouble too.
        now: dict[str, Any] = {"fault": "none", "offset": 0, "sent": 0, "answered": True}

        async def pump(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool
        ) -> None:
            try:
                while True:
                    chunk = await reader.read(1024)
                    if not chunk:
                        break
                    if self.faults.latency_s:
                        await asyncio.sleep(self.faults.latency_s)
                    if up and now["answered"]:
                        fault, offset = self._decide()
                        self.counts.log.append(f"{self.counts.requests}:{fault}@{offset}")
                        now.update(fault=fault, offset=offset, sent=0, answered=False)
                    if not up and not now["answered"]:
                        now.update(answered=True, sent=0)
                    fault, offset, sent = now["fault"], now["offset"], now["sent"]
                    if fault == "drop" and not up:
                        self.counts.resets += 1
                        break
                    mine = (fault == "reset_up" and up) or (fault == "reset_down" and not up)
                    if mine and sent + len(chunk) > offset:
                        writer.write(chunk[: max(0, offset - sent)])
                        self.counts.resets += 1
                        break
                    if fault == "stall" and sent + len(chunk) > offset:
                        self.counts.stalls += 1
                        writer.write(chunk[: max(0, offset - sent)])
                        await reader.read(-1)  # hold on until the peer gives up
                        break
                    writer.write(chunk)
                    await writer.drain()
                    now["sent"] = sent + len(chunk)
            except (ConnectionError, OSError):
                pass
            finally:
                done.set()

        tasks = [
            asyncio.create_task(pump(creader, swriter, True)),
            asyncio.create_task(pump(sreader, cwriter, False)),
        ]
        try:
            await done.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            _reset(cwriter)
            _reset(swriter)
            self._tasks.discard(task)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), as a cut cable or a crashed middlebox would."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    except OSError:
        pass


@dataclass
class Parts:
    """An in-process sender over a real database, hub and alerts."""

    writer: Writer
    store: Store
    hub: Hub
    alerts: Alerts
    sender: Sender
    sleeps: list[float]
    clock: list[float]

    def close(self) -> None:
        """Close the database handles."""
        self.store.close()
        self.writer.close()


def sync_config(url: str, token_file: Path, **kw: Any) -> SyncConfig:
    """A SyncConfig with test-friendly defaults."""
    values: dict[str, Any] = {
        "batch_max": 10,
        "interval_s": 0.05,
        "timeout_s": 5.0,
        "retry_after_max_s": 30.0,
        "backoff_max_s": 8.0,
    }
    values.update(kw)
    return SyncConfig(url=url, token_file=str(token_file), **values)


async def make_parts(
    folder: Path,
    cfg: SyncConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    tls: Any = None,
    terminal: str = "wb1",
) -> Parts:
    """A Writer, Store, Hub, Alerts and an opened Sender whose sleeps and clock are recorded."""
    db = str(folder / "agent.db")
    writer = Writer(db, terminal)
    store = Store(db)
    hub = Hub()
    alerts = Alerts(writer, hub, store)
    token, sig = load_token(cfg.token_file)
    sleeps: list[float] = []
    clock = [1000.0]

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)
        clock[0] += s

    sender = Sender(
        cfg,
        writer,
        db,
        hub,
        alerts,
        token=token,
        token_sig=sig,
        token_path=cfg.token_file,
        transport=transport,
        tls=tls,
        sleep=fake_sleep,
        clock=lambda: clock[0],
        rng=random.Random(7),
    )
    await sender.open()
    return Parts(writer, store, hub, alerts, sender, sleeps, clock)


async def append_notes(writer: Writer, n: int, start: int = 0) -> None:
    """Append `n` operator.note events."""
    for i in range(start, start + n):
        await writer.append("operator.note", {"text": f"note {i}", "operator": ""})


def fd_count(pid: int) -> int:
    """Open file descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    """Resident memory of a process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

"""The local API: newline-delimited JSON over a Unix socket (docs/sync.md, The local API)."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agent.daemon import operator
from agent.daemon.hub import Hub
from agent.domain import text_rules
from agent.errors import InvalidInput, Refused, Unavailable

log = logging.getLogger("tally.api")

MAX_LINE = 1 << 20
SUBSCRIBE_INTERVAL_S = 0.1  # at most ~10 state messages per topic per second
MAX_SUBSCRIPTIONS = 4  # per connection: one stream carries every topic already
BACKLOG = 1024  # pending connections (many TUIs and scripts may connect at once)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class StartupError(Unavailable):
    """The daemon cannot start; the message is one clear sentence."""


class CommandError(Refused):
    """An operator command or request was refused; the message is one clear sentence."""


class ApiServer:
    """Serves registered operations and the `subscribe` stream on a Unix socket."""

    def __init__(self, path: str, hub: Hub) -> None:
        self.path = path
        self.hub = hub
        self.ops: dict[str, Handler] = {}
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        # the operator signed in on this terminal ('' if none): the one acting when a request
        # names none (agent/daemon/services/operators.py sets it)
        self.signed_in: Callable[[], str] = lambda: ""
        self.register("ping", self._ping)

    def register(self, op: str, handler: Handler) -> None:
        """Add an operation; `handler(request)` returns the result or raises Refused (CommandError)."""
        if op in self.ops:
            raise ValueError(f"operation {op!r} registered twice")
        self.ops[op] = handler

    async def _ping(self, req: dict[str, Any]) -> Any:
        return {"pong": True, "pid": os.getpid()}

    async def start(self) -> None:
        """Bind the socket (replacing a stale one) with mode 0660 and group `tally` if present.

        Only a stale socket is ever removed: any other file at the path is a StartupError.
        """
        sock = Path(self.path)
        sock.parent.mkdir(parents=True, exist_ok=True)
        try:
            st = sock.lstat()
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISSOCK(st.st_mode):
                raise StartupError(
                    f"terminal.socket {self.path} is an existing file that is not a socket;"
                    " point terminal.socket at a free path (Tally never deletes it)"
                )
            if await _alive(self.path):
                raise StartupError(
                    f"another daemon is already serving {self.path}; "
                    "stop it or change terminal.socket"
                )
            sock.unlink()
        self._server = await asyncio.start_unix_server(
            self._client, path=self.path, limit=MAX_LINE, backlog=BACKLOG
        )
        os.chmod(self.path, 0o660)
        with contextlib.suppress(KeyError, PermissionError):
            os.chown(self.path, -1, grp.getgrnam("tally").gr_gid)

    async def close(self) -> None:
        """Stop accepting, end every client and remove the socket."""
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        lock = asyncio.Lock()
        streams: list[asyncio.Task[None]] = []
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await _send(
                        writer, lock, {"id": None, "ok": False, "error": "request line too long"}
                    )
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                req_id: Any = None
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError
                    req_id = req.get("id")
                    op = req.get("op")
                except RecursionError:
                    await _send(
                        writer,
                        lock,
                        _err(
                            None, f"the request nests too deep; keep it to {text_rules.MAX_DEPTH}"
                        ),
                    )
                    continue
                except ValueError:
                    await _send(writer, lock, _err(None, "the request is not a JSON object"))
                    continue
                problem = text_rules.request_problem(req)
                if problem is None and not _plain_id(req_id):
                    req_id, problem = None, "id must be a number or a short text"
                if problem:
                    await _send(writer, lock, _err(req_id, problem))
                    continue
                if op == "subscribe":
                    if len(streams) >= MAX_SUBSCRIPTIONS:
                        await _send(
                            writer,
                            lock,
                            _err(
                                req_id,
                                f"this connection already has {MAX_SUBSCRIPTIONS} subscriptions;"
                                " one stream carries every topic",
                            ),
                        )
                        continue
                    await _send(writer, lock, {"id": req_id, "ok": True, "result": "subscribed"})
                    streams.append(asyncio.create_task(self._stream(writer, lock)))
                    continue
                handler = self.ops.get(op) if isinstance(op, str) else None
                if handler is None:
                    known = ", ".join(sorted([*self.ops, "subscribe"]))
                    await _send(
                        writer, lock, _err(req_id, f"unknown op {op!r}; known ops: {known}")
                    )
                    continue
                who = req.get("operator")
                if not isinstance(who, str) or not who.strip():
                    who = self.signed_in()
                if who:
                    req["operator"] = who = who.strip()
                token = operator.CURRENT.set(who)
                try:
                    result = await handler(req)
                    reply = {"id": req_id, "ok": True, "result": result}
                except (Refused, InvalidInput) as exc:
                    reply = _err(req_id, str(exc))
                except Exception as exc:
                    log.exception("op %s failed", op)
                    reply = _err(req_id, f"the daemon failed to run {op!r} ({exc}); see its log")
                finally:
                    operator.CURRENT.reset(token)
                await _send(writer, lock, reply)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for s in streams:
                s.cancel()
            with contextlib.suppress(Exception):
                writer.close()
            self._clients.discard(task)

    async def _stream(self, writer: asyncio.StreamWriter, lock: asyncio.Lock) -> None:
        sub = self.hub.subscribe()
        try:
            while True:
                for topic, value in await sub.next():
                    await _send(writer, lock, {"topic": topic, "state": value})
                await asyncio.sleep(SUBSCRIBE_INTERVAL_S)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.hub.unsubscribe(sub)


def _err(req_id: Any, message: str) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": message}


def _plain_id(req_id: Any) -> bool:
    return req_id is None or (isinstance(req_id, int | str) and not isinstance(req_id, bool))


def _encode(msg: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), default=str)
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate somewhere: \u escapes are valid JSON
        return json.dumps(msg, separators=(",", ":"), default=str).encode("ascii") + b"\n"


async def _send(writer: asyncio.StreamWriter, lock: asyncio.Lock, msg: dict[str, Any]) -> None:
    data = _encode(msg)
    async with lock:
        writer.write(data)
        await writer.drain()


async def _alive(path: str) -> bool:
    try:
        _r, w = await asyncio.wait_for(asyncio.open_unix_connection(path), 1)
    except (OSError, TimeoutError):
        return False
    w.close()
    return True

"""Clients of the local API for the command line, the TUI and tests (no Textual here)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

from agent.errors import Refused, Unavailable


class DaemonUnavailable(Unavailable):
    """No daemon answers on the socket; the message says what to do."""


class RequestRefused(Refused):
    """The daemon answered ok=false; the message is its sentence."""


def split_weights(text: str) -> list[float | str]:
    """Bag weights typed as one text (spaces, commas, Chinese commas or semicolons between).

    Numbers become floats; anything else is passed on as typed so the daemon's refusal names it.
    """
    out: list[float | str] = []
    for item in re.split(r"[\s,，;；]+", text):
        if not item:
            continue
        try:
            out.append(float(item))
        except ValueError:
            out.append(item)
    return out


def _unavailable(path: str, exc: BaseException) -> DaemonUnavailable:
    return DaemonUnavailable(
        f"no Tally daemon answers on {path} ({exc.__class__.__name__}); "
        "start it with `tally run --config FILE` or `systemctl start tally`"
    )


def request(path: str, op: str, timeout: float = 10.0, **args: Any) -> Any:
    """Send one request and return its result; raise RequestRefused or DaemonUnavailable."""
    msg = {"id": 1, "op": op, **args}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(json.dumps(msg, ensure_ascii=False).encode("utf-8") + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("the daemon closed the connection")
                buf += chunk
    except (OSError, ConnectionError) as exc:
        raise _unavailable(path, exc) from None
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise RequestRefused(str(reply.get("error")))
    return reply.get("result")


class AsyncClient:
    """One connection: requests and, optionally, the subscribe stream."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._states: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Open the socket; raise DaemonUnavailable when nobody answers."""
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                self.path, limit=1 << 22
            )
        except OSError as exc:
            raise _unavailable(self.path, exc) from None
        self._pump = asyncio.create_task(self._read())

    async def close(self) -> None:
        """Close the connection."""
        if self._pump:
            self._pump.cancel()
        if self._writer:
            self._writer.close()

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                msg = json.loads(line)
                if "topic" in msg:
                    await self._states.put((msg["topic"], msg.get("state")))
                    continue
                fut = self._pending.pop(msg.get("id"), None)
                if fut and not fut.done():
                    fut.set_result(msg)
        except (ConnectionError, asyncio.CancelledError, ValueError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(_unavailable(self.path, ConnectionError("closed")))
            await self._states.put(None)

    async def request(self, op: str, **args: Any) -> Any:
        """Send one request and wait for its answer."""
        if self._writer is None:
            raise _unavailable(self.path, ConnectionError("not connected"))
        self._next_id += 1
        rid = self._next_id
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        data = json.dumps({"id": rid, "op": op, **args}, ensure_ascii=False) + "\n"
        try:
            self._writer.write(data.encode("utf-8"))
            await self._writer.drain()
        except OSError as exc:
            raise _unavailable(self.path, exc) from None
        reply = await fut
        if not reply.get("ok"):
            raise RequestRefused(str(reply.get("error")))
        return reply.get("result")

    async def states(self) -> AsyncIterator[tuple[str, Any]]:
        """Subscribe and yield (topic, state) until the connection ends."""
        await self.request("subscribe")
        while True:
            item = await self._states.get()
            if item is None:
                return
            yield item

"""The HTTP/1.1 transport of the daemon's clients: h11 over asyncio's own streams, no anyio."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator

import h11
import httpx

READ_SIZE = 65_536
# An idle connection is reused for this long. Servers close theirs after a few seconds of quiet
# (uvicorn, the receiver's server, after 5 s); reusing one as it closes would fail a request.
KEEPALIVE_S = 4.0

_Origin = tuple[str, str, int]


class _Conn:
    """One connection: its streams, h11's view of it, and since when it has been idle."""

    __slots__ = ("h11", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0

    def reusable(self, now: float) -> bool:
        """Whether an idle connection can carry the next request: the server has not closed it,
        sent anything unasked, or left it idle long enough to be closing it."""
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and now - self.idle_since < KEEPALIVE_S
        )

    def close(self) -> None:
        """Close it; nothing to await (the loop finishes the close)."""
        self.writer.close()


class LoopTransport(httpx.AsyncBaseTransport):
    """Requests over HTTP/1.1 connections opened with `asyncio.open_connection`, one kept idle
    per origin for the next request.

    httpx's own transport runs httpcore on anyio: 2.3 MiB of a daemon's memory for its asyncio
    backend and TLS streams (loaded at the first request), and a cancel scope and a timer for
    every read and write. Tally's clients make one request at a time to one server and follow no
    redirects, so this is all they need. `tls` is the context of an `https://` URL; without it
    only `http://` URLs can be used.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._idle: dict[_Origin, _Conn] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` and return the response with its body still to read."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"the URL {url} is neither http:// nor https://", request=request
            )
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        conn = self._take_idle(origin)
        if conn is None:
            conn = await self._connect(origin, timeouts.get("connect"), request)
        try:
            await _send(conn, request, timeouts.get("write"))
            head = await _head(conn, timeouts.get("read"), request)
        except BaseException:
            conn.close()
            raise
        return httpx.Response(
            status_code=head.status_code,
            headers=head.headers.raw_items(),
            stream=_Body(self, origin, conn, timeouts.get("read"), request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
        )

    async def aclose(self) -> None:
        """Close the idle connections; a response still being read closes its own."""
        self._closed = True
        idle, self._idle = list(self._idle.values()), {}
        for conn in idle:
            conn.close()

    def _take_idle(self, origin: _Origin) -> _Conn | None:
        conn = self._idle.pop(origin, None)
        if conn is not None and not conn.reusable(time.monotonic()):
            conn.close()
            return None
        return conn

    def release(self, origin: _Origin, conn: _Conn, complete: bool) -> None:
        """A response's body is done with: keep its connection for the next request if the
        exchange ended cleanly and both sides may go on, else close it."""
        state = conn.h11
        if complete and not self._closed and state.our_state is state.their_state is h11.DONE:
            state.start_next_cycle()
            conn.idle_since = time.monotonic()
            old = self._idle.pop(origin, None)
            if old is not None:
                old.close()
            self._idle[origin] = conn
        else:
            conn.close()

    async def _connect(self, origin: _Origin, timeout: float | None, req: httpx.Request) -> _Conn:
        scheme, host, port = origin
        tls = self._tls if scheme == "https" else None
        if scheme == "https" and tls is None:
            raise httpx.ConnectError(
                f"{req.url} is https:// but this client has no TLS context", request=req
            )
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls is not None else None
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(
                f"no connection to {host}:{port} within {timeout:g} s", request=req
            ) from exc
        except OSError as exc:  # ssl.SSLError included: the sender names it from the cause
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=req) from exc
        return _Conn(reader, writer)


async def _send(conn: _Conn, request: httpx.Request, timeout: float | None) -> None:
    """Write the request line, headers and body, and wait until the socket has taken them."""
    stream = request.stream
    try:
        head = h11.Request(
            method=request.method, target=request.url.raw_path, headers=request.headers.raw
        )
        conn.writer.write(conn.h11.send(head) or b"")
        if isinstance(stream, httpx.AsyncByteStream):
            async for chunk in stream:
                if chunk:
                    conn.writer.write(conn.h11.send(h11.Data(data=chunk)) or b"")
        conn.writer.write(conn.h11.send(h11.EndOfMessage()) or b"")
    except h11.LocalProtocolError as exc:
        raise httpx.LocalProtocolError(str(exc), request=request) from exc
    try:
        async with asyncio.timeout(timeout):
            await conn.writer.drain()
    except TimeoutError as exc:
        raise httpx.WriteTimeout(
            f"the request was not sent within {timeout:g} s", request=request
        ) from exc
    except OSError as exc:
        raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc


async def _event(conn: _Conn, timeout: float | None, request: httpx.Request) -> object:
    """h11's next event of the response, reading from the socket as long as it needs data."""
    while True:
        state = conn.h11.their_state  # h11 sets it to ERROR when it raises
        try:
            event = conn.h11.next_event()
        except h11.RemoteProtocolError as exc:
            if not conn.reader.at_eof():
                problem = f"the server's answer is not valid HTTP/1.1 ({exc})"
            elif state is h11.SEND_RESPONSE:
                problem = "the server closed the connection without an answer"
            else:
                problem = "the server closed the connection in the middle of its answer"
            raise httpx.RemoteProtocolError(problem, request=request) from exc
        if event is not h11.NEED_DATA:
            return event
        try:
            async with asyncio.timeout(timeout):
                data = await conn.reader.read(READ_SIZE)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no answer within {timeout:g} s", request=request) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        conn.h11.receive_data(data)  # b"" is the end of the stream: h11 judges it


async def _head(conn: _Conn, timeout: float | None, request: httpx.Request) -> h11.Response:
    """The response's status line and headers (informational answers skipped)."""
    while True:
        event = await _event(conn, timeout, request)
        if isinstance(event, h11.Response):
            return event
        if not isinstance(event, h11.InformationalResponse):
            raise httpx.RemoteProtocolError(
                "the server closed the connection without an answer", request=request
            )


class _Body(httpx.AsyncByteStream):
    """A response's body, read from its connection as the caller iterates."""

    def __init__(
        self,
        transport: LoopTransport,
        origin: _Origin,
        conn: _Conn,
        timeout: float | None,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._conn: _Conn | None = conn
        self._timeout = timeout
        self._request = request
        self._complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        while not self._complete:
            event = await _event(conn, self._timeout, self._request)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._complete = True
            else:
                raise httpx.RemoteProtocolError(
                    "the server closed the connection in the middle of its answer",
                    request=self._request,
                )

    async def aclose(self) -> None:
        """Hand the connection back (kept if the answer was read whole) once."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._transport.release(self._origin, conn, self._complete)

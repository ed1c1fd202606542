"""The daemon's HTTP transport (sync/transport.py) against servers on loopback that answer well,
badly, late or not at all: each request ends in an answer or in one of httpx's errors, and a
connection is reused only after a clean exchange."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from sync.transport import LoopTransport

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class Server:
    """A loopback server that reads each request's head and body and answers with `answer`;
    counts the connections it was opened."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.bodies: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.bodies.append(await reader.readexactly(length))
                await self.answer(reader, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def started(answer: Answer) -> tuple[Server, str, asyncio.Server]:
    server = Server(answer)
    srv = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/x", srv


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=LoopTransport(), timeout=httpx.Timeout(1.0)) as c:
        yield c


def write(data: bytes) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return answer


def write_and_close(data: bytes) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        writer.close()

    return answer


async def test_a_clean_exchange_keeps_its_connection_for_the_next_request(
    client: httpx.AsyncClient,
) -> None:
    server, url, srv = await started(write(OK))
    async with srv:
        first = await client.post(url, content=b'{"a": 1}')
        second = await client.get(url)
    assert (first.status_code, first.text, second.text) == (200, "ok", "ok")
    assert first.headers["content-type"] == "text/plain"
    assert server.bodies == [b'{"a": 1}', b""]
    assert server.connections == 1


async def test_a_connection_the_server_closed_is_not_reused(client: httpx.AsyncClient) -> None:
    server, url, srv = await started(write_and_close(OK))
    async with srv:
        first = await client.get(url)
        await asyncio.sleep(0.05)  # the close reaches the client's side
        second = await client.get(url)
    assert (first.text, second.text) == ("ok", "ok")
    assert server.connections == 2


async def test_a_server_that_says_close_gets_a_new_connection_next_time(
    client: httpx.AsyncClient,
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    server, url, srv = await started(write(answer))
    async with srv:
        for _ in range(2):
            assert (await client.get(url)).text == "ok"
    assert server.connections == 2


async def test_an_answer_cut_short_is_an_error_and_the_next_request_still_works(
    client: httpx.AsyncClient,
) -> None:
    answers = [
        write_and_close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"),
        write(OK),
    ]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answers.pop(0)(reader, writer)

    server, url, srv = await started(answer)
    async with srv:
        with pytest.raises(httpx.RemoteProtocolError, match="middle of its answer"):
            await client.get(url)
        assert (await client.get(url)).text == "ok"
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"hello\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"\x00\xff" * 40 + b"\r\n\r\n",
    ],
    ids=["not http", "bad length", "binary"],
)
async def test_a_server_that_answers_nonsense_gets_a_protocol_error(
    client: httpx.AsyncClient, reply: bytes
) -> None:
    _, url, srv = await started(write_and_close(reply))
    async with srv:
        with pytest.raises(httpx.RemoteProtocolError, match=r"not valid HTTP/1\.1"):
            await client.get(url)


async def test_a_server_that_closes_without_answering_is_an_error(
    client: httpx.AsyncClient,
) -> None:
    _, url, srv = await started(write_and_close(b""))
    async with srv:
        with pytest.raises(httpx.RemoteProtocolError, match="without an answer"):
            await client.get(url)


async def test_a_silent_server_is_a_read_timeout(client: httpx.AsyncClient) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    _, url, srv = await started(silent)
    async with srv:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url, timeout=httpx.Timeout(0.2))


async def test_a_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the connection is refused
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/x")


async def test_a_body_left_unread_does_not_leave_its_connection_for_the_next_request(
    client: httpx.AsyncClient,
) -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200_000
    server, url, srv = await started(write(big))
    async with srv:
        async with client.stream("GET", url) as resp:
            async for _ in resp.aiter_bytes():
                break
        assert len((await client.get(url)).content) == 200_000
    assert server.connections == 2


async def test_an_https_url_without_a_tls_context_is_refused_before_connecting(
    client: httpx.AsyncClient,
) -> None:
    with pytest.raises(httpx.ConnectError, match="no TLS context"):
        await client.get("https://127.0.0.1:9/x")

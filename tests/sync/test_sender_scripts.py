"""The sender against scripted HTTP answers (httpx.MockTransport): exact status sequences."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.domain.events import Event
from sync.sender.forwarder import AUTH_POLL_S, AUTH_RETRY_S, BACKOFF_BASE_S
from sync.sender.status import ACKED, LAST_ERROR
from tests.sync.helpers import Parts, append_notes, make_parts, sync_config, write_private

TOKEN = "tok-3141592653-scripted"
URL = "http://central.test"

Script = list[Any]  # each item: (status, headers, body) or an exception instance or a callable


class Server:
    """Answers requests from a script and records what it was sent."""

    def __init__(self, script: Script) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(gzip.decompress(request.content))
        self.requests.append(
            {
                "auth": request.headers["authorization"],
                "key": request.headers["idempotency-key"],
                "encoding": request.headers["content-encoding"],
                "seqs": [e["seq"] for e in body["events"]],
                "body": body,
            }
        )
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        if callable(item):
            item = await item(request, body)
        status, headers, content = item
        if isinstance(content, dict):
            content = json.dumps(content).encode()
        return httpx.Response(status, headers=headers, content=content)


def ack(n: int, rejected: list[dict[str, Any]] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A well-formed 200 answer."""
    body = {"acked_through": n, "rejected": rejected or []}
    return 200, {}, json.dumps(body).encode()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return write_private(tmp_path / "token", TOKEN + "\n")


@pytest.fixture
async def make(tmp_path: Path, token_file: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Parts] = []

    async def factory(script: Script, **cfg: Any) -> tuple[Parts, Server]:
        server = Server(script)
        parts = await make_parts(
            tmp_path,
            sync_config(URL, token_file, **cfg),
            transport=httpx.MockTransport(server.handle),
        )
        made.append(parts)
        return parts, server

    yield factory
    for p in made:
        await p.sender.close()
        p.close()


def acked(p: Parts) -> int:
    """The acknowledged seq as stored (what survives a restart)."""
    return int(p.store.get_state(ACKED, 0))


def alerts(p: Parts) -> dict[str, str]:
    return {a: v["detail"] for a, v in p.alerts.active.items()}


async def test_batches_carry_envelopes_key_token_and_advance_on_each_ack(make: Any) -> None:
    p, server = await make([ack(10), ack(20), ack(25)])
    await append_notes(p.writer, 25)
    assert await p.sender.step() == 0.0  # a full batch: send the next one at once
    assert await p.sender.step() == 0.0
    assert await p.sender.step() == 0.05  # a partial batch: wait for more
    assert await p.sender.step() == 0.05  # nothing left: idle
    epoch = p.writer.epoch
    assert [r["key"] for r in server.requests] == [
        f"wb1:{epoch}:1-10",
        f"wb1:{epoch}:11-20",
        f"wb1:{epoch}:21-25",
    ]
    assert {r["auth"] for r in server.requests} == {f"Bearer {TOKEN}"}
    assert {r["encoding"] for r in server.requests} == {"gzip"}
    first = server.requests[0]["body"]
    assert first["terminal"] == "wb1" and first["epoch"] == epoch
    stored = p.store.events_after(0, 10)
    assert [Event.from_dict(e) for e in first["events"]] == stored
    assert first["events"][0] == stored[0].to_dict()
    assert acked(p) == 25
    assert p.hub.get("sync")["backlog"] == 0
    assert p.hub.get("sync")["state"] == "idle"


async def test_an_idle_sender_publishes_a_change_of_state_not_every_look(make: Any) -> None:
    # with nothing new the sender reads nothing and wakes no subscriber; a new event is sent
    # at its next look
    p, server = await make([ack(2), ack(3)])
    await append_notes(p.writer, 2)
    assert await p.sender.step() == 0.05
    published: list[dict[str, Any]] = []
    p.hub.watchers.append(lambda topic, value: published.append(value) if topic == "sync" else None)
    for _ in range(5):
        assert await p.sender.step() == 0.05
    assert [v["state"] for v in published] == ["idle"]  # once, on the change from sending
    await append_notes(p.writer, 1, start=2)
    assert await p.sender.step() == 0.05
    assert len(server.requests) == 2 and acked(p) == 3
    assert published[-1]["acked_through"] == 3


async def test_429_and_503_honour_retry_after_capped_and_advance_nothing(make: Any) -> None:
    p, server = await make(
        [
            (429, {"Retry-After": "7"}, b'{"error": "slow down"}'),
            (503, {"Retry-After": "999"}, b""),
            (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, b""),  # in the past
            (429, {}, b""),
            ack(3),
        ],
        retry_after_max_s=30.0,
    )
    await append_notes(p.writer, 3)
    assert await p.sender.step() == 7.0
    assert acked(p) == 0
    assert p.store.get_state(LAST_ERROR) == (
        "the server answered 429 (slow down); retrying in 7.0 s"
    )
    assert await p.sender.step() == 30.0  # capped by retry_after_max_s
    assert await p.sender.step() == 0.0
    no_header = await p.sender.step()  # no Retry-After: jittered backoff
    assert 0 <= no_header <= BACKOFF_BASE_S
    assert acked(p) == 0
    assert await p.sender.step() == 0.05
    assert acked(p) == 3
    assert p.store.get_state(LAST_ERROR) is None
    assert [r["seqs"] for r in server.requests] == [[1, 2, 3]] * 5


async def test_5xx_timeouts_and_connection_errors_back_off_with_full_jitter(make: Any) -> None:
    async def too_slow(request: httpx.Request, body: Any) -> Any:
        await asyncio.sleep(5)
        return ack(2)

    p, server = await make(
        [
            (500, {}, b"boom"),
            (502, {}, b""),
            httpx.ConnectError("connection refused"),
            too_slow,
            (504, {}, b""),
            httpx.ReadError("connection reset by peer"),
            (500, {}, b""),
            ack(2),
            (500, {}, b""),
        ],
        backoff_max_s=3.0,
        timeout_s=2.0,  # only too_slow (5 s) times out, however busy the machine
    )
    await append_notes(p.writer, 2)
    delays = [await p.sender.step() for _ in range(7)]
    ceilings = [min(3.0, BACKOFF_BASE_S * 2**n) for n in range(7)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert len(set(delays)) == 7  # jittered, not a fixed ladder
    assert acked(p) == 0
    assert p.store.get_state(LAST_ERROR).startswith("the server answered 500")
    assert await p.sender.step() == 0.05
    assert acked(p) == 2
    await append_notes(p.writer, 1)
    first_again = await p.sender.step()
    assert 0 <= first_again <= BACKOFF_BASE_S  # the streak ended: back to the first step
    assert acked(p) == 2
    assert len(server.requests) == 9
    assert alerts(p) == {}  # transient trouble is not an operator alert


async def test_timeout_message_names_the_deadline(make: Any) -> None:
    async def too_slow(request: httpx.Request, body: Any) -> Any:
        await asyncio.sleep(5)
        return ack(1)

    p, _ = await make([too_slow], timeout_s=0.2)
    await append_notes(p.writer, 1)
    await p.sender.step()
    assert p.store.get_state(LAST_ERROR).startswith(
        "no answer within sync.timeout_s = 0.2 s; retrying in"
    )
    assert acked(p) == 0


async def test_401_stops_sending_until_the_token_file_changes(make: Any, token_file: Path) -> None:
    p, server = await make([(401, {}, b'{"error": "unknown token"}'), ack(4)])
    await append_notes(p.writer, 4)
    assert await p.sender.step() == AUTH_POLL_S
    assert p.sender.state == "auth_failed"
    assert alerts(p) == {
        "sync_auth": "the server refused the token with 401 (unknown token); check"
        " sync.token_file; sending stops until the token file changes (or 5 min pass)"
    }
    for _ in range(50):  # a minute of polling: no request at all
        p.clock[0] += AUTH_POLL_S
        assert await p.sender.step() == AUTH_POLL_S
    assert len(server.requests) == 1
    write_private(token_file, "tok-new-2718281828\n")
    assert await p.sender.step() == 0.05
    assert [r["auth"] for r in server.requests] == [
        f"Bearer {TOKEN}",
        "Bearer tok-new-2718281828",
    ]
    assert acked(p) == 4
    assert alerts(p) == {}


async def test_a_status_read_while_the_error_is_stored_never_pairs_new_state_and_old_error(
    make: Any,
) -> None:
    # `tally sync status` may ask while the writer is storing the error (seen under load: the
    # state said auth_failed and last_error was still empty)
    p, _ = await make([(500, {}, b""), (401, {}, b'{"error": "unknown token"}')])
    await append_notes(p.writer, 1)
    seen: list[tuple[str, str | None]] = []
    store_error = p.sender.writer.run

    async def watching(fn: Any) -> Any:
        status = p.sender.status()
        seen.append((status["state"], status["last_error"]))
        return await store_error(fn)

    p.sender.writer.run = watching
    await p.sender.step()
    p.clock[0] += 60
    await p.sender.step()
    assert p.sender.state == "auth_failed"
    # while each error is stored, a reader sees the state and error from before the answer
    assert [state for state, _ in seen] == ["sending", "sending"]
    assert seen[0][1] is None
    assert seen[1][1] is not None and seen[1][1].startswith("the server answered 500")


async def test_403_retries_slowly_when_the_token_file_stays_the_same(make: Any) -> None:
    p, server = await make([(403, {}, b""), (403, {}, b""), ack(1)])
    await append_notes(p.writer, 1)
    await p.sender.step()
    p.clock[0] += AUTH_RETRY_S - 1
    assert await p.sender.step() == AUTH_POLL_S
    assert len(server.requests) == 1
    p.clock[0] += 1
    await p.sender.step()
    assert len(server.requests) == 2
    assert acked(p) == 0
    p.clock[0] += AUTH_RETRY_S
    await p.sender.step()
    assert acked(p) == 1


async def test_a_rejected_event_is_dead_lettered_and_does_not_block_the_rest(make: Any) -> None:
    p, server = await make(
        [ack(10, [{"seq": 4, "error": "data.text is too long"}]), ack(16)], batch_max=10
    )
    await append_notes(p.writer, 15)
    assert await p.sender.step() == 0.0
    assert await p.sender.step() == 0.05
    assert acked(p) == 16
    dead = p.store.query("SELECT seq, error FROM dead_letters")
    assert dead == [(4, "data.text is too long")]
    assert alerts(p) == {
        "sync_rejected": "the server rejected 1 events; they are kept as dead letters"
        " (see `tally sync status`)"
    }
    assert p.hub.get("sync")["dead_letters"] == 1
    # seq 16 is the sync_rejected alert itself, synced like any event
    assert [r["seqs"] for r in server.requests] == [list(range(1, 11)), list(range(11, 17))]
    assert server.requests[1]["body"]["events"][-1]["kind"] == "alert.raised"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"rejected": []}',
        b'{"acked_through": "10"}',
        b'{"acked_through": -1}',
        b'{"acked_through": true}',
        b'{"acked_through": 10, "rejected": {}}',
        b'{"acked_through": 10, "rejected": [{"seq": 0, "error": "x"}]}',
        b'{"acked_through": 10, "rejected": ["4"]}',
    ],
)
async def test_a_malformed_200_body_advances_nothing(make: Any, body: bytes) -> None:
    p, _ = await make([(200, {}, body)])
    await append_notes(p.writer, 10)
    delay = await p.sender.step()
    assert 0 <= delay <= BACKOFF_BASE_S
    assert acked(p) == 0
    assert p.store.query("SELECT count(*) FROM dead_letters") == [(0,)]
    assert list(alerts(p)) == ["sync_protocol"]
    assert "nothing was marked delivered" in alerts(p)["sync_protocol"]


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (415, "the server answered 415 (the body must be gzip-compressed); this is a protocol"),
        (400, "the server answered 400 (events must be a list); this is a protocol"),
        (404, "the server answered 404 (no such path); this is a protocol"),
    ],
)
async def test_other_4xx_alert_and_back_off(make: Any, status: int, said: str) -> None:
    texts = {
        415: "the body must be gzip-compressed",
        400: "events must be a list",
        404: "no such path",
    }
    p, _ = await make([(status, {}, {"error": texts[status]}), ack(5)])
    await append_notes(p.writer, 5)
    delay = await p.sender.step()
    assert 0 <= delay <= BACKOFF_BASE_S
    assert acked(p) == 0
    assert alerts(p) == {"sync_protocol": said + " problem"}
    await p.sender.step()
    assert acked(p) == 5
    assert alerts(p) == {}


async def test_413_halves_the_batch(make: Any) -> None:
    p, server = await make([(413, {}, b""), ack(5), ack(10)], batch_max=10)
    await append_notes(p.writer, 10)
    assert await p.sender.step() == 0.0
    await p.sender.step()
    await p.sender.step()
    assert [r["seqs"] for r in server.requests] == [
        list(range(1, 11)),
        list(range(1, 6)),
        list(range(6, 11)),
    ]
    assert acked(p) == 10


async def test_an_answer_acknowledging_nothing_backs_off(make: Any) -> None:
    p, server = await make([ack(0), ack(1000)])
    await append_notes(p.writer, 3)
    assert 0 <= await p.sender.step() <= BACKOFF_BASE_S
    assert acked(p) == 0
    assert alerts(p) == {
        "sync_protocol": "the server acknowledged nothing of seq 1-3 (acked_through 0)"
    }
    await p.sender.step()
    assert server.requests[1]["seqs"] == [1, 2, 3, 4]  # 4: the sync_protocol alert
    assert acked(p) == 4  # the server said 1000: never beyond what was sent


async def test_a_server_that_lost_data_gets_it_again(make: Any) -> None:
    p, server = await make([ack(10), ack(4), ack(10)], batch_max=10)
    await append_notes(p.writer, 10)
    await p.sender.step()
    assert acked(p) == 10
    await append_notes(p.writer, 1)  # seq 11
    assert await p.sender.step() == 0.0
    assert acked(p) == 4
    await p.sender.step()
    assert [r["seqs"] for r in server.requests] == [
        list(range(1, 11)),
        [11],
        list(range(5, 12)),
    ]
    assert acked(p) == 10  # the server said 10: seq 11 is still to be acknowledged


async def test_a_server_echoing_the_token_does_not_get_it_stored(make: Any) -> None:
    p, _ = await make([(400, {}, {"error": f"bad token {TOKEN}"})])
    await append_notes(p.writer, 1)
    await p.sender.step()
    assert p.store.get_state(LAST_ERROR).startswith("the server answered 400 (bad token [token])")
    texts = [json.dumps(e.data) for e in p.store.iter_events()]
    assert all(TOKEN not in t for t in texts)
    assert any("[token]" in t for t in texts)  # the alert event is there, redacted


async def test_a_long_outage_becomes_an_alert_and_ends_with_the_first_ack(make: Any) -> None:
    p, _ = await make([(503, {}, b"")] * 4 + [ack(2)], backoff_max_s=1.0)
    await append_notes(p.writer, 1)
    await p.sender.step()
    p.clock[0] += 200
    await p.sender.step()
    assert alerts(p) == {}  # a blip is not worth an operator's attention
    p.clock[0] += 100
    await p.sender.step()
    assert alerts(p) == {
        "sync_unreachable": "nothing acknowledged by the server for over 5 min; events are"
        " kept and sent once it answers (see `tally sync status`)"
    }
    p.clock[0] += 100
    await p.sender.step()
    await p.sender.step()
    assert acked(p) == 2  # seq 2 is the alert itself
    assert alerts(p) == {}

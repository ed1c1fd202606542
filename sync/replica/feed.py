"""The read-only pull feed (docs/replication.md): long-poll `POST /v1/pull` over whatever a node
holds of the plant timeline, behind a bearer token. The daemon serves it with `[feed]`, and the
reference receiver serves the same endpoint over everything it stores."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.domain.events import format_at
from sync.http_body import read_capped
from sync.protocol import BodyTooLarge, gunzip_capped, gzip_bytes
from sync.replica.notifier import Notifier
from sync.replica.wire import (
    PULL_PATH,
    REQUEST_MAX_BYTES,
    HeldRow,
    PullError,
    PullRequest,
    StreamMark,
    encode_answer,
    envelope,
    parse_request,
)
from sync.tokens import TokenTable

log = logging.getLogger("tally.feed")

MAX_WAITERS = 64  # long-polls held at once; more get 503 and Retry-After
GZIP_FROM = 1024  # smaller answers are sent as they are


class Holder(Protocol):
    """What a node holds of the plant timeline (read from any thread)."""

    def marks(self) -> list[StreamMark]:
        """Every stream held, with its lowest and highest seq."""

    def rows_after(self, terminal: str, epoch: str, after: int, limit: int) -> list[HeldRow]:
        """Up to `limit` events of a stream after seq `after`, in seq order."""


def collect(holder: Holder, req: PullRequest, now: str) -> tuple[bytes, int]:
    """The answer to a request right now: (body, number of events in it).

    Streams behind the reader share the event cap; each stream's run stops at a hole (seqs
    the node no longer holds) and its mark `low` then says where the held run starts again.
    """
    marks = holder.marks()
    pending = []
    for m in marks:
        after = max(req.cursors.get((m.terminal, m.epoch), 0), m.low - 1)
        if m.high > after:
            pending.append((m, after))
    share = max(1, req.max_events // max(1, len(pending)))
    envelopes: list[str] = []
    size = 0
    lows = {(m.terminal, m.epoch): m.low for m in marks}
    for m, after in pending:
        if len(envelopes) >= req.max_events or size >= req.max_bytes:
            break
        rows = holder.rows_after(m.terminal, m.epoch, after, min(share, req.max_events))
        expect = after + 1
        if rows and rows[0][2] > expect:
            lows[(m.terminal, m.epoch)] = rows[0][2]
            expect = rows[0][2]
        for row in rows:
            if row[2] != expect or (envelopes and size >= req.max_bytes):
                break
            text = envelope(row)
            envelopes.append(text)
            size += len(text)
            expect += 1
    shown = [StreamMark(m.terminal, m.epoch, lows[(m.terminal, m.epoch)], m.high) for m in marks]
    return encode_answer(envelopes, shown, now), len(envelopes)


Authorize = Callable[[Request], "str | Response"]


def bearer(tokens: TokenTable) -> Authorize:
    """An authorizer: the reader named by the request's bearer token, or the 401 answer."""

    def check(request: Request) -> str | Response:
        problem = tokens.refresh()
        if problem:
            log.warning("%s", problem)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("send a reader's token as `Authorization: Bearer TOKEN`")
        reader = tokens.terminal_for(token.strip(), "read")
        if reader is None:
            return _unauthorized("the token is not known to this feed; check the tokens file")
        return reader

    return check


def _unauthorized(message: str) -> Response:
    return JSONResponse(
        {"error": message}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="tally"'}
    )


def pull_endpoint(
    holder: Holder, notifier: Notifier, authorize: Authorize
) -> Callable[[Request], Any]:
    """The `POST /v1/pull` handler over `holder`."""
    waiting = 0

    async def pull(request: Request) -> Response:
        nonlocal waiting
        who = authorize(request)
        if isinstance(who, Response):
            return who
        try:
            async with asyncio.timeout(30):
                raw = await read_capped(request, REQUEST_MAX_BYTES)
            if request.headers.get("content-encoding", "").strip().lower() == "gzip":
                raw = gunzip_capped(raw, REQUEST_MAX_BYTES)
            req = parse_request(raw)
        except TimeoutError:
            return JSONResponse({"error": "the request body did not arrive"}, status_code=408)
        except BodyTooLarge:
            return JSONResponse(
                {"error": f"the request is larger than {REQUEST_MAX_BYTES} bytes"}, status_code=413
            )
        except (PullError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if req.wait_s > 0 and waiting >= MAX_WAITERS:
            return JSONResponse(
                {"error": "too many readers are waiting; retry shortly"},
                status_code=503,
                headers={"Retry-After": "2"},
            )
        deadline = time.monotonic() + req.wait_s
        waiting += 1
        try:
            while True:
                version = notifier.version
                body, n = await run_in_threadpool(
                    collect, holder, req, format_at(datetime.now(UTC))
                )
                left = deadline - time.monotonic()
                if n or left <= 0 or notifier.closed or await request.is_disconnected():
                    break
                await notifier.wait(version, min(left, 1.0))
        finally:
            waiting -= 1
        headers = {"Cache-Control": "no-store"}
        if len(body) >= GZIP_FROM and "gzip" in request.headers.get("accept-encoding", ""):
            body = await run_in_threadpool(gzip_bytes, body)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type="application/json", headers=headers)

    return pull


def create_app(holder: Holder, notifier: Notifier, tokens: TokenTable) -> Starlette:
    """The feed's ASGI app: `POST /v1/pull` only."""
    return Starlette(
        routes=[Route(PULL_PATH, pull_endpoint(holder, notifier, bearer(tokens)), methods=["POST"])]
    )

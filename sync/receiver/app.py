"""The reference central receiver: a Starlette app on uvicorn that stores events exactly once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import re
import socket
import sqlite3
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent import __version__
from agent.config import KpiConfig
from agent.domain import kpis, text_rules
from agent.domain.events import format_at, parse_at
from sync.http_body import read_capped
from sync.protocol import (
    EVENTS_PATH,
    HEALTH_PATH,
    KEY,
    KPI_PATH,
    BodyTooLarge,
    Rejection,
    Row,
    gunzip_capped,
    idempotency_key,
)
from sync.receiver import web
from sync.receiver.engine import ReceiverDb, StoreUnavailable
from sync.receiver.users import UserTable
from sync.replica.feed import pull_endpoint
from sync.replica.notifier import Notifier
from sync.replica.wire import PULL_PATH, HeldRow, StreamMark
from sync.tokens import TERMINAL, TokenTable

log = logging.getLogger("tally.receiver")

MAX_BODY_MB = 64
EPOCH = re.compile(r"[A-Za-z0-9_-]{1,64}")
KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
MAX_SEQ = 2**63 - 1
DISK_RETRY_S = 30
BODY_TIMEOUT_S = 60.0  # to receive a whole request body
HEADER_TIMEOUT_S = 10.0  # to receive a request's line and headers
KEEP_ALIVE_S = 5  # an idle connection between requests
MAX_HEADER_BYTES = 64 << 10  # request line and headers
KPI_WORKERS = 2  # KPI reports run on their own threads, never on the ingest pool
WINDOW_LOOKBACK = timedelta(days=1)  # a window ticket served today may have been issued yesterday


class BatchError(Exception):
    """The whole request is refused: an HTTP status and one sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Batch:
    """A validated request body: the stream, the storable rows and the refused events."""

    terminal: str
    epoch: str
    rows: tuple[Row, ...]
    rejected: tuple[Rejection, ...]
    first: int | None
    last: int | None


def _whole(value: Any, lo: int, hi: int) -> int | None:
    """`value` when it is an int (not a bool) within [lo, hi], else None."""
    if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
        return value
    return None


def check_event(ev: dict[str, Any], terminal: str, epoch: str, seq: int) -> Row | str:
    """The storable row of one envelope, or the sentence saying what is wrong with it."""
    if ev.get("terminal") != terminal or ev.get("epoch") != epoch:
        return "terminal and epoch must equal the batch's"
    if ev.get("id") != f"{terminal}:{epoch}:{seq}":
        return "id must be terminal:epoch:seq"
    kind = ev.get("kind")
    if not isinstance(kind, str) or len(kind) > 64 or not KIND.fullmatch(kind):
        return "kind must be a dotted lower-case name such as visit.weighed"
    at = ev.get("at")
    if not isinstance(at, str) or not AT.fullmatch(at):
        return "at must be UTC ISO 8601 with milliseconds and Z"
    try:
        when = parse_at(at)
    except ValueError:
        return "at is not a real date and time"
    problem = text_rules.at_problem(when)
    if problem:
        return problem
    mono_ns = _whole(ev.get("mono_ns"), 0, MAX_SEQ)
    if mono_ns is None:
        return "mono_ns must be a whole number of nanoseconds"
    boot = ev.get("boot")
    if not isinstance(boot, str) or not 0 < len(boot) <= 64:
        return "boot must be the kernel boot id"
    if text_rules.text_problem(boot, "boot", text_rules.Field(64)):
        return "boot must be the kernel boot id"
    data = ev.get("data")
    if not isinstance(data, dict):
        return "data must be a JSON object"
    problem = text_rules.data_problem(data)
    if problem:
        return problem
    return (
        seq,
        kind,
        at,
        mono_ns,
        boot,
        json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False),
    )


def parse_batch(body: Any, token_terminal: str) -> Batch:
    """Validate a decoded body for the terminal the token belongs to.

    Raises BatchError 400 for a body that is not a batch and 403 when the batch is another
    terminal's. A malformed event that has a seq is rejected alone; the others are kept.
    """
    if not isinstance(body, dict):
        raise BatchError(400, "the body must be a JSON object with terminal, epoch and events")
    terminal, epoch, events = body.get("terminal"), body.get("epoch"), body.get("events")
    if not isinstance(terminal, str) or not TERMINAL.fullmatch(terminal):
        raise BatchError(400, "terminal must be 1 to 32 characters of a-z, 0-9 and '-'")
    if not isinstance(epoch, str) or not EPOCH.fullmatch(epoch):
        raise BatchError(400, "epoch must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")
    if not isinstance(events, list):
        raise BatchError(400, "events must be a list of event envelopes")
    if terminal != token_terminal:
        raise BatchError(403, f"this token is not valid for terminal {terminal!r}")
    rows: list[Row] = []
    rejected: list[Rejection] = []
    seqs: list[int] = []
    for i, ev in enumerate(events):
        seq = _whole(ev.get("seq"), 1, MAX_SEQ) if isinstance(ev, dict) else None
        if seq is None or not isinstance(ev, dict):
            raise BatchError(400, f"events[{i}] has no seq (a whole number from 1)")
        seqs.append(seq)
        checked = check_event(ev, terminal, epoch, seq)
        if isinstance(checked, str):
            rejected.append(Rejection(seq, checked))
        else:
            rows.append(checked)
    return Batch(
        terminal,
        epoch,
        tuple(rows),
        tuple(rejected),
        min(seqs) if seqs else None,
        max(seqs) if seqs else None,
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _unauthorized(message: str) -> JSONResponse:
    return _error(401, message, {"WWW-Authenticate": 'Bearer realm="tally"'})


def decode_batch(raw: bytes, max_body: int, terminal: str) -> Batch:
    """Gunzip, parse and validate a request body (CPU-bound: run it off the event loop).

    Raises BodyTooLarge past `max_body` and BatchError (400/403) for a body that is not a batch.
    """
    try:
        body = json.loads(gunzip_capped(raw, max_body))
    except RecursionError:
        raise BatchError(
            400, f"the body nests too deep; an event's data nests at most {text_rules.MAX_DEPTH}"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchError(400, str(exc) if "gzip" in str(exc) else "the body is not JSON") from None
    return parse_batch(body, terminal)


def _bearer(request: Request, tokens: TokenTable) -> str | JSONResponse:
    """The terminal whose token the request carries, or the 401 answer."""
    problem = tokens.refresh()
    if problem:
        log.warning("%s", problem)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("send the terminal's token as `Authorization: Bearer TOKEN`")
    terminal = tokens.terminal_of(token.strip())
    if terminal is None:
        if tokens.reader_of(token.strip()) is not None:
            return _error(403, "this token may only read; it cannot post events")
        return _unauthorized("the token is not known to this server; check the token file")
    return terminal


def _version_of(store: ReceiverDb) -> int:
    return store.version


# The terminals whose streams the current pull request may read (its token's plant), set by the
# authorizer in the request's task and seen by the feed's worker thread (contexts are copied).
_READABLE: ContextVar[frozenset[str]] = ContextVar("readable", default=frozenset())


class _Held:
    """The pull feed's view of the receiver's store: the streams of the reader's plant."""

    def __init__(self, store: ReceiverDb) -> None:
        self.store = store

    def marks(self) -> list[StreamMark]:
        readable = _READABLE.get()
        return [StreamMark(*m) for m in self.store.marks() if m[0] in readable]

    def rows_after(self, terminal: str, epoch: str, after: int, limit: int) -> list[HeldRow]:
        if terminal not in _READABLE.get():
            return []
        return self.store.rows_after(terminal, epoch, after, limit)


def create_app(
    store: ReceiverDb,
    tokens: TokenTable,
    *,
    max_body: int = MAX_BODY_MB << 20,
    timezone: str = "Asia/Shanghai",
    kpi: KpiConfig | None = None,
    users: UserTable | None = None,
    ledger_file: web.LedgerFile | None = None,
) -> Starlette:
    """The ASGI app: POST /api/v1/events, GET /api/v1/kpi, GET /api/v1/health and the pull
    feed POST /v1/pull over every stream stored (any terminal's token may read)."""
    kpi_cfg = kpi or KpiConfig()
    notifier = Notifier()

    def reader(request: Request) -> str | Response:
        """A terminal's token with the read scope reads its own plant's streams."""
        problem = tokens.refresh()
        if problem:
            log.warning("%s", problem)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("send the terminal's token as `Authorization: Bearer TOKEN`")
        terminal = tokens.terminal_for(token.strip(), "read")
        if terminal is None:
            return _unauthorized(
                "the token is not known to this server or may not read; check the token file"
            )
        _READABLE.set(frozenset(tokens.plants().get(tokens.plant_of(terminal), ())))
        return terminal

    kpi_pool = concurrent.futures.ThreadPoolExecutor(KPI_WORKERS, thread_name_prefix="tally-kpi")
    # (day, zone) → (store version, report): callers of the same day share one computation,
    # and it is redone only after new events were stored.
    kpi_cache: dict[tuple[date, str, bool], tuple[int, asyncio.Future[dict[str, Any]]]] = {}

    async def post_events(request: Request) -> JSONResponse:
        terminal = _bearer(request, tokens)
        if isinstance(terminal, JSONResponse):
            return terminal
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding != "gzip":
            return _error(415, "the body must be gzip-compressed (Content-Encoding: gzip)")
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                raw = await read_capped(request, max_body)
            batch = await run_in_threadpool(decode_batch, raw, max_body, terminal)
        except TimeoutError:
            return _error(408, f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s; resend it")
        except BodyTooLarge:
            return _error(413, f"the body is larger than {max_body} bytes; send smaller batches")
        except BatchError as exc:
            return _error(exc.status, str(exc))
        expected = ""
        if batch.first is not None and batch.last is not None:
            expected = idempotency_key(batch.terminal, batch.epoch, batch.first, batch.last)
        key = request.headers.get("idempotency-key", "").strip()
        if key and (not KEY.fullmatch(key) or key != expected):
            return _error(400, f"Idempotency-Key must be {expected or 'terminal:epoch:first-last'}")
        try:
            done = await run_in_threadpool(
                store.ingest,
                batch.terminal,
                batch.epoch,
                batch.rows,
                batch.rejected,
                key or expected,
            )
        except (sqlite3.OperationalError, StoreUnavailable) as exc:
            log.error("cannot store a batch of %s: %s", batch.terminal, exc)
            return _error(
                503,
                "the server cannot store events right now; retry later",
                {"Retry-After": str(DISK_RETRY_S)},
            )
        if done.stored:
            notifier.bump()
        return JSONResponse(
            {
                "acked_through": done.acked_through,
                "rejected": [
                    {"seq": r.seq, "error": r.error} for r in (*batch.rejected, *done.conflicts)
                ],
            }
        )

    async def get_kpi(request: Request) -> JSONResponse:
        tokens.refresh()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("send the terminal's token as `Authorization: Bearer TOKEN`")
        owner = tokens.reader_of(token.strip())
        if owner is None:
            return _unauthorized("the token is not known to this server; check the token file")
        plant = "" if owner.startswith("@") else tokens.plant_of(owner)
        if plant:
            return _error(
                403,
                f"this token reads only the plant {plant!r}; ask /api/v1/report?day=YYYY-MM-DD",
            )
        text = request.query_params.get("day", "")
        month_text = request.query_params.get("month")
        try:
            day = date.fromisoformat(text if month_text is None else f"{month_text}-01")
        except ValueError:
            return _error(400, "pass the day as ?day=YYYY-MM-DD or the month as ?month=YYYY-MM")
        if not text_rules.FIRST_YEAR <= day.year <= text_rules.LAST_YEAR:
            return _error(
                400,
                f"day must be between the years {text_rules.FIRST_YEAR} and {text_rules.LAST_YEAR}",
            )
        zone_name = request.query_params.get("timezone", timezone)
        try:
            tz = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            return _error(400, f"timezone {zone_name!r} is not a known IANA zone")
        last = day
        if month_text is not None:
            last = (day + timedelta(days=31)).replace(day=1) - timedelta(days=1)
        # From the day before: a wait that began then may cross its target on the first day.
        start = datetime.combine(day - timedelta(days=1), time(), tz)
        end = datetime.combine(last + timedelta(days=1), time(), tz)

        def report() -> dict[str, Any]:
            events = store.day_events(
                format_at(start),
                format_at(end),
                format_at(start - WINDOW_LOOKBACK),
                plan_days=(day.isoformat(), last.isoformat()),
            )
            now = datetime.now(UTC)
            if month_text is not None:
                return kpis.compute_month(events, day.year, day.month, tz, kpi_cfg, as_of=now)
            return kpis.compute(events, day, tz, kpi_cfg, as_of=now)

        key = (day, zone_name, month_text is not None)
        # On PostgreSQL the version is a query: never on the event loop.
        version = await run_in_threadpool(_version_of, store)
        cached = kpi_cache.get(key)
        if (
            cached is None
            or cached[0] != version
            or (cached[1].done() and cached[1].exception() is not None)
        ):
            if len(kpi_cache) > 64:
                kpi_cache.clear()
            future = asyncio.get_running_loop().run_in_executor(kpi_pool, report)
            cached = kpi_cache[key] = (version, future)
        return JSONResponse(await asyncio.shield(cached[1]))

    async def get_health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "version": __version__})

    app = Starlette(
        routes=[
            Route(EVENTS_PATH, post_events, methods=["POST"]),
            Route(KPI_PATH, get_kpi, methods=["GET"]),
            Route(HEALTH_PATH, get_health, methods=["GET"]),
            Route(PULL_PATH, pull_endpoint(_Held(store), notifier, reader), methods=["POST"]),
        ]
    )
    web.mount(
        app, store, tokens, timezone=timezone, kpi=kpi_cfg, users=users, ledger_file=ledger_file
    )
    return app


def parse_listen(text: str) -> tuple[str, int]:
    """Split `HOST:PORT` (or `[V6]:PORT`); raise ValueError with a sentence."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen must be HOST:PORT, for example 127.0.0.1:8400, not {text!r}")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The server's certificate and key, and optionally a CA that client certificates need."""

    cert: str
    key: str
    client_ca: str = ""


async def serve(
    app: Starlette,
    host: str,
    port: int,
    *,
    tls: TlsFiles | None = None,
    on_ready: Callable[[str], None] = print,
    sock: socket.socket | None = None,
) -> None:
    """Serve `app` until SIGINT/SIGTERM; call `on_ready(url)` once the socket accepts.

    With `sock` (bound and listening, shared by `--workers` processes) it serves on that socket
    instead of binding `host:port`.
    """
    import ssl

    import uvicorn

    kwargs: dict[str, Any] = {}
    if tls is not None:
        kwargs = {"ssl_certfile": tls.cert, "ssl_keyfile": tls.key}
        if tls.client_ca:
            kwargs |= {"ssl_ca_certs": tls.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_head_timeout_protocol(),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        **kwargs,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
    while not server.started:
        if task.done():
            await task
            raise OSError(f"the receiver could not listen on {host}:{port}")
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    on_ready(f"{'https' if tls else 'http'}://{shown}:{bound}")
    await task


def _head_timeout_protocol() -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol that closes a connection whose request head is not complete
    within HEADER_TIMEOUT_S (uvicorn itself bounds only idle keep-alive connections)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutH11(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._cancel_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

    return HeadTimeoutH11

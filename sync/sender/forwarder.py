"""The sync sender: forwards committed events to the central server in acknowledged batches."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import sqlite3
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from agent.config import ConfigError, StorageConfig, SyncConfig
from agent.daemon.alerts import Alerts
from agent.daemon.hub import Hub
from agent.daemon.store import Store, Writer, delete_acknowledged, set_state
from agent.domain.events import format_at
from drivers.ticks import sleep_on_grid
from sync import protocol
from sync.sender.status import ACKED, LAST_ACK_AT, LAST_ERROR, read_status
from sync.tls import client_context
from sync.tokens import TokenFileError, expand, parse_token, read_private, signature
from sync.transport import LoopTransport

if TYPE_CHECKING:
    from agent.daemon.runtime import Context, Service

log = logging.getLogger("tally.sync")

BACKOFF_BASE_S = 0.5
AUTH_RETRY_S = 300.0  # a refused token is retried this rarely, or as soon as its file changes
AUTH_POLL_S = 1.0
PRUNE_EVERY_S = 3600.0
PRUNE_CHUNK = 5000
ERROR_TEXT_MAX = 200
ANSWER_MAX = 1 << 20  # a longer answer is not one this protocol produces

ALERT_AUTH = "sync_auth"
ALERT_PROTOCOL = "sync_protocol"
ALERT_REJECTED = "sync_rejected"
ALERT_TLS = "sync_tls"
ALERT_GAP = "sync_gap"
ALERT_UNREACHABLE = "sync_unreachable"
UNREACHABLE_ALERT_S = 300.0  # failing this long (not a blip) becomes an operator alert


class _Secret:
    """Holds the token so that no repr, log line or traceback can show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<token>"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an HTTP answer means for the sender (pure; see `judge`)."""

    action: str  # ack | wait | backoff | auth | protocol | shrink
    message: str
    answer: protocol.Answer | None = None
    retry_after_s: float | None = None


def retry_after(value: str | None, now: datetime, cap: float) -> float | None:
    """Seconds a `Retry-After` header asks for (delta or HTTP date), capped; None if absent."""
    if value is None:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), cap)


def _server_text(body: bytes) -> str:
    """The server's `error` sentence, or the start of its body."""
    import json

    try:
        obj = json.loads(body)
        if isinstance(obj, dict) and isinstance(obj.get("error"), str):
            return str(obj["error"])
    except ValueError:
        pass
    return body[:ERROR_TEXT_MAX].decode("utf-8", "replace").strip()


def judge(
    status: int, headers: Mapping[str, str], body: bytes, now: datetime, cfg: SyncConfig
) -> Verdict:
    """Classify one answer of the server (docs/sync.md)."""
    text = _server_text(body) if status != 200 else ""
    said = f" ({text})" if text else ""
    if status == 200:
        try:
            return Verdict("ack", "", answer=protocol.parse_answer(body))
        except ValueError as exc:
            return Verdict("protocol", f"{exc}; nothing was marked delivered")
    if status in (429, 503):
        wait = retry_after(headers.get("retry-after"), now, cfg.retry_after_max_s)
        return Verdict("wait", f"the server answered {status}{said}", retry_after_s=wait)
    if status in (401, 403):
        return Verdict(
            "auth",
            f"the server refused the token with {status}{said}; check sync.token_file",
        )
    if status == 413:
        return Verdict("shrink", f"the server answered 413{said}; sending smaller batches")
    if 500 <= status <= 599:
        return Verdict("backoff", f"the server answered {status}{said}")
    return Verdict("protocol", f"the server answered {status}{said}; this is a protocol problem")


def _tls_problem(exc: BaseException) -> str | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            return cur.verify_message or str(cur)
        if isinstance(cur, ssl.SSLError):
            return cur.reason or str(cur)
        cur = cur.__cause__ or cur.__context__
    return None


def check_files(cfg: SyncConfig) -> list[str]:
    """Every problem `build` would stop the daemon's start on, found without starting anything:
    the token file, and for an https URL the TLS files (for `tally check-config`)."""
    problems: list[str] = []
    try:
        load_token(expand(cfg.token_file))
    except TokenFileError as exc:
        problems.append(f"sync.token_file: {exc}")
    if cfg.url.startswith("https://"):
        try:
            ssl_context(cfg)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def ssl_context(cfg: SyncConfig) -> ssl.SSLContext:
    """The TLS context of `cfg`: its CA file (else the system's) and optional client cert.

    Raises ConfigError naming the key when a file cannot be used.
    """
    return client_context(cfg.ca_file, cfg.client_cert, cfg.client_key, "sync")


def load_token(path: str) -> tuple[_Secret, tuple[int, int]]:
    """Read the token file; raise TokenFileError when missing, too open or malformed."""
    text, sig = read_private(path, "the sync token file")
    return _Secret(parse_token(text, path)), sig


Sleep = Callable[[float], Awaitable[None]]
INLINE_ROWS = 32  # a batch this small is read and encoded on the event loop itself


async def _read_capped(resp: httpx.Response, cap: int) -> bytes:
    """The answer's body, cut at `cap` bytes (memory stays bounded whatever the server sends)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            break
    return b"".join(chunks)[: cap + 1]


class Sender:
    """Sends events after the server's acknowledged seq, one batch at a time."""

    name = "sync.sender.forwarder"

    def __init__(
        self,
        cfg: SyncConfig,
        writer: Writer,
        database: str,
        hub: Hub,
        alerts: Alerts,
        *,
        token: _Secret,
        token_sig: tuple[int, int],
        token_path: str,
        transport: httpx.AsyncBaseTransport | None = None,
        tls: ssl.SSLContext | None = None,
        sleep: Sleep = sleep_on_grid,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.writer = writer
        self.database = database
        self.hub = hub
        self.alerts = alerts
        self._token = token
        self._token_sig = token_sig
        self._token_path = token_path
        self._transport = transport
        self._tls = tls
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.url = cfg.url.rstrip("/") + protocol.EVENTS_PATH
        self.limit = cfg.batch_max
        self.state = "starting"
        self.attempts = 0
        self.sends = 0
        self._auth_until: float | None = None
        self._failing_since: float | None = None
        self._store: Store | None = None
        self._client: httpx.AsyncClient | None = None
        self._last_error: str | None = None
        self.acked = 0

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the reader and the HTTP client; read the acknowledged seq."""
        self._store = Store(self.database)
        self.acked = int(self._store.get_state(ACKED, 0))
        self._last_error = self._store.get_state(LAST_ERROR)
        self._client = httpx.AsyncClient(
            transport=self._transport or LoopTransport(self._tls),
            timeout=httpx.Timeout(self.cfg.timeout_s),
            trust_env=False,
            follow_redirects=False,
        )

    async def close(self) -> None:
        """Close the HTTP client and the reader."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._store is not None:
            self._store.close()
            self._store = None

    async def run(self) -> None:
        """Send until cancelled; every wait comes from `step`."""
        await self.open()
        try:
            self.publish()
            while True:
                delay = await self.step()
                if delay > 0:
                    await self._sleep(delay)
        finally:
            self.state = "stopped"
            await self.close()

    # --- one step -------------------------------------------------------------------------

    async def step(self) -> float:
        """Send at most one batch and handle the answer; return seconds to wait before the next."""
        if self._auth_until is not None:
            if signature(self._token_path) != self._token_sig:
                problem = self._reload_token()
                if problem:
                    await self._note_error(problem)
                    self._auth_until = self._clock() + AUTH_RETRY_S
                    return AUTH_POLL_S
                self._auth_until = None
            elif self._clock() < self._auth_until:
                return AUTH_POLL_S
            else:
                self._auth_until = None
        assert self._store is not None
        if self.acked >= self.writer.last_seq:
            # nothing new: no read of the database, no thread, and nothing to publish unless
            # the state changes (an idle look each interval costs only its timer's wake-up,
            # which falls on the daemon's grid with the other periodic work)
            if self.state != "idle":
                self.state = "idle"
                self.publish()
            return self.cfg.interval_s
        if self.writer.last_seq - self.acked <= INLINE_ROWS:
            # a few rows read and encoded on the loop cost less than the hand-over to a
            # thread and back (two wake-ups); a backlog goes to a thread as before
            rows = self._read(self.acked, self.limit)
        else:
            rows = await asyncio.to_thread(self._read, self.acked, self.limit)
        if not rows:
            self.state = "idle"
            self.publish()
            return self.cfg.interval_s
        self.state = "sending"
        verdict = await self._post(rows)
        return await self._apply(verdict, rows)

    def _read(self, after: int, limit: int) -> list[protocol.Row]:
        assert self._store is not None
        return self._store.rows_after(after, limit)

    def _encode(self, rows: list[protocol.Row]) -> bytes:
        body = protocol.encode_batch(self.writer.terminal, self.writer.epoch, rows)
        return protocol.gzip_bytes(body)

    async def _post(self, rows: list[protocol.Row]) -> Verdict:
        assert self._client is not None
        first, last = rows[0][0], rows[-1][0]
        if len(rows) <= INLINE_ROWS:
            body = self._encode(rows)
        else:
            body = await asyncio.to_thread(self._encode, rows)
        headers = {
            "Authorization": f"Bearer {self._token.reveal()}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Idempotency-Key": protocol.idempotency_key(
                self.writer.terminal, self.writer.epoch, first, last
            ),
        }
        self.sends += 1
        try:
            async with (
                asyncio.timeout(self.cfg.timeout_s),
                self._client.stream("POST", self.url, content=body, headers=headers) as resp,
            ):
                content = await _read_capped(resp, ANSWER_MAX)
        except TimeoutError:
            return Verdict("backoff", f"no answer within sync.timeout_s = {self.cfg.timeout_s:g} s")
        except httpx.HTTPError as exc:
            problem = _tls_problem(exc)
            if problem is not None:
                return Verdict(
                    "tls",
                    f"the TLS connection to the server failed ({problem}); check sync.ca_file",
                )
            detail = str(exc) or f"the connection failed: {exc.__class__.__name__}"
            return Verdict("backoff", f"cannot reach the server ({self._redact(detail)})")
        verdict = judge(resp.status_code, resp.headers, content, datetime.now(UTC), self.cfg)
        return Verdict(
            verdict.action, self._redact(verdict.message), verdict.answer, verdict.retry_after_s
        )

    def _redact(self, text: str) -> str:
        """Keep a server that echoes the token from putting it into our logs and events."""
        return text.replace(self._token.reveal(), "[token]")[:400]

    def _backoff(self) -> float:
        """Full jitter: uniform between 0 and the capped exponential."""
        ceiling = min(self.cfg.backoff_max_s, BACKOFF_BASE_S * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return self._rng.uniform(0, ceiling)

    async def _apply(self, verdict: Verdict, rows: list[protocol.Row]) -> float:
        first, last = rows[0][0], rows[-1][0]
        if verdict.action == "ack" and verdict.answer is not None:
            return await self._acked(verdict.answer, first, last, len(rows))
        if verdict.action == "shrink" and self.limit > 1:
            self.limit = max(1, self.limit // 2)
            await self._note_error(verdict.message)
            return 0.0
        if verdict.action == "auth":
            self._auth_until = self._clock() + AUTH_RETRY_S
            await self._note_error(verdict.message, "auth_failed")
            await self.alerts.raise_(
                ALERT_AUTH,
                verdict.message + "; sending stops until the token file changes"
                f" (or {AUTH_RETRY_S / 60:g} min pass)",
            )
            return AUTH_POLL_S
        if verdict.action == "wait" and verdict.retry_after_s is not None:
            delay = verdict.retry_after_s
        else:
            delay = self._backoff()
        await self._note_error(f"{verdict.message}; retrying in {delay:.1f} s", "retrying")
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        elif now - self._failing_since >= UNREACHABLE_ALERT_S:
            await self.alerts.raise_(
                ALERT_UNREACHABLE,
                f"nothing acknowledged by the server for over {UNREACHABLE_ALERT_S / 60:g} min;"
                " events are kept and sent once it answers (see `tally sync status`)",
            )
        if verdict.action in ("protocol", "shrink"):
            await self.alerts.raise_(ALERT_PROTOCOL, verdict.message)
        elif verdict.action == "tls":
            await self.alerts.raise_(ALERT_TLS, verdict.message)
        return delay

    async def _acked(self, answer: protocol.Answer, first: int, last: int, count: int) -> float:
        dead = [r for r in answer.rejected if first <= r.seq <= last]
        ack = answer.acked_through
        if ack < self.acked:
            return await self._rewind(ack)
        new = min(ack, last)
        if new <= self.acked and not dead:
            delay = self._backoff()
            message = (
                f"the server acknowledged nothing of seq {first}-{last}"
                f" (acked_through {ack}); retrying in {delay:.1f} s"
            )
            await self._note_error(message, "retrying")
            await self.alerts.raise_(ALERT_PROTOCOL, message.rsplit(";", 1)[0])
            return delay
        when = format_at(datetime.now(UTC))
        dead_rows = [(r.seq, self._redact(r.error), when) for r in dead]

        def commit(conn: sqlite3.Connection) -> int:
            if dead_rows:
                conn.executemany("INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?)", dead_rows)
            set_state(conn, {ACKED: new, LAST_ACK_AT: when, LAST_ERROR: None})
            return int(conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

        total_dead = await self.writer.run(commit)
        self.acked = new
        self.attempts = 0
        self._last_error = None
        self.state = "sending"
        self._failing_since = None
        for name in (ALERT_AUTH, ALERT_PROTOCOL, ALERT_TLS, ALERT_GAP, ALERT_UNREACHABLE):
            await self.alerts.clear(name, "sync works again")
        if dead:
            log.warning("the server rejected %d events of seq %d-%d", len(dead), first, last)
            await self.alerts.raise_(
                ALERT_REJECTED,
                f"the server rejected {total_dead} events; they are kept as dead letters"
                " (see `tally sync status`)",
            )
        self.publish()
        more = new >= last and count >= self.limit
        return 0.0 if more else self.cfg.interval_s

    async def _rewind(self, ack: int) -> float:
        """The server acknowledges less than before (it lost data): resend from its seq."""
        assert self._store is not None
        oldest = self._store.oldest_seq()
        if oldest is None or oldest > ack + 1:
            delay = self._backoff()
            message = (
                f"the server acknowledges only through seq {ack} but events after it were"
                " already pruned here; the server needs restoring"
            )
            await self._note_error(f"{message}; retrying in {delay:.1f} s", "retrying")
            await self.alerts.raise_(ALERT_GAP, message)
            return delay
        log.warning("the server acknowledges through %d, below %d: resending", ack, self.acked)

        def commit(conn: sqlite3.Connection) -> None:
            set_state(conn, {ACKED: ack})

        await self.writer.run(commit)
        self.acked = ack
        return 0.0

    async def _note_error(self, message: str, state: str | None = None) -> None:
        """Remember the last error (stored, so `tally sync status` shows it offline), then
        enter `state`: a status read while the error is being stored never shows the new
        state with the old error."""
        if message != self._last_error:
            log.warning("sync: %s", message)
            self._last_error = message

            def commit(conn: sqlite3.Connection) -> None:
                set_state(conn, {LAST_ERROR: message})

            await self.writer.run(commit)
        if state is not None:
            self.state = state
        self.publish()

    def _reload_token(self) -> str | None:
        try:
            self._token, self._token_sig = load_token(self._token_path)
        except TokenFileError as exc:
            self._token_sig = signature(self._token_path) or (0, 0)
            return f"{exc}; keeping the previous token"
        log.info("the sync token file changed; retrying with its token")
        return None

    # --- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The `sync` topic's value."""
        now = datetime.now(UTC)
        if self._store is not None:
            return read_status(self._store, now, enabled=True, state=self.state)
        store = Store(self.database)  # between restarts of the service
        try:
            return read_status(store, now, enabled=True, state=self.state)
        finally:
            store.close()

    def publish(self) -> None:
        """Publish the `sync` topic."""
        if self._store is not None:
            self.hub.publish("sync", self.status())

    async def status_op(self, request: dict[str, Any]) -> dict[str, Any]:
        """The `sync.sender.status` operation of the local API."""
        return {**self.status(), "url": redact_url(self.cfg.url)}


class Retention:
    """Prunes acknowledged events past the retention, hourly (the disk floor is agent.daemon.health's)."""

    name = "sync.retention"

    def __init__(
        self, storage: StorageConfig, writer: Writer, database: str, alerts: Alerts
    ) -> None:
        self.storage = storage
        self.writer = writer
        self.database = database
        self.alerts = alerts
        self.pruned = 0

    async def run(self) -> None:
        """Prune at start and every hour."""
        while True:
            n = await self.prune(datetime.now(UTC))
            if n:
                log.info("pruned %d acknowledged events older than %d days", n, self.days)
            await asyncio.sleep(PRUNE_EVERY_S)

    @property
    def days(self) -> int:
        """The retention in days."""
        return self.storage.retention_days

    async def prune(self, now: datetime) -> int:
        """Delete acknowledged events older than the retention; return how many."""
        cutoff = format_at(now - timedelta(days=self.days))
        store = Store(self.database)
        total = after = 0
        try:
            while True:
                acked = int(store.get_state(ACKED, 0))
                seqs = await asyncio.to_thread(
                    store.seqs_before, acked, cutoff, PRUNE_CHUNK, after=after
                )
                if not seqs:
                    return total
                after = seqs[-1]
                total += int(await self.writer.run(delete_acknowledged(seqs, ACKED)))
                self.pruned += len(seqs)
                if len(seqs) < PRUNE_CHUNK:
                    return total
        finally:
            store.close()


DISABLED: dict[str, Any] = {
    "enabled": False,
    "backlog": 0,
    "oldest_unsent_s": None,
    "acked_through": 0,
    "last_ack_at": None,
    "last_error": None,
    "dead_letters": 0,
    "state": "disabled",
}


def redact_url(url: str) -> str:
    """`url` without any `user:password@` part (never handed to local clients)."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if sep and "@" in host:
        host = host.rpartition("@")[2]
    return f"{scheme}{sep}{host}{slash}{path}"


def build(ctx: Context) -> list[Service]:
    """The sender and retention services, and the `sync.sender.status` op; no services without [sync].

    Raises ConfigError (the daemon exits 2 before starting) when the token file is missing,
    open to group or others, or unusable, or a TLS file cannot be loaded.
    """
    cfg = ctx.config.sync
    if cfg is None:
        ctx.hub.publish("sync", DISABLED)

        async def disabled(request: dict[str, Any]) -> dict[str, Any]:
            return {**DISABLED, "url": None}

        ctx.api.register("sync.sender.status", disabled)
        return []
    token_path = expand(cfg.token_file)
    try:
        token, sig = load_token(token_path)
    except TokenFileError as exc:
        raise ConfigError([f"sync.token_file: {exc}"]) from None
    tls = ssl_context(cfg) if cfg.url.startswith("https://") else None
    # httpx logs every request at INFO; the daemon's log is for problems.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    sender = Sender(
        cfg,
        ctx.writer,
        ctx.config.terminal.database,
        ctx.hub,
        ctx.alerts,
        token=token,
        token_sig=sig,
        token_path=token_path,
        tls=tls,
    )
    ctx.api.register("sync.sender.status", sender.status_op)
    retention = Retention(ctx.config.storage, ctx.writer, ctx.config.terminal.database, ctx.alerts)
    return [sender, retention]

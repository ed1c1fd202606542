"""The daemon's replication services: a puller per `[[peer]]`, the `[feed]` server and the
retention of foreign events (docs/replication.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from agent.config import ConfigError, FeedConfig, PeerConfig
from agent.daemon.foreign import LocalReader, ingest, prune
from agent.domain.events import Event, format_at
from sync.listen import listen_advice, listen_socket
from sync.replica.notifier import Notifier
from sync.replica.wire import (
    PULL_PATH,
    HeldRow,
    PullAnswer,
    PullError,
    PullRequest,
    StreamMark,
    parse_answer,
)
from sync.tls import client_context, server_context
from sync.tokens import TokenFileError, TokenTable, expand, parse_token, read_private
from sync.transport import LoopTransport

if TYPE_CHECKING:
    from agent.daemon.runtime import Context, Service

log = logging.getLogger("tally.replica")

ALERT_PREFIX = "peer_unreachable."
ALERT_CONFLICT = "replica_conflict"
ALERT_FEED = "feed_unavailable"
FEED_RETRY_S = 5.0
ANSWER_MAX = 64 << 20
INLINE_BYTES = 16 << 10  # an answer this small is parsed on the loop, not handed to a thread
PRUNE_EVERY_S = 3600.0
PRUNE_CHUNK = 5000
TOPIC = "replicas"


class DaemonHolder:
    """The feed's view of this daemon's database: its own stream and the foreign events."""

    def __init__(self, reader: LocalReader) -> None:
        self.reader = reader

    def marks(self) -> list[StreamMark]:
        """Every stream held here."""
        return [StreamMark(s.terminal, s.epoch, s.low, s.high) for s in self.reader.streams()]

    def rows_after(self, terminal: str, epoch: str, after: int, limit: int) -> list[HeldRow]:
        """Events of a stream after `after`."""
        return self.reader.rows_after(terminal, epoch, after, limit)


class Replicas:
    """Every source's health, published on the `replicas` topic and kept for `status`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.peers: dict[str, dict[str, Any]] = {}

    def update(self, name: str, **values: Any) -> None:
        """Change one source's facts and publish them all."""
        self.peers.setdefault(name, {"name": name}).update(values)
        self.ctx.hub.publish(TOPIC, {"peers": [dict(v) for _, v in sorted(self.peers.items())]})


class Puller:
    """Pulls one source's plant timeline into the local store, for as long as the daemon runs."""

    def __init__(
        self,
        ctx: Context,
        cfg: PeerConfig,
        token: str,
        reader: LocalReader,
        notifier: Notifier,
        replicas: Replicas,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.name = f"peer.{cfg.name}"
        self._token = token
        self.reader = reader
        self.notifier = notifier
        self.replicas = replicas
        self.transport = transport
        self.own = (ctx.writer.terminal, ctx.writer.epoch)
        self.tls = (
            client_context(cfg.ca_file, cfg.client_cert, cfg.client_key, f"peer {cfg.name}")
            if cfg.url.startswith("https://")
            else None
        )
        self.last_contact_mono = time.monotonic()
        self.up_to_date_mono = time.monotonic()
        self.alert = ALERT_PREFIX + cfg.name
        replicas.update(
            cfg.name,
            url=cfg.url,
            state="starting",
            last_contact=None,
            lag_s=None,
            events_behind=None,
            last_error="",
        )

    async def run(self) -> None:
        """Pull, store, repeat; back off (jittered) while the source cannot be reached."""
        cfg = self.cfg
        # an https peer's context was built with the service (CA loaded before the loop ran)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(cfg.timeout_s + cfg.wait_s, connect=cfg.timeout_s),
            transport=self.transport or LoopTransport(self.tls),
            trust_env=False,  # as the sender: no proxy from the environment (docs/sync.md)
        ) as client:
            delay = 0.5
            wait_s = 0.0  # the first pull answers at once, so the status is known quickly
            while True:
                try:
                    answer = await self._pull(client, wait_s)
                except (httpx.HTTPError, PullError, OSError) as exc:
                    await self._failed(_sentence(exc))
                    await asyncio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, cfg.backoff_max_s)
                    continue
                delay = 0.5
                more = await self._store(answer)
                wait_s = 0.0 if more else cfg.wait_s

    async def _pull(self, client: httpx.AsyncClient, wait_s: float) -> PullAnswer:
        # one row a stream: read on the loop, cheaper than a thread's hand-over and back
        cursors = self.reader.cursors_now()
        if cursors is None:
            cursors = await asyncio.to_thread(self.reader.cursors)
        cursors[self.own] = self.ctx.writer.last_seq
        req = PullRequest(cursors, wait_s, self.cfg.batch_max)
        url = self.cfg.url.rstrip("/") + PULL_PATH
        async with client.stream(
            "POST",
            url,
            content=req.to_json(),
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
            },
        ) as resp:
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > ANSWER_MAX:
                    raise PullError(f"the answer is larger than {ANSWER_MAX} bytes")
        if resp.status_code in (401, 403):
            raise PullError(f"the source refused this terminal's token (HTTP {resp.status_code})")
        if resp.status_code != 200:
            raise PullError(f"the source answered HTTP {resp.status_code}")
        if len(body) <= INLINE_BYTES:
            return parse_answer(bytes(body))
        return await asyncio.to_thread(parse_answer, bytes(body))

    async def _store(self, answer: PullAnswer) -> bool:
        """Store an answer; return whether the source holds more right now."""
        now = datetime.now(UTC)
        lows = {(m.terminal, m.epoch): m.low for m in answer.streams}
        done = await self.ctx.writer.run(
            ingest(answer.events, lows, self.own, self.cfg.name, format_at(now))
        )
        if done.events:
            self.ctx.hub.on_foreign(done.events)
            self.notifier.bump()
        if done.conflicts:
            await self.ctx.alerts.raise_(
                ALERT_CONFLICT,
                f"{len(done.conflicts)} events from {self.cfg.name} differ from the copies held"
                f" (first {done.conflicts[0]}); they are quarantined, not stored",
            )
        behind = 0
        for m in answer.streams:
            stream = (m.terminal, m.epoch)
            if stream != self.own:
                behind += max(0, m.high - done.cursors.get(stream, m.high))
        mono = time.monotonic()
        self.last_contact_mono = mono
        if behind == 0:
            self.up_to_date_mono = mono
        self.replicas.update(
            self.cfg.name,
            state="up to date" if behind == 0 else "catching up",
            last_contact=format_at(now),
            lag_s=round(mono - self.up_to_date_mono, 1),
            events_behind=behind,
            skew_s=_skew(answer.now, now),
            last_error="",
        )
        if self.alert in self.ctx.alerts.active:
            await self.ctx.alerts.clear(self.alert, f"{self.cfg.name} answers again")
        return bool(answer.events) and behind > 0

    async def _failed(self, error: str) -> None:
        silent = time.monotonic() - self.last_contact_mono
        self.replicas.update(self.cfg.name, state="unreachable", last_error=error)
        if silent >= self.cfg.unreachable_alert_s and self.alert not in self.ctx.alerts.active:
            await self.ctx.alerts.raise_(
                self.alert,
                f"no contact with {self.cfg.name} for {silent / 60:.0f} min ({error});"
                " other terminals' events are not arriving here",
            )


def _skew(server_now: str, now: datetime) -> float | None:
    try:
        return round(
            (datetime.fromisoformat(server_now.replace("Z", "+00:00")) - now).total_seconds(), 1
        )
    except ValueError:
        return None


def _sentence(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "the source did not answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect to the source"
    text = str(exc) or exc.__class__.__name__
    return text[:200]


class FeedServer:
    """Serves `POST /v1/pull` over this daemon's database on `[feed] listen`."""

    name = "feed"

    def __init__(
        self,
        ctx: Context,
        cfg: FeedConfig,
        holder: DaemonHolder,
        notifier: Notifier,
        tokens: TokenTable,
    ) -> None:
        self.ctx = ctx
        self.cfg = cfg
        from sync.replica.feed import create_app  # Starlette only where a [feed] is served

        self.app = create_app(holder, notifier, tokens)
        self.notifier = notifier

    async def run(self) -> None:
        """Listen until cancelled; while the address cannot be bound (another program holds
        the port), keep the daemon recording, raise `feed_unavailable` and try again."""
        self.notifier.bind(asyncio.get_running_loop())
        while True:
            try:
                sock = listen_socket(self.cfg.listen)
            except OSError as exc:
                detail = f"the feed cannot listen on {self.cfg.listen} ({exc.strerror or exc}); "
                detail += listen_advice(exc, "[feed] listen")
                if await self.ctx.alerts.raise_(ALERT_FEED, detail):
                    log.error("%s; trying again every %.0f s", detail, FEED_RETRY_S)
                await asyncio.sleep(FEED_RETRY_S)
                continue
            await self.ctx.alerts.clear(ALERT_FEED, f"the feed listens on {self.cfg.listen}")
            await self._serve(sock)

    async def _serve(self, sock: socket.socket) -> None:
        import uvicorn

        host, _, port = self.cfg.listen.rpartition(":")
        kwargs: dict[str, Any] = {}
        if self.cfg.cert_file:
            kwargs = {"ssl_certfile": self.cfg.cert_file, "ssl_keyfile": self.cfg.key_file}
        config = uvicorn.Config(
            self.app,
            host=host.strip("[]"),
            port=int(port),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            limit_concurrency=128,
            **kwargs,
        )
        server = _daemon_server()(config)
        try:
            await server.serve(sockets=[sock])
        except asyncio.CancelledError:
            self.notifier.close()
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.shutdown(), 3)
            raise


def check_server_cert(cert_file: str, key_file: str) -> None:
    """Load the feed's certificate and key once at start, so a file that is not a PEM certificate
    with its key stops the start with a sentence (as a bad `sync.client_cert` does), instead of
    the feed failing and restarting for ever."""
    try:
        server_context(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [
                f"feed.cert_file: cannot load {cert_file!r} with its key {key_file!r} ({exc}); "
                "give a PEM certificate and its private key"
            ]
        ) from None


def _daemon_server() -> type[Any]:
    import uvicorn

    class DaemonServer(uvicorn.Server):
        """uvicorn inside the daemon: the daemon, not uvicorn, owns SIGTERM and SIGINT."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return DaemonServer


class ForeignRetention:
    """Deletes foreign events older than `storage.retention_days`, as the own events are."""

    name = "replica-retention"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self) -> None:
        """Prune once an hour."""
        while True:
            before = format_at(
                datetime.now(UTC) - timedelta(days=self.ctx.config.storage.retention_days)
            )
            while await self.ctx.writer.run(prune(before, PRUNE_CHUNK)) >= PRUNE_CHUNK:
                await asyncio.sleep(0)
            await asyncio.sleep(PRUNE_EVERY_S)


def check_files(peers: tuple[PeerConfig, ...], feed: FeedConfig | None) -> list[str]:
    """Every problem `build` would stop the daemon's start on, found without starting anything:
    each peer's token file and TLS files, the feed's tokens file and certificate (for
    `tally check-config`)."""
    problems: list[str] = []
    for i, peer in enumerate(peers):
        try:
            _read_token(peer.token_file, f"peer[{i}].token_file")
        except ConfigError as exc:
            problems.extend(exc.problems)
        if peer.url.startswith("https://"):
            try:
                client_context(peer.ca_file, peer.client_cert, peer.client_key, f"peer {peer.name}")
            except ConfigError as exc:
                problems.extend(exc.problems)
    if feed is not None:
        try:
            TokenTable.load(expand(feed.tokens_file))
        except TokenFileError as exc:
            problems.append(f"feed.tokens_file: {exc}")
        if feed.cert_file:
            try:
                check_server_cert(feed.cert_file, feed.key_file)
            except ConfigError as exc:
                problems.extend(exc.problems)
    return problems


def _read_token(path: str, key: str) -> str:
    try:
        text, _ = read_private(expand(path), "the token file")
        return parse_token(text, path)
    except TokenFileError as exc:
        raise ConfigError([f"{key}: {exc}"]) from None


def build(ctx: Context) -> list[Service]:
    """Pullers, the feed and the retention of foreign events; nothing without [[peer]]/[feed].

    Raises ConfigError (the daemon exits 2) when a token file cannot be used.
    """
    cfg = ctx.config
    replicas = Replicas(ctx)

    async def status(req: dict[str, Any]) -> dict[str, Any]:
        return {"peers": [dict(v) for _, v in sorted(replicas.peers.items())]}

    ctx.api.register("replicas.status", status)
    ctx.hub.publish(TOPIC, {"peers": []})
    if not cfg.peers and cfg.feed is None:
        return []
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    reader = LocalReader(cfg.terminal.database)
    notifier = Notifier()
    loop = asyncio.get_running_loop()
    notifier.bind(loop)

    def on_commit(events: list[Event]) -> None:
        notifier.bump()

    ctx.writer.listeners.append(on_commit)
    services: list[Service] = [ForeignRetention(ctx)]
    for i, peer in enumerate(cfg.peers):
        token = _read_token(peer.token_file, f"peer[{i}].token_file")
        services.append(Puller(ctx, peer, token, reader, notifier, replicas))
    if cfg.feed is not None:
        try:
            tokens = TokenTable.load(expand(cfg.feed.tokens_file))
        except TokenFileError as exc:
            raise ConfigError([f"feed.tokens_file: {exc}"]) from None
        if cfg.feed.cert_file:
            check_server_cert(cfg.feed.cert_file, cfg.feed.key_file)
        services.append(FeedServer(ctx, cfg.feed, DaemonHolder(reader), notifier, tokens))

    async def close_reader() -> None:
        reader.close()

    ctx.stop_hooks.append(close_reader)
    return services

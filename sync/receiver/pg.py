"""The receiver on PostgreSQL: several processes on one database store each event once.

Each batch is one READ COMMITTED transaction that locks its stream's row (`FOR UPDATE`), so the
writers of one stream take turns while other streams proceed; events go in with
`ON CONFLICT DO NOTHING` on (terminal, epoch, seq), and `acked_through` advances under the lock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from agent.domain.events import Event, format_at
from sync.protocol import Rejection, Row
from sync.receiver.days import touched_by, visits_of
from sync.receiver.engine import StoreUnavailable
from sync.receiver.store import (
    BATCHES_BY_STREAM,
    IN_CHUNK,
    STREAM_STATUS,
    Ingested,
    ReceiverStoreError,
    stream_status,
)

RETRIES = 8  # a deadlock or serialization failure rolls back an idempotent transaction: retry
LOCK_TIMEOUT = "10s"
MIGRATION_LOCK = 0x7A11_1E5  # pg_advisory_xact_lock key: one process migrates at a time

PLAN_DAY = "(data::jsonb ->> 'day')"  # exactly the indexed expression
MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0001_events",
        [
            "CREATE TABLE events (terminal text NOT NULL, epoch text NOT NULL,"
            " seq bigint NOT NULL, kind text NOT NULL, at text NOT NULL,"
            " mono_ns bigint NOT NULL, boot text NOT NULL, data text NOT NULL,"
            " received_at text NOT NULL,"
            " visit text GENERATED ALWAYS AS (CASE WHEN jsonb_typeof(data::jsonb -> 'visit')"
            " = 'string' THEN data::jsonb ->> 'visit' END) STORED,"
            " PRIMARY KEY (terminal, epoch, seq))",
            "CREATE INDEX events_at ON events (at)",
            "CREATE INDEX events_visit ON events (visit, at) WHERE visit IS NOT NULL",
            "CREATE TABLE rejected (terminal text NOT NULL, epoch text NOT NULL,"
            " seq bigint NOT NULL, error text NOT NULL, received_at text NOT NULL,"
            " PRIMARY KEY (terminal, epoch, seq))",
            "CREATE TABLE streams (terminal text NOT NULL, epoch text NOT NULL,"
            " acked_through bigint NOT NULL, PRIMARY KEY (terminal, epoch))",
            "CREATE TABLE batches (id bigserial PRIMARY KEY, received_at text NOT NULL,"
            " terminal text NOT NULL, epoch text NOT NULL, idempotency_key text NOT NULL,"
            " first bigint, last bigint, stored integer NOT NULL, duplicates integer NOT NULL,"
            " rejected integer NOT NULL, acked_through bigint NOT NULL,"
            " conflicts integer NOT NULL DEFAULT 0)",
        ],
    ),
    (
        "0002_day_revisions_reports",
        [
            "CREATE TABLE day_revs (day text PRIMARY KEY, n bigint NOT NULL)",
            "CREATE TABLE day_reports (day text NOT NULL, zone text NOT NULL,"
            " scope text NOT NULL, rev bigint NOT NULL, report text NOT NULL,"
            " PRIMARY KEY (day, zone, scope))",
        ],
    ),
    (
        "0003_plan_day_index",
        [f"CREATE INDEX events_plan_day ON events ({PLAN_DAY}) WHERE kind = 'plan.set'"],
    ),
    ("0004_batches_by_stream", [BATCHES_BY_STREAM]),
]

COLS = "SELECT terminal, epoch, seq, kind, at, mono_ns, boot, data FROM events"


def apply_migrations(conn: psycopg.Connection[Any]) -> None:
    """Apply the migrations not yet applied, one process at a time."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS tally_migrations (name text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in conn.execute("SELECT name FROM tally_migrations")}
        for name, statements in MIGRATIONS:
            if name in done:
                continue
            for sql in statements:
                conn.execute(sql.encode())
            conn.execute("INSERT INTO tally_migrations (name) VALUES (%s)", (name,))


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'".encode())
    conn.commit()


class PgReceiverStore:
    """The receiver's PostgreSQL database; every method is safe from several threads."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        try:
            with psycopg.connect(url, connect_timeout=10) as conn:
                if migrate:
                    apply_migrations(conn)
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=8,
                configure=_configure,
                kwargs={"connect_timeout": 10},
                open=True,
            )
        except psycopg.Error as exc:
            raise ReceiverStoreError(
                f"cannot use the PostgreSQL database of --db ({_first_line(exc)});"
                " check the URL, the server and the user's rights"
            ) from None
        self._local_lock = threading.Lock()

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.close()

    @property
    def version(self) -> int:
        """The sum of every day's revision: grows with each ingest in any process."""
        with self._pool.connection() as conn:
            row = conn.execute("SELECT coalesce(sum(n), 0) FROM day_revs").fetchone()
        return int(row[0]) if row else 0

    def ingest(
        self,
        terminal: str,
        epoch: str,
        rows: Sequence[Row],
        rejected: Sequence[Rejection],
        key: str,
        now: datetime | None = None,
    ) -> Ingested:
        """Store new events and rejections of one stream in one transaction (see the SQLite
        store: the same answers), retried on a deadlock or serialization failure."""
        received = format_at(now or datetime.now(UTC))
        for attempt in range(RETRIES):
            try:
                with self._pool.connection() as conn:
                    return self._ingest(conn, terminal, epoch, rows, rejected, key, received)
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                if attempt == RETRIES - 1:
                    raise StoreUnavailable("the database kept refusing the batch") from None
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(_first_line(exc)) from None
        raise StoreUnavailable("unreachable")  # pragma: no cover

    @staticmethod
    def _ingest(
        conn: psycopg.Connection[Any],
        terminal: str,
        epoch: str,
        rows: Sequence[Row],
        rejected: Sequence[Rejection],
        key: str,
        received: str,
    ) -> Ingested:
        seqs = [r[0] for r in rows]
        with conn.transaction():
            conn.execute(
                "INSERT INTO streams VALUES (%s, %s, 0) ON CONFLICT DO NOTHING", (terminal, epoch)
            )
            row = conn.execute(
                "SELECT acked_through FROM streams WHERE terminal = %s AND epoch = %s FOR UPDATE",
                (terminal, epoch),
            ).fetchone()
            start = int(row[0]) if row else 0
            conflicts = _conflicts(conn, terminal, epoch, rows)
            stored = 0
            if rows:
                cur = conn.execute(
                    "INSERT INTO events (terminal, epoch, seq, kind, at, mono_ns, boot, data,"
                    " received_at) SELECT %s, %s, s, k, a, m, b, d, %s FROM unnest("
                    "%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[])"
                    " AS u(s, k, a, m, b, d) ON CONFLICT DO NOTHING",
                    (
                        terminal,
                        epoch,
                        received,
                        [r[0] for r in rows],
                        [r[1] for r in rows],
                        [r[2] for r in rows],
                        [r[3] for r in rows],
                        [r[4] for r in rows],
                        [r[5] for r in rows],
                    ),
                )
                stored = max(cur.rowcount, 0)
            if rejected:
                conn.execute(
                    "INSERT INTO rejected SELECT %s, %s, s, e, %s FROM unnest(%s::bigint[],"
                    " %s::text[]) AS u(s, e) WHERE NOT EXISTS (SELECT 1 FROM events WHERE"
                    " terminal = %s AND epoch = %s AND seq = u.s) ON CONFLICT DO NOTHING",
                    (
                        terminal,
                        epoch,
                        received,
                        [r.seq for r in rejected],
                        [r.error for r in rejected],
                        terminal,
                        epoch,
                    ),
                )
            acked = _advance(conn, terminal, epoch, start)
            if stored:
                days = set(touched_by(rows))
                visits = visits_of(r[5] for r in rows)
                if visits:
                    days.update(
                        str(d)
                        for (d,) in conn.execute(
                            "SELECT DISTINCT left(at, 10) FROM events WHERE visit = ANY(%s)",
                            (visits,),
                        )
                    )
                conn.execute(
                    "INSERT INTO day_revs SELECT d, 1 FROM unnest(%s::text[]) AS u(d)"
                    " ORDER BY d ON CONFLICT (day) DO UPDATE SET n = day_revs.n + 1",
                    (sorted(days),),
                )
            conn.execute(
                "INSERT INTO batches (received_at, terminal, epoch, idempotency_key, first,"
                " last, stored, duplicates, rejected, acked_through, conflicts)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    received,
                    terminal,
                    epoch,
                    key,
                    min(seqs) if seqs else None,
                    max(seqs) if seqs else None,
                    stored,
                    len(rows) - stored - len(conflicts),
                    len(rejected),
                    acked,
                    len(conflicts),
                ),
            )
        return Ingested(acked, stored, len(rows) - stored - len(conflicts), conflicts)

    def acked_through(self, terminal: str, epoch: str) -> int:
        """The stream's acknowledged-through seq (0 when nothing is stored)."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT acked_through FROM streams WHERE terminal = %s AND epoch = %s",
                (terminal, epoch),
            ).fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> list[dict[str, Any]]:
        """Per stream: terminal, epoch, events stored and the highest seq stored."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT terminal, epoch, count(*), max(seq) FROM events"
                " GROUP BY terminal, epoch ORDER BY terminal, epoch"
            ).fetchall()
        return [
            {"terminal": t, "epoch": e, "events": int(n), "max_seq": int(m)} for t, e, n, m in rows
        ]

    def streams(self) -> list[dict[str, Any]]:
        """Per stream: terminal, epoch, acked_through, max_seq, missing and last_at (the last
        request's time), read through indexes."""
        with self._pool.connection() as conn:
            return stream_status(conn.execute(STREAM_STATUS).fetchall())

    def marks(self) -> list[tuple[str, str, int, int]]:
        """Every stream stored: (terminal, epoch, lowest seq, highest seq), for the pull feed."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT terminal, epoch, min(seq), max(seq) FROM events"
                " GROUP BY terminal, epoch ORDER BY terminal, epoch"
            ).fetchall()
        return [(str(t), str(e), int(lo), int(hi)) for t, e, lo, hi in rows]

    def rows_after(
        self, terminal: str, epoch: str, after: int, limit: int
    ) -> list[tuple[str, str, int, str, str, int, str, str]]:
        """Up to `limit` stored events of a stream with seq > `after`, in seq order."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"{COLS} WHERE terminal = %s AND epoch = %s AND seq > %s ORDER BY seq LIMIT %s",
                (terminal, epoch, after, limit),
            ).fetchall()
        return [
            (str(t), str(e), int(q), str(k), str(a), int(m), str(b), str(d))
            for t, e, q, k, a, m, b, d in rows
        ]

    def day_events(
        self,
        start_at: str,
        end_at: str,
        lookback_at: str,
        plan_days: tuple[str, str] | None = None,
    ) -> list[Event]:
        """The events a day's KPIs need, read through indexes (as the SQLite store does)."""
        with self._pool.connection() as conn:
            rows = conn.execute(f"{COLS} WHERE at >= %s AND at < %s", (start_at, end_at)).fetchall()
            rows += conn.execute(
                f"{COLS} WHERE at >= %s AND at < %s AND kind LIKE 'window.%%'",
                (lookback_at, start_at),
            ).fetchall()
            if plan_days is not None:
                rows += conn.execute(
                    f"{COLS} WHERE kind = 'plan.set' AND {PLAN_DAY} BETWEEN %s AND %s", plan_days
                ).fetchall()
            visits = sorted(
                {
                    str(r[0])
                    for r in conn.execute(
                        "SELECT DISTINCT visit FROM events WHERE at >= %s AND at < %s"
                        " AND visit IS NOT NULL",
                        (start_at, end_at),
                    )
                }
            )
            # stages recorded by plate and order (a terminal that had not seen the arrival):
            # the earlier arrival of that plate and order, and its visit, join the day
            for plate, order in conn.execute(
                "SELECT DISTINCT data::jsonb ->> 'plate', data::jsonb ->> 'order' FROM events"
                " WHERE at >= %s AND at < %s AND kind LIKE 'visit.%%' AND visit IS NULL"
                " AND data::jsonb ->> 'order' IS NOT NULL",
                (start_at, end_at),
            ).fetchall():
                earlier = conn.execute(
                    f"{COLS} WHERE kind LIKE 'visit.%%' AND data::jsonb ->> 'plate' = %s"
                    " AND data::jsonb ->> 'order' = %s AND at < %s",
                    (plate, order, start_at),
                ).fetchall()
                rows += earlier
                found = (json.loads(r[7]).get("visit") for r in earlier)
                visits = sorted({*visits, *(v for v in found if isinstance(v, str))})
            for i in range(0, len(visits), IN_CHUNK):
                rows += conn.execute(
                    f"{COLS} WHERE visit = ANY(%s) AND at < %s",
                    (visits[i : i + IN_CHUNK], start_at),
                ).fetchall()
        unique = {(r[0], r[1], r[2]): r for r in rows}
        return [
            Event(t, e, int(s), k, a, int(m), b, json.loads(d))
            for t, e, s, k, a, m, b, d in unique.values()
        ]

    def revision(self, first: date, last: date) -> int:
        """A number that grows whenever an event touching UTC days first..last is stored."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT coalesce(sum(n), 0) FROM day_revs WHERE day BETWEEN %s AND %s",
                (first.isoformat(), last.isoformat()),
            ).fetchone()
        return int(row[0]) if row else 0

    def cached_report(self, day: str, zone: str, scope: str) -> tuple[int, str] | None:
        """(revision, report JSON) of a day's report computed earlier, or None."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT rev, report FROM day_reports WHERE day = %s AND zone = %s AND scope = %s",
                (day, zone, scope),
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def save_report(self, day: str, zone: str, scope: str, rev: int, report: str) -> None:
        """Keep a day's report computed at revision `rev` (a newer one is never replaced)."""
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO day_reports VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (day, zone, scope) DO UPDATE SET rev = excluded.rev,"
                " report = excluded.report WHERE excluded.rev >= day_reports.rev",
                (day, zone, scope, rev, report),
            )

    def iter_events(self, before_at: str | None = None, batch: int = 2000) -> Iterator[Event]:
        """Every stored event (before `before_at` when given) in time order, read in chunks."""
        sql = COLS + (" WHERE at < %s" if before_at is not None else "")
        sql += " ORDER BY at, terminal, epoch, seq"
        params: tuple[Any, ...] = (before_at,) if before_at is not None else ()
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(name="tally_events") as cur,
        ):
            cur.itersize = batch
            cur.execute(sql.encode(), params)
            for t, e, s, k, a, m, b, d in cur:
                yield Event(t, e, int(s), k, a, int(m), b, json.loads(d))


def _advance(conn: psycopg.Connection[Any], terminal: str, epoch: str, start: int) -> int:
    """The stream's new acked-through: the end of the unbroken run of seqs after `start`."""
    cur = start
    rows = conn.execute(
        "SELECT seq FROM events WHERE terminal = %s AND epoch = %s AND seq > %s"
        " UNION SELECT seq FROM rejected WHERE terminal = %s AND epoch = %s AND seq > %s"
        " ORDER BY seq",
        (terminal, epoch, start, terminal, epoch, start),
    )
    for (seq,) in rows:
        if seq != cur + 1:
            break
        cur = int(seq)
    if cur != start:
        conn.execute(
            "UPDATE streams SET acked_through = %s WHERE terminal = %s AND epoch = %s",
            (cur, terminal, epoch),
        )
    return cur


def _conflicts(
    conn: psycopg.Connection[Any], terminal: str, epoch: str, rows: Sequence[Row]
) -> tuple[Rejection, ...]:
    """The rows whose seq is already stored with other content (compared as parsed JSON)."""
    if not rows:
        return ()
    by_seq = {r[0]: r for r in rows}
    stored = conn.execute(
        "SELECT seq, kind, at, mono_ns, boot, data FROM events"
        " WHERE terminal = %s AND epoch = %s AND seq = ANY(%s)",
        (terminal, epoch, list(by_seq)),
    )
    found: list[Rejection] = []
    for old in stored:
        new = by_seq.get(int(old[0]))
        if new is None or tuple(old) == tuple(new):
            continue
        if tuple(old[1:5]) == tuple(new[1:5]) and json.loads(old[5]) == json.loads(new[5]):
            continue
        found.append(
            Rejection(
                new[0],
                f"event {terminal}:{epoch}:{new[0]} was already stored with other content;"
                " the first version is kept",
            )
        )
    return tuple(sorted(found, key=lambda r: r.seq))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

"""The reference receiver's SQLite store: events deduplicated on (terminal, epoch, seq)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from agent.domain.events import Event, format_at
from agent.errors import TallyError
from sync.protocol import Rejection, Row
from sync.receiver.days import touched_by, visits_of

BUSY_TIMEOUT_MS = 5000


class ReceiverStoreError(TallyError):
    """The receiver's database cannot be used; the message says why and what to do."""


def _migrations() -> Any:
    from sqlite_utils import Migrations

    m = Migrations("tally-receiver")

    @m(name="0001_events")
    def _events(db: Any) -> None:
        db.execute(
            "CREATE TABLE events (terminal TEXT NOT NULL, epoch TEXT NOT NULL,"
            " seq INTEGER NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,"
            " mono_ns INTEGER NOT NULL, boot TEXT NOT NULL, data TEXT NOT NULL,"
            " received_at TEXT NOT NULL, PRIMARY KEY (terminal, epoch, seq)) WITHOUT ROWID"
        )
        db.execute("CREATE INDEX events_at ON events (at)")
        db.execute(
            "CREATE TABLE rejected (terminal TEXT NOT NULL, epoch TEXT NOT NULL,"
            " seq INTEGER NOT NULL, error TEXT NOT NULL, received_at TEXT NOT NULL,"
            " PRIMARY KEY (terminal, epoch, seq)) WITHOUT ROWID"
        )
        db.execute(
            "CREATE TABLE streams (terminal TEXT NOT NULL, epoch TEXT NOT NULL,"
            " acked_through INTEGER NOT NULL, PRIMARY KEY (terminal, epoch)) WITHOUT ROWID"
        )
        # One row per accepted request: the audit trail of retries and duplicates.
        db.execute(
            "CREATE TABLE batches (id INTEGER PRIMARY KEY, received_at TEXT NOT NULL,"
            " terminal TEXT NOT NULL, epoch TEXT NOT NULL, idempotency_key TEXT NOT NULL,"
            " first INTEGER, last INTEGER, stored INTEGER NOT NULL, duplicates INTEGER NOT NULL,"
            " rejected INTEGER NOT NULL, acked_through INTEGER NOT NULL)"
        )

    @m(name="0002_day_index_conflicts")
    def _day_index(db: Any) -> None:
        # The KPI of a day reads that day's events and the other events of their visits.
        db.execute("CREATE INDEX events_visit ON events (json_extract(data, '$.visit'), at)")
        db.execute("ALTER TABLE batches ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0")

    @m(name="0003_day_revisions_reports")
    def _day_reports(db: Any) -> None:
        # A counter per UTC day, bumped by every ingest that touches it: a kept day report is
        # current while the counters of the days it reads have not moved.
        db.execute("CREATE TABLE day_revs (day TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID")
        db.execute(
            "CREATE TABLE day_reports (day TEXT NOT NULL, zone TEXT NOT NULL,"
            " scope TEXT NOT NULL, rev INTEGER NOT NULL, report TEXT NOT NULL,"
            " PRIMARY KEY (day, zone, scope)) WITHOUT ROWID"
        )

    @m(name="0004_plan_day_index")
    def _plan_day(db: Any) -> None:
        # A day's plan may be entered days before (or after) it: found by the day it plans.
        db.execute(f"CREATE INDEX events_plan_day ON events ({PLAN_DAY}) WHERE kind = 'plan.set'")

    @m(name="0005_batches_by_stream")
    def _batches_by_stream(db: Any) -> None:
        # The admin page's "last posted" of each stream, without scanning every batch.
        db.execute(BATCHES_BY_STREAM)

    return m


PLAN_DAY = "json_extract(data, '$.day')"  # exactly the indexed expression
VISIT_KEY = "json_extract(data, '$.visit')"  # exactly the indexed expression
PLATE_KEY = "json_extract(data, '$.plate')"
ORDER_KEY = "json_extract(data, '$.order')"
IN_CHUNK = 500  # ids per IN (...) query
BATCHES_BY_STREAM = "CREATE INDEX batches_stream ON batches (terminal, epoch, received_at)"
# Each stream's acknowledged-through seq, highest seq known (stored or rejected), what is held
# past a gap and its last request; every subquery reads an index (the same SQL on PostgreSQL).
STREAM_STATUS = (
    "SELECT s.terminal, s.epoch, s.acked_through,"
    " (SELECT max(seq) FROM events e WHERE e.terminal = s.terminal AND e.epoch = s.epoch),"
    " (SELECT max(seq) FROM rejected r WHERE r.terminal = s.terminal AND r.epoch = s.epoch),"
    " (SELECT count(*) FROM events e WHERE e.terminal = s.terminal AND e.epoch = s.epoch"
    "  AND e.seq > s.acked_through),"
    " (SELECT count(*) FROM rejected r WHERE r.terminal = s.terminal AND r.epoch = s.epoch"
    "  AND r.seq > s.acked_through),"
    " (SELECT max(received_at) FROM batches b WHERE b.terminal = s.terminal"
    "  AND b.epoch = s.epoch)"
    " FROM streams s ORDER BY s.terminal, s.epoch"
)


def stream_status(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """STREAM_STATUS's rows as dicts: `missing` counts the seqs below the highest known that
    are neither stored nor rejected (what the terminal has still to send before it)."""
    out = []
    for terminal, epoch, acked, top_event, top_rejected, held, held_rejected, last in rows:
        top = max(int(acked), int(top_event or 0), int(top_rejected or 0))
        out.append(
            {
                "terminal": str(terminal),
                "epoch": str(epoch),
                "acked_through": int(acked),
                "max_seq": top,
                "missing": top - int(acked) - int(held) - int(held_rejected),
                "last_at": str(last) if last else None,
            }
        )
    return out


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    # The answer tells the agent it may forget these events: they must survive a power cut.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one request did to the store."""

    acked_through: int
    stored: int
    duplicates: int
    conflicts: tuple[Rejection, ...] = ()


class ReceiverStore:
    """The receiver's database; `ingest` is safe to call from several threads."""

    def __init__(self, path: str) -> None:
        from sqlite_utils import Database

        self.path = path
        if not Path(path).parent.is_dir():
            raise ReceiverStoreError(
                f"the folder of {path} does not exist; create it or choose another --db"
            )
        self._lock = threading.Lock()
        try:
            self._conn = _connect(path)
            _migrations().apply(Database(self._conn, execute_plugins=False))
        except sqlite3.DatabaseError as exc:
            raise ReceiverStoreError(
                f"cannot open the receiver database {path} ({exc}); check the path"
            ) from None
        self._conn.isolation_level = None  # explicit BEGIN/COMMIT
        self.version = 0  # incremented by every ingest that stored something

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def ingest(
        self,
        terminal: str,
        epoch: str,
        rows: Sequence[Row],
        rejected: Sequence[Rejection],
        key: str,
        now: datetime | None = None,
    ) -> Ingested:
        """Store new events and rejections of one stream in one durable transaction.

        Events already stored are ignored (resending is always safe); one stored with other
        content is a conflict: the first version is kept, the new one is reported (in
        `conflicts`, reason naming its id) and counted. Returns the stream's
        acknowledged-through seq after the commit: the highest seq such that every seq up to
        it is stored or was rejected.
        """
        received = format_at(now or datetime.now(UTC))
        seqs = [r[0] for r in rows]
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                conflicts = _conflicts(conn, terminal, epoch, rows)
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(terminal, epoch, *r, received) for r in rows],
                )
                stored = conn.total_changes - before
                if rejected:
                    conn.executemany(
                        "INSERT OR IGNORE INTO rejected SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS"
                        " (SELECT 1 FROM events WHERE terminal = ? AND epoch = ? AND seq = ?)",
                        [
                            (terminal, epoch, r.seq, r.error, received, terminal, epoch, r.seq)
                            for r in rejected
                        ],
                    )
                acked = self._advance(conn, terminal, epoch)
                if stored:
                    conn.executemany(
                        "INSERT INTO day_revs VALUES (?, 1)"
                        " ON CONFLICT (day) DO UPDATE SET n = n + 1",
                        [(d,) for d in _touched(conn, rows)],
                    )
                conn.execute(
                    "INSERT INTO batches (received_at, terminal, epoch, idempotency_key, first,"
                    " last, stored, duplicates, rejected, acked_through, conflicts)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if stored or rejected:
                self.version += 1
        return Ingested(acked, stored, len(rows) - stored - len(conflicts), conflicts)

    @staticmethod
    def _advance(conn: sqlite3.Connection, terminal: str, epoch: str) -> int:
        row = conn.execute(
            "SELECT acked_through FROM streams WHERE terminal = ? AND epoch = ?",
            (terminal, epoch),
        ).fetchone()
        start = cur = int(row[0]) if row else 0
        cursor = conn.execute(
            "SELECT seq FROM events WHERE terminal = ? AND epoch = ? AND seq > ?"
            " UNION SELECT seq FROM rejected WHERE terminal = ? AND epoch = ? AND seq > ?"
            " ORDER BY seq",
            (terminal, epoch, cur, terminal, epoch, cur),
        )
        done = False
        while not done:
            chunk = cursor.fetchmany(1000)
            if not chunk:
                break
            for (seq,) in chunk:
                if seq != cur + 1:
                    done = True
                    break
                cur = seq
        cursor.close()
        if row is None or cur != start:
            conn.execute(
                "INSERT INTO streams VALUES (?, ?, ?) ON CONFLICT (terminal, epoch)"
                " DO UPDATE SET acked_through = excluded.acked_through",
                (terminal, epoch, cur),
            )
        return cur

    def acked_through(self, terminal: str, epoch: str) -> int:
        """The stream's acknowledged-through seq (0 when nothing is stored)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT acked_through FROM streams WHERE terminal = ? AND epoch = ?",
                (terminal, epoch),
            ).fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> list[dict[str, Any]]:
        """Per stream: terminal, epoch, events stored and the highest seq stored."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT terminal, epoch, count(*), max(seq) FROM events"
                " GROUP BY terminal, epoch ORDER BY terminal, epoch"
            ).fetchall()
        return [{"terminal": t, "epoch": e, "events": n, "max_seq": m} for t, e, n, m in rows]

    def streams(self) -> list[dict[str, Any]]:
        """Per stream: terminal, epoch, acked_through, max_seq, missing and last_at (the last
        request's time), read through indexes."""
        with self._lock:
            return stream_status(self._conn.execute(STREAM_STATUS).fetchall())

    def marks(self) -> list[tuple[str, str, int, int]]:
        """Every stream stored: (terminal, epoch, lowest seq, highest seq), for the pull feed."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT terminal, epoch, min(seq), max(seq) FROM events"
                " GROUP BY terminal, epoch ORDER BY terminal, epoch"
            ).fetchall()
        return [(t, e, int(lo), int(hi)) for t, e, lo, hi in rows]

    def rows_after(
        self, terminal: str, epoch: str, after: int, limit: int
    ) -> list[tuple[str, str, int, str, str, int, str, str]]:
        """Up to `limit` stored events of a stream with seq > `after`, in seq order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT terminal, epoch, seq, kind, at, mono_ns, boot, data FROM events"
                " WHERE terminal = ? AND epoch = ? AND seq > ? ORDER BY seq LIMIT ?",
                (terminal, epoch, after, limit),
            ).fetchall()
        return [tuple(r) for r in rows]

    def day_events(
        self,
        start_at: str,
        end_at: str,
        lookback_at: str,
        plan_days: tuple[str, str] | None = None,
    ) -> list[Event]:
        """The events a day's KPIs need, read through indexes (never the whole history).

        The events stamped in [start_at, end_at), every earlier event of the visits they
        touch, window events from `lookback_at` (a ticket may be issued the day before) and
        the plans of the plant-local days `plan_days` (first, last ISO), whenever entered.
        Uses its own read connection, so it can run beside ingestion.
        """
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
        cols = "SELECT terminal, epoch, seq, kind, at, mono_ns, boot, data FROM events"
        try:
            rows = conn.execute(f"{cols} WHERE at >= ? AND at < ?", (start_at, end_at)).fetchall()
            rows += conn.execute(
                f"{cols} WHERE at >= ? AND at < ? AND kind LIKE 'window.%'",
                (lookback_at, start_at),
            ).fetchall()
            if plan_days is not None:
                rows += conn.execute(
                    f"{cols} WHERE kind = 'plan.set' AND {PLAN_DAY} BETWEEN ? AND ?", plan_days
                ).fetchall()
            visits = sorted(
                {
                    v
                    for v in (
                        r[0]
                        for r in conn.execute(
                            f"SELECT DISTINCT {VISIT_KEY} FROM events WHERE at >= ? AND at < ?",
                            (start_at, end_at),
                        )
                    )
                    if isinstance(v, str)
                }
            )
            # stages recorded by plate and order (a terminal that had not seen the arrival):
            # the earlier arrival of that plate and order, and its visit, join the day
            for plate, order in conn.execute(
                f"SELECT DISTINCT {PLATE_KEY}, {ORDER_KEY} FROM events WHERE at >= ? AND at < ?"
                f" AND kind LIKE 'visit.%' AND {VISIT_KEY} IS NULL AND {ORDER_KEY} IS NOT NULL",
                (start_at, end_at),
            ).fetchall():
                earlier = conn.execute(
                    f"{cols} WHERE kind LIKE 'visit.%' AND {PLATE_KEY} = ? AND {ORDER_KEY} = ?"
                    " AND at < ?",
                    (plate, order, start_at),
                ).fetchall()
                rows += earlier
                visits = sorted(
                    {*visits, *(v for r in earlier if isinstance(v := _visit_of(r[7]), str))}
                )
            for i in range(0, len(visits), IN_CHUNK):
                chunk = visits[i : i + IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(
                    f"{cols} WHERE {VISIT_KEY} IN ({marks}) AND at < ?", (*chunk, start_at)
                ).fetchall()
        finally:
            conn.close()
        unique = {(t, e, s): (t, e, s, k, a, m, b, d) for t, e, s, k, a, m, b, d in rows}
        return [
            Event(t, e, s, k, a, m, b, json.loads(d)) for t, e, s, k, a, m, b, d in unique.values()
        ]

    def revision(self, first: date, last: date) -> int:
        """A number that grows whenever an event touching UTC days first..last is stored."""
        with self._lock:
            row = self._conn.execute(
                "SELECT coalesce(sum(n), 0) FROM day_revs WHERE day BETWEEN ? AND ?",
                (first.isoformat(), last.isoformat()),
            ).fetchone()
        return int(row[0])

    def cached_report(self, day: str, zone: str, scope: str) -> tuple[int, str] | None:
        """(revision, report JSON) of a day's report computed earlier, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT rev, report FROM day_reports WHERE day = ? AND zone = ? AND scope = ?",
                (day, zone, scope),
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def save_report(self, day: str, zone: str, scope: str, rev: int, report: str) -> None:
        """Keep a day's report computed at revision `rev` (a newer one is never replaced)."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO day_reports VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, zone, scope)"
                " DO UPDATE SET rev = excluded.rev, report = excluded.report"
                " WHERE excluded.rev >= day_reports.rev",
                (day, zone, scope, rev, report),
            )

    def iter_events(self, before_at: str | None = None, batch: int = 2000) -> Iterator[Event]:
        """Every stored event (before `before_at` when given) in time order, read in chunks.

        Uses its own read connection, so it can run beside ingestion.
        """
        return _iter_events(self.path, before_at, batch)


def _touched(conn: sqlite3.Connection, rows: Sequence[Row]) -> list[str]:
    """The UTC days whose reports a batch may change: its events' days (and the two after)
    and every day holding an event of one of its visits, however old."""
    days = set(touched_by(rows))
    visits = visits_of(r[5] for r in rows)
    for i in range(0, len(visits), IN_CHUNK):
        chunk = visits[i : i + IN_CHUNK]
        days.update(
            d
            for (d,) in conn.execute(
                f"SELECT DISTINCT substr(at, 1, 10) FROM events WHERE {VISIT_KEY}"
                f" IN ({','.join('?' * len(chunk))})",
                chunk,
            )
        )
    return sorted(days)


def _conflicts(
    conn: sqlite3.Connection, terminal: str, epoch: str, rows: Sequence[Row]
) -> tuple[Rejection, ...]:
    """The rows whose seq is already stored with other content (compared as parsed JSON)."""
    if not rows:
        return ()
    by_seq = {r[0]: r for r in rows}
    stored = conn.execute(
        "SELECT seq, kind, at, mono_ns, boot, data FROM events"
        " WHERE terminal = ? AND epoch = ? AND seq BETWEEN ? AND ?",
        (terminal, epoch, min(by_seq), max(by_seq)),
    )
    found: list[Rejection] = []
    for old in stored:
        new = by_seq.get(old[0])
        if new is None or tuple(old) == tuple(new):
            continue
        if old[1:5] == new[1:5] and json.loads(old[5]) == json.loads(new[5]):
            continue
        found.append(
            Rejection(
                new[0],
                f"event {terminal}:{epoch}:{new[0]} was already stored with other content;"
                " the first version is kept",
            )
        )
    return tuple(found)


def _iter_events(
    path: str,
    before_at: str | None,
    batch: int,
    *,
    uri: bool = False,
    terminal: str | None = None,
) -> Iterator[Event]:
    conn = sqlite3.connect(path, uri=uri, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        sql = "SELECT terminal, epoch, seq, kind, at, mono_ns, boot, data FROM events"
        where: list[str] = []
        params: list[Any] = []
        if before_at is not None:
            where.append("at < ?")
            params.append(before_at)
        if terminal is not None:
            where.append("terminal = ?")
            params.append(terminal)
        if where:
            sql += " WHERE " + " AND ".join(where)
        try:
            cursor = conn.execute(sql + " ORDER BY at, terminal, epoch, seq", params)
        except sqlite3.DatabaseError as exc:
            raise ReceiverStoreError(f"{path} is not a receiver database ({exc})") from None
        while True:
            chunk = cursor.fetchmany(batch)
            if not chunk:
                return
            for t, e, s, k, a, m, b, d in chunk:
                yield Event.read(t, e, s, k, a, m, b, d)
    finally:
        conn.close()


def read_events(path: str, terminal: str | None = None) -> Iterator[Event]:
    """Every event of the receiver database at `path` (of one terminal when given), read-only
    (for exports, and the soak's check)."""
    if not Path(path).is_file():
        raise ReceiverStoreError(f"there is no receiver database at {path}; check --db")
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    return _iter_events(uri, None, 2000, uri=True, terminal=terminal)


def read_stats(path: str) -> list[dict[str, Any]]:
    """`ReceiverStore.stats` of the database at `path` without migrating or writing it."""
    if not Path(path).is_file():
        raise ReceiverStoreError(f"there is no receiver database at {path}; check --db")
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        rows = conn.execute(
            "SELECT terminal, epoch, count(*), max(seq) FROM events"
            " GROUP BY terminal, epoch ORDER BY terminal, epoch"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise ReceiverStoreError(f"{path} is not a receiver database ({exc})") from None
    finally:
        conn.close()
    return [{"terminal": t, "epoch": e, "events": n, "max_seq": m} for t, e, n, m in rows]


def _visit_of(data: str) -> object:
    """The `visit` of an event's data JSON (None when it has none)."""
    return json.loads(data).get("visit")

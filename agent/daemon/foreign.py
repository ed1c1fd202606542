"""Other terminals' events in the local store: ingest with durable cursors, reads for the feed
and for the plant-wide projections (docs/replication.md)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.daemon.store import BUSY_TIMEOUT_MS, CACHE_KIB, StoreError
from agent.domain.events import Event

_COLS = "terminal, epoch, seq, kind, at, mono_ns, boot, data"

# One event as served: terminal, epoch, seq, kind, at, mono_ns, boot, data (JSON text).
StreamRow = tuple[str, str, int, str, str, int, str, str]


@dataclass(frozen=True, slots=True)
class StreamHeld:
    """What a node holds of one origin stream: seqs `low`..`high` (0, 0 when none)."""

    terminal: str
    epoch: str
    low: int
    high: int


@dataclass(slots=True)
class Ingested:
    """What one ingest did: the events newly stored (in stream and seq order), the cursors
    after it, the conflicting events quarantined and the streams that stopped at a gap."""

    events: list[Event] = field(default_factory=list)
    cursors: dict[tuple[str, str], int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Whether two stored rows (kind, at, mono_ns, boot, data text) carry the same event."""
    return tuple(a[:4]) == tuple(b[:4]) and json.loads(a[4]) == json.loads(b[4])


def ingest(
    events: Sequence[Event],
    lows: dict[tuple[str, str], int],
    own: tuple[str, str],
    source: str,
    received_at: str,
) -> Callable[[sqlite3.Connection], Ingested]:
    """A Writer.call function storing foreign events and advancing their cursors in the same
    transaction.

    Per stream only the contiguous run after the cursor is stored: an event past a gap is
    left for the next pull (it is asked for again). `lows` gives, per stream, the lowest seq the
    source still holds: a cursor below it jumps to just before it (the older events were pruned
    at the source, under the same retention rules as here). An event already held with other
    content is quarantined, never stored over the first version. The own stream `own`
    (terminal, epoch) is never stored here.
    """

    def run(conn: sqlite3.Connection) -> Ingested:
        out = Ingested()
        by_stream: dict[tuple[str, str], list[Event]] = {}
        for ev in events:
            if (ev.terminal, ev.epoch) != own:
                by_stream.setdefault((ev.terminal, ev.epoch), []).append(ev)
        for stream in sorted(set(by_stream) | set(lows)):
            if stream == own:
                continue
            row = conn.execute(
                "SELECT through_seq FROM replica_cursors WHERE terminal = ? AND epoch = ?", stream
            ).fetchone()
            start = cur = int(row[0]) if row else 0
            low = lows.get(stream, 0)
            if low > cur + 1:
                cur = low - 1
            batch = sorted(by_stream.get(stream, []), key=lambda e: e.seq)
            rows = []
            for ev in batch:
                text = json.dumps(ev.data, ensure_ascii=False, separators=(",", ":"))
                new = (ev.kind, ev.at, ev.mono_ns, ev.boot, text)
                if ev.seq <= cur:
                    old = conn.execute(
                        "SELECT kind, at, mono_ns, boot, data FROM foreign_events"
                        " WHERE terminal = ? AND epoch = ? AND seq = ?",
                        (*stream, ev.seq),
                    ).fetchone()
                    if old is not None and not _same(old, new):
                        out.conflicts.append(ev.id)
                        conn.execute(
                            "INSERT INTO replica_quarantine (terminal, epoch, seq, source,"
                            " envelope, at) VALUES (?, ?, ?, ?, ?, ?)",
                            (*stream, ev.seq, source, ev.to_json(), received_at),
                        )
                    continue
                if ev.seq != cur + 1:
                    out.gaps.append(f"{ev.terminal}:{ev.epoch} after {cur}")
                    break
                rows.append((*stream, ev.seq, *new, received_at))
                out.events.append(ev)
                cur = ev.seq
            if rows:
                conn.executemany(
                    "INSERT INTO foreign_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
            if row is None or cur != start:
                conn.execute(
                    "INSERT INTO replica_cursors VALUES (?, ?, ?) ON CONFLICT (terminal, epoch)"
                    " DO UPDATE SET through_seq = excluded.through_seq",
                    (*stream, cur),
                )
            out.cursors[stream] = cur
        return out

    return run


def prune(before_at: str, limit: int) -> Callable[[sqlite3.Connection], int]:
    """A Writer.call function deleting up to `limit` foreign events stamped before `before_at`
    (the retention rule of the own events); cursors stay, so nothing is pulled again."""

    def run(conn: sqlite3.Connection) -> int:
        before = conn.total_changes
        conn.execute(
            "DELETE FROM foreign_events WHERE (terminal, epoch, seq) IN (SELECT terminal,"
            " epoch, seq FROM foreign_events WHERE at < ? ORDER BY at LIMIT ?)",
            (before_at, limit),
        )
        return conn.total_changes - before

    return run


CURSORS_SQL = "SELECT terminal, epoch, through_seq FROM replica_cursors"


def _cursor_map(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], int]:
    return {(t, e): int(s) for t, e, s in rows}


class LocalReader:
    """Read access to what this node holds of the plant: its own stream and foreign events.

    Thread-safe (one connection behind a lock); used by the feed and the projections.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a Tally database ({exc})") from None
        self.terminal: str = meta["terminal"]
        self.epoch: str = meta["epoch"]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def cursors(self) -> dict[tuple[str, str], int]:
        """Every foreign stream's through-seq."""
        return _cursor_map(self._all(CURSORS_SQL))

    def cursors_now(self) -> dict[tuple[str, str], int] | None:
        """`cursors` if the connection is free this moment, else None (the event loop asks
        this way, and hands the question to a thread when the feed is reading)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return _cursor_map(self._conn.execute(CURSORS_SQL).fetchall())
        finally:
            self._lock.release()

    def streams(self) -> list[StreamHeld]:
        """Every stream held here, the own one first."""
        low = self._all("SELECT min(seq) FROM events")[0][0]
        last = int(self._all("SELECT value FROM meta WHERE key = 'last_seq'")[0][0])
        out = [StreamHeld(self.terminal, self.epoch, int(low or last + 1), last)]
        rows = self._all(
            "SELECT c.terminal, c.epoch, c.through_seq, (SELECT min(seq) FROM foreign_events f"
            " WHERE f.terminal = c.terminal AND f.epoch = c.epoch) FROM replica_cursors c"
            " ORDER BY c.terminal, c.epoch"
        )
        out += [StreamHeld(t, e, int(lo or hi + 1), int(hi)) for t, e, hi, lo in rows]
        return out

    def rows_after(self, terminal: str, epoch: str, after: int, limit: int) -> list[StreamRow]:
        """Up to `limit` events of a stream with seq > `after`, in seq order, as stored."""
        if (terminal, epoch) == (self.terminal, self.epoch):
            rows = self._all(
                "SELECT seq, kind, at, mono_ns, boot, data FROM events WHERE seq > ?"
                " ORDER BY seq LIMIT ?",
                (after, limit),
            )
            return [(terminal, epoch, *r) for r in rows]
        rows = self._all(
            f"SELECT {_COLS} FROM foreign_events WHERE terminal = ? AND epoch = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (terminal, epoch, after, limit),
        )
        return [tuple(r) for r in rows]

    def foreign_events(
        self, *, prefixes: Sequence[str] = (), kinds: Sequence[str] = (), since_at: str = ""
    ) -> Iterator[Event]:
        """Foreign events of the given kind prefixes or kinds (neither: all), stamped at or
        after `since_at`, in (at, terminal, epoch, seq) order."""
        terms = ["kind LIKE ? ESCAPE '\\'"] * len(prefixes)
        if kinds:
            terms.append(f"kind IN ({', '.join('?' * len(kinds))})")
        params = (*(p.replace("_", "\\_") + ".%" for p in prefixes), *kinds, since_at)
        rows = self._all(
            f"SELECT {_COLS} FROM foreign_events WHERE ({' OR '.join(terms) or '1'})"
            " AND at >= ? ORDER BY at, terminal, epoch, seq",
            params,
        )
        for row in rows:
            yield Event.read(*row)

    def foreign_count(self) -> int:
        """How many foreign events are held."""
        return int(self._all("SELECT count(*) FROM foreign_events")[0][0])

    def quarantined(self) -> int:
        """How many conflicting foreign events were quarantined."""
        return int(self._all("SELECT count(*) FROM replica_quarantine")[0][0])

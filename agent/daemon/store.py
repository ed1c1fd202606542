"""The local event store: SQLite via sqlite-utils, WAL, migrations and a group-commit writer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.daemon import operator
from agent.domain import text_rules
from agent.domain.events import Event, Stamp, boot_id, format_at, new_epoch
from agent.domain.timeline import order_key
from agent.errors import InvalidInput, TallyError

log = logging.getLogger("tally.store")

BUSY_TIMEOUT_MS = 5000
# SQLite's own page cache per connection (its default is 2 MiB). A daemon holds several
# connections (writer, readers, the sender's, the plant's), and each filled its cache as the
# database grew past it: RSS rose for days before it was flat. The operating system caches the
# file anyway; the queries read recent rows by index.
CACHE_KIB = 512


class StoreError(TallyError):
    """The database cannot be used; the message says why and what to do."""


class DiskFullError(StoreError):
    """The database's file system is full; nothing was stored."""


def event_problem(kind: str, data: Any, state: dict[str, Any] | None = None) -> str | None:
    """Why an event cannot be stored (one sentence), or None; checked before it is queued."""
    if (
        not isinstance(kind, str)
        or not kind
        or text_rules.text_problem(kind, "kind", text_rules.FIELDS["kind"])
    ):
        return "the event kind must be a short one-line name"
    if not isinstance(data, dict):
        return "an event's data must be a JSON object"
    problem = text_rules.data_problem(data)
    if problem is None and state:
        problem = text_rules.request_problem({"state": state})
    return problem


# The migrations `_migrations` registers, in order. A database that has them all recorded is
# current, which plain SQL can tell: a daemon then never loads sqlite-utils (4.5 MiB of RSS,
# with click and dateutil, kept for the process's whole life).
MIGRATIONS = ("0001_events", "0002_dead_letters", "0003_foreign_events", "0004_events_at")


def _migrations() -> Any:
    from sqlite_utils import Migrations

    m = Migrations("tally")

    @m(name="0001_events")
    def _events(db: Any) -> None:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, at TEXT NOT NULL,"
            " mono_ns INTEGER NOT NULL, boot TEXT NOT NULL, data TEXT NOT NULL)"
        )
        db.execute("CREATE INDEX events_kind ON events (kind, seq)")
        db.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    @m(name="0002_dead_letters")
    def _dead(db: Any) -> None:
        db.execute(
            "CREATE TABLE dead_letters (seq INTEGER PRIMARY KEY, error TEXT NOT NULL,"
            " at TEXT NOT NULL)"
        )

    @m(name="0003_foreign_events")
    def _foreign(db: Any) -> None:
        # Other terminals' events, as they were written there (docs/replication.md).
        db.execute(
            "CREATE TABLE foreign_events (terminal TEXT NOT NULL, epoch TEXT NOT NULL,"
            " seq INTEGER NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,"
            " mono_ns INTEGER NOT NULL, boot TEXT NOT NULL, data TEXT NOT NULL,"
            " received_at TEXT NOT NULL, PRIMARY KEY (terminal, epoch, seq)) WITHOUT ROWID"
        )
        db.execute("CREATE INDEX foreign_events_at ON foreign_events (at)")
        db.execute("CREATE INDEX foreign_events_kind ON foreign_events (kind, at)")
        # Per origin stream: every seq up to through_seq is held (or was pruned at the source).
        db.execute(
            "CREATE TABLE replica_cursors (terminal TEXT NOT NULL, epoch TEXT NOT NULL,"
            " through_seq INTEGER NOT NULL, PRIMARY KEY (terminal, epoch)) WITHOUT ROWID"
        )
        # The same (terminal, epoch, seq) seen with other content: kept for a person to see.
        db.execute(
            "CREATE TABLE replica_quarantine (id INTEGER PRIMARY KEY, terminal TEXT NOT NULL,"
            " epoch TEXT NOT NULL, seq INTEGER NOT NULL, source TEXT NOT NULL,"
            " envelope TEXT NOT NULL, at TEXT NOT NULL)"
        )

    @m(name="0004_events_at")
    def _events_at(db: Any) -> None:
        # The plant timeline is read at start in (at, seq) order, a page at a time
        # (`Store.timeline_events`): without this index each page would sort the whole table.
        db.execute("CREATE INDEX events_at ON events (at)")

    return m


def _up_to_date(conn: sqlite3.Connection) -> bool:
    """Whether sqlite-utils' record of applied migrations (its `_sqlite_migrations` table) holds
    every one of `MIGRATIONS`; False when it cannot tell, and the migrations run as usual."""
    try:
        rows = conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = 'tally'"
        ).fetchall()
    except sqlite3.DatabaseError:
        return False
    return set(MIGRATIONS) <= {row[0] for row in rows}


def _connect(path: str, *, writer: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    if writer:
        conn.execute("PRAGMA journal_mode=WAL")
        # A weighbridge PC loses power: an acknowledged event must survive it.
        conn.execute("PRAGMA synchronous=FULL")
    return conn


def init_database(path: str, terminal: str) -> str:
    """Create or migrate the database at `path` for `terminal`; return its epoch.

    Raises StoreError when the file is not a Tally database, belongs to another terminal,
    or cannot be opened.
    """
    try:
        conn = _connect(path, writer=True)
        if not _up_to_date(conn):
            from sqlite_utils import Database

            _migrations().apply(Database(conn, execute_plugins=False))
        row = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        if row is None:
            epoch = new_epoch()
            with conn:
                conn.execute("INSERT INTO meta VALUES ('epoch', ?)", (epoch,))
                conn.execute("INSERT INTO meta VALUES ('terminal', ?)", (terminal,))
                conn.execute("INSERT INTO meta VALUES ('last_seq', '0')")
                conn.execute("INSERT INTO meta VALUES ('created', ?)", (format_at(Stamp.now().at),))
        else:
            epoch = row[0]
            owner = conn.execute("SELECT value FROM meta WHERE key='terminal'").fetchone()[0]
            if owner != terminal:
                raise StoreError(
                    f"the database {path} belongs to terminal {owner!r}, not {terminal!r}; "
                    "set terminal.id back or point terminal.database at a new file"
                )
        conn.close()
        return str(epoch)
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"cannot open the database {path} ({exc}); check the path and disk"
        ) from None


# A stored event as it is in the table: seq, kind, at, mono_ns, boot, data (JSON text).
StoredRow = tuple[int, str, str, int, str, str]
_COLUMNS = "seq, kind, at, mono_ns, boot, data"


def _row_event(terminal: str, epoch: str, row: tuple[Any, ...]) -> Event:
    seq, kind, at, mono_ns, boot, data = row
    return Event.read(terminal, epoch, seq, kind, at, mono_ns, boot, data)


class Store:
    """Read access to the event store (any number of readers beside the one writer)."""

    def __init__(self, path: str) -> None:
        if not Path(path).exists():
            raise StoreError(f"there is no database at {path}; start the daemon once to create it")
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = _connect(path, writer=False)
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a Tally database ({exc})") from None
        self.epoch: str = meta["epoch"]
        self.terminal: str = meta["terminal"]

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def last_seq(self) -> int:
        """The highest seq ever assigned in this database (0 when empty)."""
        return int(self._all("SELECT value FROM meta WHERE key='last_seq'")[0][0])

    def events_after(self, seq: int, limit: int = 1000, kind: str | None = None) -> list[Event]:
        """Up to `limit` events with seq > `seq`, in seq order, optionally by kind prefix."""
        if kind:
            rows = self._all(
                "SELECT seq, kind, at, mono_ns, boot, data FROM events"
                " WHERE seq > ? AND (kind = ? OR kind LIKE ? ESCAPE '\\') ORDER BY seq LIMIT ?",
                (seq, kind, _like_prefix(kind), limit),
            )
        else:
            rows = self._all(
                "SELECT seq, kind, at, mono_ns, boot, data FROM events"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            )
        return [_row_event(self.terminal, self.epoch, r) for r in rows]

    def iter_events(
        self, kind: str | None = None, after: int = 0, batch: int = 1000
    ) -> Iterator[Event]:
        """Every event after `after` (optionally by kind prefix), read in batches."""
        while True:
            chunk = self.events_after(after, batch, kind)
            yield from chunk
            if len(chunk) < batch:
                return
            after = chunk[-1].seq

    def count(self, kind: str | None = None) -> int:
        """How many events are stored (optionally of a kind prefix)."""
        if kind:
            sql = "SELECT count(*) FROM events WHERE kind = ? OR kind LIKE ? ESCAPE '\\'"
            return int(self._all(sql, (kind, _like_prefix(kind)))[0][0])
        return int(self._all("SELECT count(*) FROM events")[0][0])

    def get_state(self, key: str, default: Any = None) -> Any:
        """A value of the key-value state table, or `default`."""
        rows = self._all("SELECT value FROM state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def state_prefix(self, prefix: str) -> dict[str, Any]:
        """Every state entry whose key starts with `prefix`."""
        rows = self._all(
            "SELECT key, value FROM state WHERE key LIKE ? ESCAPE '\\'", (_like_prefix(prefix, ""),)
        )
        return {k: json.loads(v) for k, v in rows}

    def events_between(
        self,
        after: int,
        upto: int,
        *,
        prefixes: Sequence[str] = (),
        kinds: Sequence[str] = (),
        limit: int = 1000,
    ) -> list[Event]:
        """Up to `limit` events with `after` < seq <= `upto`, in seq order, whose kind starts
        with one of `prefixes` (a prefix "visit" takes "visit.*") or is one of `kinds` (neither:
        every kind)."""
        kind_sql, kind_params = _kind_filter(prefixes, kinds)
        rows = self._all(
            f"SELECT {_COLUMNS} FROM events WHERE seq > ? AND seq <= ? AND ({kind_sql})"
            " ORDER BY seq LIMIT ?",
            (after, upto, *kind_params, limit),
        )
        return [_row_event(self.terminal, self.epoch, r) for r in rows]

    def foreign_events(
        self, *, prefixes: Sequence[str] = (), kinds: Sequence[str] = (), since_at: str = ""
    ) -> list[Event]:
        """Other terminals' events held here (docs/replication.md) whose kind starts with one
        of `prefixes` or is one of `kinds` (neither: every kind), stamped at or after
        `since_at`, in (at, terminal, epoch, seq) order."""
        kind_sql, kind_params = _kind_filter(prefixes, kinds)
        return self._foreign(
            f"({kind_sql}) AND at >= ? ORDER BY at, terminal, epoch, seq", (*kind_params, since_at)
        )

    def timeline_events(
        self,
        *,
        prefixes: Sequence[str] = (),
        kinds: Sequence[str] = (),
        upto: int | None = None,
        foreign: bool = True,
        since_at: str = "",
        batch: int = 500,
    ) -> Iterator[Event]:
        """This terminal's events (up to seq `upto`) and, with `foreign`, the other terminals'
        held here, whose kind starts with one of `prefixes` or is one of `kinds`, stamped at or
        after `since_at`, merged in timeline order: (at, terminal, epoch, seq).

        Read a page at a time from each table, so that folding a long history holds one page of
        each, never the history (a list of 60 busy days cost a restarted daemon 50 MiB of RSS).
        """
        last = self.last_seq() if upto is None else upto
        own = self._own_in_time(prefixes, kinds, last, since_at, batch)
        if not foreign:
            return own
        theirs = self._foreign_in_time(prefixes, kinds, since_at, batch)
        return heapq.merge(own, theirs, key=order_key)

    def _own_in_time(
        self, prefixes: Sequence[str], kinds: Sequence[str], upto: int, since_at: str, batch: int
    ) -> Iterator[Event]:
        """This terminal's events up to seq `upto` in (at, seq) order, a page at a time."""
        kind_sql, kind_params = _kind_filter(prefixes, kinds)
        at, seq = since_at, 0
        while True:
            rows = self._all(
                f"SELECT {_COLUMNS} FROM events"
                " WHERE at >= ? AND (at > ? OR seq > ?) AND seq <= ?"
                f" AND ({kind_sql}) ORDER BY at, seq LIMIT ?",
                (at, at, seq, upto, *kind_params, batch),
            )
            yield from (_row_event(self.terminal, self.epoch, r) for r in rows)
            if len(rows) < batch:
                return
            seq, at = rows[-1][0], rows[-1][2]

    def _foreign_in_time(
        self, prefixes: Sequence[str], kinds: Sequence[str], since_at: str, batch: int
    ) -> Iterator[Event]:
        """The other terminals' events held here in timeline order, a page at a time."""
        kind_sql, kind_params = _kind_filter(prefixes, kinds)
        last: tuple[str, str, str, int] = (since_at, "", "", -1)
        while True:
            page = self._foreign(
                "at >= ? AND (at > ? OR (terminal, epoch, seq) > (?, ?, ?))"
                f" AND ({kind_sql}) ORDER BY at, terminal, epoch, seq LIMIT ?",
                (last[0], last[0], *last[1:], *kind_params, batch),
            )
            yield from page
            if len(page) < batch:
                return
            e = page[-1]
            last = (e.at, e.terminal, e.epoch, e.seq)

    def _foreign(self, where: str, params: tuple[Any, ...]) -> list[Event]:
        """Other terminals' events held here that match `where`."""
        try:
            rows = self._all(
                "SELECT terminal, epoch, seq, kind, at, mono_ns, boot, data FROM foreign_events"
                f" WHERE {where}",
                params,
            )
        except sqlite3.OperationalError:
            return []  # a database the daemon has not migrated yet holds none
        return [Event.read(*row) for row in rows]

    def events_since(self, kind: str, at: str) -> list[Event]:
        """Every event of exactly `kind` stamped at or after `at` (a stored UTC time), by seq."""
        rows = self._all(
            f"SELECT {_COLUMNS} FROM events WHERE kind = ? AND at >= ? ORDER BY seq", (kind, at)
        )
        return [_row_event(self.terminal, self.epoch, r) for r in rows]

    def last_event(self, kind: str, *, scale: str | None = None) -> Event | None:
        """The newest event of exactly `kind` (with `scale`: whose data names that scale)."""
        if scale is None:
            rows = self._all(
                f"SELECT {_COLUMNS} FROM events WHERE kind = ? ORDER BY seq DESC LIMIT 1", (kind,)
            )
        else:
            rows = self._all(
                f"SELECT {_COLUMNS} FROM events WHERE kind = ?"
                " AND json_extract(data, '$.scale') = ? ORDER BY seq DESC LIMIT 1",
                (kind, scale),
            )
        return _row_event(self.terminal, self.epoch, rows[0]) if rows else None

    def event(self, event_id: str) -> Event | None:
        """The event with id `terminal:epoch:seq`, this terminal's or another's held here; None
        when it is not stored here (never was, or retention deleted it)."""
        terminal, _, rest = event_id.partition(":")
        epoch, _, seq_text = rest.partition(":")
        if not seq_text.isdigit():
            return None
        seq = int(seq_text)
        if (terminal, epoch) == (self.terminal, self.epoch):
            rows = self._all(f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (seq,))
            return _row_event(self.terminal, self.epoch, rows[0]) if rows else None
        held = self._foreign("terminal = ? AND epoch = ? AND seq = ?", (terminal, epoch, seq))
        return held[0] if held else None

    def events_naming(self, kind: str, key: str, value: str) -> list[Event]:
        """Every event of exactly `kind` whose data has `value` at `key`, this terminal's and
        the others' held here (few: the corrections of one event, say)."""
        path = f"$.{key}"
        rows = self._all(
            f"SELECT {_COLUMNS} FROM events WHERE kind = ? AND json_extract(data, ?) = ?"
            " ORDER BY seq",
            (kind, path, value),
        )
        mine = [_row_event(self.terminal, self.epoch, r) for r in rows]
        return mine + self._foreign("kind = ? AND json_extract(data, ?) = ?", (kind, path, value))

    def rows_after(self, seq: int, limit: int) -> list[StoredRow]:
        """Up to `limit` events after `seq` as stored (data as JSON text), for sending on."""
        rows = self._all(
            f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def oldest_seq(self) -> int | None:
        """The lowest seq still stored (None when every event was pruned or none was written)."""
        value = self._all("SELECT min(seq) FROM events")[0][0]
        return None if value is None else int(value)

    def first_at_after(self, seq: int) -> str | None:
        """When the first event after `seq` happened (its stored UTC time), if there is one."""
        rows = self._all("SELECT at FROM events WHERE seq > ? ORDER BY seq LIMIT 1", (seq,))
        return str(rows[0][0]) if rows else None

    def seqs_before(self, upto: int, at: str, limit: int, *, after: int = 0) -> list[int]:
        """Up to `limit` seqs in (`after`, `upto`] of events stamped before `at`, oldest first,
        never a dead letter (the server refused it; it is kept for a person to see)."""
        rows = self._all(
            "SELECT seq FROM events WHERE seq > ? AND seq <= ? AND at < ?"
            " AND seq NOT IN (SELECT seq FROM dead_letters) ORDER BY seq LIMIT ?",
            (after, upto, at, limit),
        )
        return [int(r[0]) for r in rows]

    def dead_letter_count(self) -> int:
        """How many events the server refused for good."""
        return int(self._all("SELECT count(*) FROM dead_letters")[0][0])

    def dead_letters(self, limit: int) -> list[tuple[int, str | None, str, str]]:
        """The newest dead letters: (seq, the event's kind if still stored, error, when)."""
        rows = self._all(
            "SELECT d.seq, e.kind, d.error, d.at FROM dead_letters d"
            " LEFT JOIN events e ON e.seq = d.seq ORDER BY d.seq DESC LIMIT ?",
            (limit,),
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query (for tests and ad-hoc inspection; code uses the typed reads)."""
        return self._all(sql, params)

    def integrity_ok(self) -> bool:
        """Whether PRAGMA integrity_check says ok."""
        return bool(self._all("PRAGMA integrity_check")[0][0] == "ok")


def _kind_filter(prefixes: Sequence[str], kinds: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """An SQL condition (and its parameters) for a kind that starts with one of `prefixes`
    (a prefix "visit" takes "visit.*") or is one of `kinds`; neither: every kind."""
    terms = ["kind LIKE ? ESCAPE '\\'"] * len(prefixes)
    if kinds:
        terms.append(f"kind IN ({', '.join('?' * len(kinds))})")
    return " OR ".join(terms) or "1", (*(_like_prefix(p) for p in prefixes), *kinds)


def _like_prefix(prefix: str, sep: str = ".") -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + sep + "%" if sep else escaped + "%"


@dataclass(slots=True)
class _Append:
    kind: str
    data: dict[str, Any]
    stamp: Stamp
    state: dict[str, Any] | None
    future: concurrent.futures.Future[Event] = field(default_factory=concurrent.futures.Future)


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


_STOP = object()


def _settle_result(future: concurrent.futures.Future[Any], value: Any) -> None:
    """Give a waiter its answer, unless it stopped waiting (a cancelled future must not stop the
    writer thread: the event is committed either way)."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_result(value)


def _settle_exception(future: concurrent.futures.Future[Any], exc: BaseException) -> None:
    """Give a waiter its error, unless it stopped waiting."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        future.set_exception(exc)


class Writer:
    """The one writer of the database: group-commits appends on its own thread.

    Callers hand events over with `append` (async) or `submit` (from any thread); whatever
    has gathered while the previous commit was syncing goes into the next transaction. A
    future resolves only after its transaction committed. When the disk is full the batch is
    retried until space returns (nothing is acknowledged meanwhile); any other database
    error fails the batch and marks the writer `failed`.
    """

    def __init__(self, path: str, terminal: str, *, max_batch: int = 2000) -> None:
        self.path = path
        self.terminal = terminal
        self.epoch = init_database(path, terminal)
        self.boot = boot_id()
        self.max_batch = max_batch
        self.disk_full = False
        self.failed: BaseException | None = None
        self.listeners: list[Callable[[list[Event]], None]] = []
        # called on the writer thread once, when the writer fails (`failed` is set by then)
        self.failure_listeners: list[Callable[[], None]] = []
        # called on the writer thread when the disk fills up (True) or has space again (False)
        self.disk_listeners: list[Callable[[bool], None]] = []
        self.commits = 0
        # the disk-full backoff waits on this (never set) rather than time.sleep, whose
        # absolute-deadline clock_nanosleep libfaketime 0.9.10 breaks (the soak's clock steps)
        self._backoff = threading.Event()
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._conn = _connect(path, writer=True)
        self._conn.isolation_level = None  # explicit BEGIN/COMMIT
        self._next = (
            int(self._conn.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]) + 1
        )
        self._thread = threading.Thread(target=self._loop, name="tally-writer", daemon=True)
        self._thread.start()

    @property
    def last_seq(self) -> int:
        """The highest committed seq."""
        return self._next - 1

    def submit(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        stamp: Stamp | None = None,
        state: dict[str, Any] | None = None,
    ) -> concurrent.futures.Future[Event]:
        """Queue one event (and optional state updates committed with it) from any thread.

        An event that breaks the input rule resolves to InvalidInput at once and is not queued.
        """
        data = operator.stamp(kind, data)
        item = _Append(kind, data, stamp or Stamp.now(), state)
        problem = event_problem(kind, data, state)
        if problem is not None:
            log.warning("refused a %s event: %s", text_rules.show(str(kind)), problem)
            _settle_exception(item.future, InvalidInput(problem))
        elif self.failed is not None:
            _settle_exception(item.future, StoreError(f"the store has failed: {self.failed}"))
        else:
            self._q.put(item)
        return item.future

    async def append(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        stamp: Stamp | None = None,
        state: dict[str, Any] | None = None,
    ) -> Event:
        """Append one event and return it once its transaction has committed."""
        return await asyncio.wrap_future(self.submit(kind, data, stamp=stamp, state=state))

    def append_sync(self, kind: str, data: dict[str, Any], **kw: Any) -> Event:
        """Blocking `append` for threads and scripts."""
        return self.submit(kind, data, **kw).result()

    def call(self, fn: Callable[[sqlite3.Connection], Any]) -> concurrent.futures.Future[Any]:
        """Run `fn(conn)` in its own transaction on the writer thread (for non-event writes)."""
        item = _Call(fn)
        self._q.put(item)
        return item.future

    async def run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Async form of `call`."""
        return await asyncio.wrap_future(self.call(fn))

    def close(self, timeout: float = 10.0) -> None:
        """Commit whatever is queued, then stop the thread and close the connection."""
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join(timeout)
        self._conn.close()

    # --- the writer thread ---------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            first = self._q.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            # From here a caller can no longer cancel; one cancelled earlier is still written.
            for b in batch:
                b.future.set_running_or_notify_cancel()
            appends = [b for b in batch if isinstance(b, _Append) and _encodable(b)]
            if appends:
                self._commit_appends(appends)
            for b in batch:
                if isinstance(b, _Call):
                    self._run_call(b)
            if stop:
                return

    def _commit_appends(self, items: list[_Append]) -> None:
        delay = 0.2
        while True:
            if self.failed is not None:
                for it in items:
                    _settle_exception(it.future, StoreError(f"the store has failed: {self.failed}"))
                return
            try:
                events = self._write(items)
            except sqlite3.OperationalError as exc:
                if _is_full(exc):
                    if not self.disk_full:
                        log.error("disk full: holding %d events until space returns", len(items))
                    self._set_disk_full(True)
                    self._backoff.wait(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                self._fail(exc, items)
                return
            except Exception as exc:
                self._fail(exc, items)
                return
            self._set_disk_full(False)
            self.commits += 1
            for it, ev in zip(items, events, strict=True):
                _settle_result(it.future, ev)
            for listener in self.listeners:
                try:
                    listener(events)
                except Exception:
                    log.exception("event listener failed")
            return

    def _write(self, items: list[_Append]) -> list[Event]:
        conn = self._conn
        seq = self._next
        events: list[Event] = []
        rows: list[tuple[Any, ...]] = []
        for it in items:
            ev = Event(
                self.terminal,
                self.epoch,
                seq,
                it.kind,
                format_at(it.stamp.at),
                it.stamp.mono_ns,
                self.boot,
                it.data,
            )
            events.append(ev)
            rows.append(
                (seq, it.kind, ev.at, ev.mono_ns, ev.boot, json.dumps(it.data, ensure_ascii=False))
            )
            seq += 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(seq - 1),))
            for it in items:
                if it.state:
                    conn.executemany(
                        "INSERT INTO state VALUES (?, ?) ON CONFLICT(key) DO UPDATE"
                        " SET value = excluded.value",
                        [(k, json.dumps(v, ensure_ascii=False)) for k, v in it.state.items()],
                    )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._next = seq
        return events

    def _run_call(self, item: _Call) -> None:
        if item.future.cancelled():
            return  # nobody waits for what it would return
        conn = self._conn
        delay = 0.2
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = item.fn(conn)
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if _is_full(exc):
                    self._set_disk_full(True)
                    self._backoff.wait(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                _settle_exception(item.future, exc)
                return
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                _settle_exception(item.future, exc)
                return
            self._set_disk_full(False)
            _settle_result(item.future, result)
            return

    def _set_disk_full(self, full: bool) -> None:
        """Note whether the disk is full; tell the disk listeners when that changes."""
        if full == self.disk_full:
            return
        if not full:
            log.warning("disk has space again; writing resumed")
        self.disk_full = full
        for listener in self.disk_listeners:
            listener(full)

    def _fail(self, exc: BaseException, items: list[_Append]) -> None:
        log.error("store failed: %s", exc)
        self.failed = exc
        for it in items:
            _settle_exception(it.future, StoreError(f"the store has failed: {exc}"))
        for listener in self.failure_listeners:
            try:
                listener()
            except Exception:
                log.exception("store failure listener failed")


def _encodable(item: _Append) -> bool:
    """Whether an item's row can be written; otherwise its future fails alone (not the batch)."""
    try:
        text = json.dumps(item.data, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
        item.kind.encode("utf-8")
        for k, v in (item.state or {}).items():
            k.encode("utf-8")
            json.dumps(v, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, AttributeError) as exc:  # UnicodeEncodeError is a ValueError
        log.error("refused an event that cannot be stored: %s", exc.__class__.__name__)
        _settle_exception(
            item.future, InvalidInput(f"the event cannot be stored ({exc.__class__.__name__})")
        )
        return False
    return True


def _is_full(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "full" in str(exc).lower()


def delete_acknowledged(seqs: Sequence[int], acked_key: str) -> Callable[[sqlite3.Connection], int]:
    """A Writer.call function deleting these events; it returns how many it deleted.

    Checked again inside the write: an event above the seq in state `acked_key` (the server's
    acknowledgement) is never deleted, nor a dead letter.
    """

    def delete(conn: sqlite3.Connection) -> int:
        before = conn.total_changes
        conn.executemany(
            "DELETE FROM events WHERE seq = ? AND seq <= (SELECT CAST(value AS INTEGER)"
            " FROM state WHERE key = ?) AND seq NOT IN (SELECT seq FROM dead_letters)",
            [(seq, acked_key) for seq in seqs],
        )
        return conn.total_changes - before

    return delete


def set_state(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    """Upsert key-value state inside a writer `call`."""
    conn.executemany(
        "INSERT INTO state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [(k, json.dumps(v, ensure_ascii=False)) for k, v in values.items()],
    )

"""The local event store: SQLite via sqlite-utils, WAL, migrations and a group-commit writer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.domain.events import Event, Stamp, boot_id, format_at, new_epoch

log = logging.getLogger("tally.store")

BUSY_TIMEOUT_MS = 5000


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


class DiskFullError(StoreError):
    """The database's file system is full; nothing was stored."""


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

    return m


def _connect(path: str, *, writer: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
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
    from sqlite_utils import Database

    try:
        conn = _connect(path, writer=True)
        db = Database(conn, execute_plugins=False)
        _migrations().apply(db)
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


def _row_event(terminal: str, epoch: str, row: tuple[Any, ...]) -> Event:
    seq, kind, at, mono_ns, boot, data = row
    return Event(terminal, epoch, seq, kind, at, mono_ns, boot, json.loads(data))


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

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query (for status views)."""
        return self._all(sql, params)

    def integrity_ok(self) -> bool:
        """Whether PRAGMA integrity_check says ok."""
        return bool(self._all("PRAGMA integrity_check")[0][0] == "ok")


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
        self.commits = 0
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
        """Queue one event (and optional state updates committed with it) from any thread."""
        item = _Append(kind, data, stamp or Stamp.now(), state)
        if self.failed is not None:
            item.future.set_exception(StoreError(f"the store has failed: {self.failed}"))
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
            # From here a caller can no longer cancel (a task cancelled while it waits would
            # make set_result raise and end this thread); one cancelled earlier is still written.
            for b in batch:
                b.future.set_running_or_notify_cancel()
            appends = [b for b in batch if isinstance(b, _Append)]
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
                    if not it.future.cancelled():
                        it.future.set_exception(StoreError(f"the store has failed: {self.failed}"))
                return
            try:
                events = self._write(items)
            except sqlite3.OperationalError as exc:
                if _is_full(exc):
                    if not self.disk_full:
                        log.error("disk full: holding %d events until space returns", len(items))
                    self.disk_full = True
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                self._fail(exc, items)
                return
            except Exception as exc:
                self._fail(exc, items)
                return
            if self.disk_full:
                log.warning("disk has space again; writing resumed")
            self.disk_full = False
            self.commits += 1
            for it, ev in zip(items, events, strict=True):
                if not it.future.cancelled():
                    it.future.set_result(ev)
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
                    self.disk_full = True
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                item.future.set_exception(exc)
                return
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                item.future.set_exception(exc)
                return
            if self.disk_full:
                log.warning("disk has space again; writing resumed")
            self.disk_full = False
            item.future.set_result(result)
            return

    def _fail(self, exc: BaseException, items: list[_Append]) -> None:
        log.error("store failed: %s", exc)
        self.failed = exc
        for it in items:
            if not it.future.cancelled():
                it.future.set_exception(StoreError(f"the store has failed: {exc}"))


def _is_full(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "full" in str(exc).lower()


def set_state(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    """Upsert key-value state inside a writer `call`."""
    conn.executemany(
        "INSERT INTO state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [(k, json.dumps(v, ensure_ascii=False)) for k, v in values.items()],
    )

"""The receiver's storage engines behind one interface: SQLite (a file) or PostgreSQL (a URL)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from agent.domain.events import Event
from sync.protocol import Rejection, Row
from sync.receiver.days import revision_span, touched_days
from sync.receiver.store import Ingested

__all__ = ["ReceiverDb", "StoreUnavailable", "open_db", "revision_span", "touched_days"]


class StoreUnavailable(Exception):
    """The database cannot take the batch right now (disk full, server down): answer 503."""


class ReceiverDb(Protocol):
    """What the receiver's app and reports need from a database."""

    @property
    def version(self) -> int:
        """Changes whenever an ingest stored something (in any process on the same database)."""
        ...

    def ingest(
        self,
        terminal: str,
        epoch: str,
        rows: Sequence[Row],
        rejected: Sequence[Rejection],
        key: str,
        now: datetime | None = None,
    ) -> Ingested:
        """Store one stream's batch once; return the stream's acked-through seq."""
        ...

    def acked_through(self, terminal: str, epoch: str) -> int:
        """The stream's acknowledged-through seq."""
        ...

    def stats(self) -> list[dict[str, Any]]:
        """Per stream: terminal, epoch, events stored and the highest seq stored."""
        ...

    def streams(self) -> list[dict[str, Any]]:
        """Per stream: terminal, epoch, acked_through, max_seq (stored or rejected), missing
        (seqs below it not yet received) and last_at (its last request's time, or None)."""
        ...

    def marks(self) -> list[tuple[str, str, int, int]]:
        """Every stream stored: (terminal, epoch, lowest seq, highest seq), for the pull feed."""
        ...

    def rows_after(
        self, terminal: str, epoch: str, after: int, limit: int
    ) -> list[tuple[str, str, int, str, str, int, str, str]]:
        """Up to `limit` stored events of a stream with seq > `after`, in seq order."""
        ...

    def day_events(
        self,
        start_at: str,
        end_at: str,
        lookback_at: str,
        plan_days: tuple[str, str] | None = None,
    ) -> list[Event]:
        """The events a day's KPIs need, read through indexes, with the plans of the
        plant-local days `plan_days` (first, last) whenever they were entered."""
        ...

    def revision(self, first: date, last: date) -> int:
        """A number that grows whenever an event touching UTC days first..last is stored."""
        ...

    def cached_report(self, day: str, zone: str, scope: str) -> tuple[int, str] | None:
        """(revision, report JSON) of a day's report computed earlier, or None."""
        ...

    def save_report(self, day: str, zone: str, scope: str, rev: int, report: str) -> None:
        """Keep a day's report computed at revision `rev`."""
        ...

    def iter_events(self, before_at: str | None = None, batch: int = 2000) -> Iterator[Event]:
        """Every stored event in time order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def is_postgres(db: str) -> bool:
    """Whether `--db` names a PostgreSQL database rather than a SQLite file."""
    return db.startswith(("postgresql://", "postgres://"))


def open_db(db: str) -> ReceiverDb:
    """The receiver's database: PostgreSQL for a postgresql:// URL, else a SQLite file."""
    if is_postgres(db):
        from sync.receiver.pg import PgReceiverStore

        return PgReceiverStore(db)
    from sync.receiver.store import ReceiverStore

    return ReceiverStore(db)


def read_stats(db: str) -> list[dict[str, Any]]:
    """Per stream counts of a receiver database, without writing it."""
    if is_postgres(db):
        from sync.receiver.pg import PgReceiverStore

        store = PgReceiverStore(db, migrate=False)
        try:
            return store.stats()
        finally:
            store.close()
    from sync.receiver import store as sqlite_store

    return sqlite_store.read_stats(db)


def read_events(db: str) -> Iterator[Event]:
    """Every event of a receiver database in time order, without writing it (exports)."""
    if is_postgres(db):
        from sync.receiver.pg import PgReceiverStore

        def events() -> Iterator[Event]:
            store = PgReceiverStore(db, migrate=False)
            try:
                yield from store.iter_events()
            finally:
                store.close()

        return events()
    from sync.receiver import store as sqlite_store

    return sqlite_store.read_events(db)

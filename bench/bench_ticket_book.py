"""The daemon's ticket book over a quarter of a busy weighbridge: memory held, bounded and not.

Folds 90 days of 300 tickets (each issued and printed, as the daemon folds them from its store)
into a book without a bound and into one bounded at `KEEP_TICKETS`, and prints the Python memory
each holds (tracemalloc) and the time to fold them (a daemon's start).
"""

from __future__ import annotations

import time
import tracemalloc

from agent.domain.events import Event
from agent.domain.tickets import KEEP_TICKETS, PRINTED, Ticket, TicketBook
from bench.common import Row

DAYS = 90
PER_DAY = 300


def _events() -> list[Event]:
    out: list[Event] = []
    seq = 0
    for day in range(DAYS):
        date = f"2026-{9 + day // 30:02d}-{1 + day % 30:02d}"
        for serial in range(1, PER_DAY + 1):
            n = day * PER_DAY + serial
            t = Ticket(
                number=f"wb1-{date.replace('-', '')}-{serial:04d}", serial=serial, day=date,
                visit=f"0193a1b2-c3d4-7e5f-8a9b-{n:012d}", weighing=f"0193a1b2-c3d4-7e5f-9a9b-{n:012d}",
                plate=f"苏A{n % 3000:05d}", order=f"SO{n}", product="P.O 42.5", load="bulk",
                tare_kg=15000, tare_at=f"{date}T01:02:03.456Z", gross_kg=45000,
                gross_at=f"{date}T01:32:03.456Z", net_kg=30000, scale="scale1", seals=("S1", "S2"),
                operator="张三",
            )  # fmt: skip
            seq += 2
            at = f"{date}T01:33:03.456Z"
            issued = Event("wb1", "e", seq - 1, "ticket.issued", at, 0, "b", t.data(print_it=True))
            out.append(issued)
            # the printed event names the issued event, which asked for the print, as its job
            printed = {"number": t.number, "job": issued.id, "copy": 0, "printer": "p1", "ref": ""}
            out.append(Event("wb1", "e", seq, PRINTED, at, 0, "b", printed))
    return out


def _fold(events: list[Event], keep: int | None) -> tuple[float, float, int]:
    started = time.perf_counter()
    book = TicketBook(keep=keep)
    for ev in events:
        book.apply(ev)
    took = time.perf_counter() - started
    del book
    tracemalloc.start()  # a second fold, measured: tracemalloc slows every allocation
    book = TicketBook(keep=keep)
    for ev in events:
        book.apply(ev)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / 1048576, took, len(book.tickets)


def run() -> list[Row]:
    """Both books, the same events."""
    events = _events()
    rows: list[Row] = []
    for label, keep in (("unbounded", None), (f"kept {KEEP_TICKETS}", KEEP_TICKETS)):
        mib, took, held = _fold(events, keep)
        rows.append(Row(f"ticket book, {DAYS} days x {PER_DAY}, {label}: tickets held", held, ""))
        rows.append(Row(f"ticket book, {DAYS} days x {PER_DAY}, {label}: memory", mib, "MiB"))
        rows.append(Row(f"ticket book, {DAYS} days x {PER_DAY}, {label}: fold", took, "s"))
    return rows

"""The tickets service: issues a weigh ticket (磅单) when a visit's net is known or on demand,
and prints each owed ticket exactly once, waiting (with an alert) while the printer is away.

Printing is at least once across a crash: a ticket printed in the instant before a power cut,
whose `ticket.printed` was not yet stored, prints again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import Config, PrinterConfig
from agent.daemon.api import CommandError
from agent.daemon.runtime import Context, Service
from agent.daemon.store import Store
from agent.domain import tickets, visit_checks
from agent.domain.events import Event, Stamp
from agent.domain.kinds import Kind
from agent.domain.tickets import Ticket, TicketBook, TicketRefused
from agent.domain.visit import VisitState
from agent.domain.visit_inputs import Refusal
from agent.domain.visit_projection import Projection
from drivers.printers import Printer, PrinterOffline
from drivers.ticks import next_tick

log = logging.getLogger("tally.tickets")

ALERT = "printer_offline"
# Closed visits the service's own visit projection keeps (the plant timeline keeps 1,000): about
# a shift of a busy weighbridge, at some 7 KiB a visit.
KEEP_CLOSED_VISITS = 100
# Rows read a page at a time at start. Pages of 5,000 rows, read after weeks of history, raised
# a restarted daemon's RSS by 3.7 MiB for good (Python keeps the space for its next objects).
SYNC_PAGE = 500
LOOK_S = 5.0  # the service looks for events appended around it (a peer's, a test's) this often
_SQL = (
    "SELECT seq, kind, at, mono_ns, boot, data FROM events WHERE seq > ? AND ("
    "kind LIKE 'visit.%' OR kind IN ('weighing.captured', 'operator.corrected')"
    " OR kind LIKE 'ticket.%') ORDER BY seq LIMIT ?"
)
# Every ticket.* event of the tickets whose ticket.issued has the value at a JSON path.
# `kind IN (...)`, not LIKE: each side reads only its kinds through the events_kind index.
_RECALL = (
    "SELECT seq, kind, at, mono_ns, boot, data FROM events WHERE kind IN ('ticket.issued',"
    " 'ticket.print_requested', 'ticket.reprinted', 'ticket.printed') AND seq <= ?"
    " AND json_extract(data, '$.number') IN (SELECT json_extract(data, '$.number') FROM events"
    " WHERE kind = 'ticket.issued' AND json_extract(data, ?) = ?) ORDER BY seq"
)


def _read_back(database: str, upto: int, key: str, value: str) -> list[tuple[Any, ...]]:
    """The `_RECALL` rows, on a connection of their own (run on a thread)."""
    store = Store(database)
    try:
        return store.query(_RECALL, (upto, f"$.{key}", value))
    finally:
        store.close()


def make_printer(p: PrinterConfig, font: str = "") -> Printer:
    """The driver of one configured printer."""
    if p.kind == "escpos":
        from drivers.printers.escpos import EscposPrinter

        return EscposPrinter(p.name, p.device, p.columns, p.baudrate)
    from drivers.printers.cups import CupsPrinter

    return CupsPrinter(p.name, p.queue, p.paper, font, p.server)


def configured_printer(config: Config) -> Printer | None:
    """The printer `[tickets] printer` names, or None."""
    for p in config.printers:
        if p.name == config.tickets.printer:
            return make_printer(p, config.tickets.font)
    return None


class TicketsService:
    """Issues tickets, serves `ticket.print|reprint|show` and drives the printer queue."""

    name = "tickets"

    def __init__(self, ctx: Context, printer: Printer | None = None) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.tickets
        self.tz = ZoneInfo(ctx.config.terminal.timezone)
        self.terminal = ctx.config.terminal.id
        self.printer = printer if printer is not None else configured_printer(ctx.config)
        # Every gross weighing gets its ticket within moments, so only the visits of the last
        # hours can still need one; an older visit's ticket is in the book or the store.
        # every visit held stays an object: a ticket due is looked for among them all (`_due`)
        self.proj = Projection(
            ctx.config.kpi,
            tz=self.tz,
            keep_closed=KEEP_CLOSED_VISITS,
            settle_after=None,
        )
        self.book = TicketBook(keep=tickets.KEEP_TICKETS)
        self.seq = 0
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.print_wake = asyncio.Event()
        self._sync()
        # Gross weighings after this get a ticket by themselves: after the newest one that has
        # a ticket (a crash may have left some without), else from now on (no tickets for the
        # weighings of a database older than tickets).
        self.since = self.book.last_weighed_seq or ctx.store.last_seq()
        ctx.hub.event_listeners.append(self._on_events)
        ctx.api.register("ticket.print", self._print)
        ctx.api.register("ticket.reprint", self._reprint)
        ctx.api.register("ticket.show", self._show)

    # --- folding -------------------------------------------------------------------------------

    def _sync(self) -> None:
        """Fold in everything the store has beyond what this service has seen (one fold for
        visits, the projection's own, and one for the ticket book)."""
        store = self.ctx.store
        while True:
            rows = store.query(_SQL, (self.seq, SYNC_PAGE))
            for seq, kind, at, mono_ns, boot, data in rows:
                ev = Event.read(store.terminal, store.epoch, seq, kind, at, mono_ns, boot, data)
                if kind.startswith("ticket."):
                    self.book.apply(ev)
                else:
                    self.proj.apply(ev)
                self.seq = seq
            if len(rows) < SYNC_PAGE:
                return

    async def _recall(self, key: str, value: str) -> None:
        """Read back from the store the tickets the book forgot whose `key` (number, weighing,
        visit or day) is `value`; nothing when the book has forgotten none (call under the lock,
        after `_sync`). The query reads every ticket of the store (half a second at 90 days of
        a busy weighbridge), so it runs on a thread with a connection of its own."""
        if not (self.book.forgotten_seq and value):
            return
        held = set(self.book.tickets)
        rows = await asyncio.to_thread(
            _read_back, self.ctx.config.terminal.database, self.seq, key, value
        )
        store = self.ctx.store
        # All of them are held until the next ticket is issued or printed (a day's at most), so
        # reading back a day does not forget what it read back first.
        keep, self.book.keep = self.book.keep, None
        try:
            for seq, kind, at, mono_ns, boot, data in rows:
                d = json.loads(data)
                if d.get("number") not in held:  # a held ticket has all its events already
                    self.book.apply(
                        Event.shared(store.terminal, store.epoch, seq, kind, at, mono_ns, boot, d)
                    )
        finally:
            self.book.keep = keep

    def _may_be_forgotten(self, weighing: str, owner: VisitState | None = None) -> bool:
        """Whether the ticket of `weighing` (of visit `owner`, if known), if it has one, may be
        one the book forgot: not for a weighing newer than every forgotten ticket's."""
        if not self.book.forgotten_seq or weighing in self.book.by_weighing:
            return False
        if owner is None:
            owner = self.proj.visits.get(self.proj.assigned.get(weighing, ""))
        if owner is None:
            return True  # a single weighing's ticket records no seq: look
        return self._weighed_seq(owner, weighing) <= self.book.forgotten_seq

    def _on_events(self, events: list[Event]) -> None:
        if any(ev.kind.startswith(("visit.", "ticket.")) for ev in events):
            self.wake.set()

    # --- issuing -------------------------------------------------------------------------------

    def _weighed_seq(self, v: VisitState, weighing: str) -> int:
        for _, ev in v.events:
            if ev.kind == "visit.weighed" and ev.data.get("weighing") == weighing:
                return ev.seq
        return 0

    def _due(self) -> list[VisitState]:
        """Visits whose gross weighing (after `since`) has no ticket yet."""
        since = max(self.since, self.book.forgotten_seq)  # a forgotten ticket's visit is done
        due = []
        for v in self.proj.visits.values():
            gross = v.last("gross")
            if gross is None or v.cancelled is not None or gross.weighing in self.book.by_weighing:
                continue
            if self._weighed_seq(v, gross.weighing) > since:
                due.append(v)
        return due

    async def _issue(
        self, fields: dict[str, Any], *, print_it: bool, operator: str, weighed_seq: int = 0
    ) -> Ticket:
        """Append the `ticket.issued` event of the next number of today (call under the lock)."""
        stamp = Stamp.now()
        day = tickets.local_day(stamp.at, self.tz)
        serial = self.book.next_serial(day)
        t = Ticket(
            number=tickets.ticket_number(self.terminal, day, serial),
            serial=serial,
            day=day.isoformat(),
            operator=operator,
            **fields,
        )
        data = t.data(print_it=print_it, weighed_seq=weighed_seq)
        await self.ctx.writer.append(Kind.TICKET_ISSUED, data, stamp=stamp)
        self._sync()
        if print_it:
            self.print_wake.set()
        log.info("issued ticket %s for %s", t.number, t.plate or t.weighing)
        return self.book.tickets[t.number]

    async def _issue_due(self) -> None:
        async with self.lock:
            self._sync()
            auto = self.cfg.auto_print and self.printer is not None
            for v in self._due():
                fields = tickets.from_visit(
                    v, visit_checks.checks(v, self.proj.kpi, self.proj.tare_history)
                )
                seq = self._weighed_seq(v, fields["weighing"])
                await self._issue(fields, print_it=auto, operator="", weighed_seq=seq)

    # --- the local API -------------------------------------------------------------------------

    def _operator(self, req: dict[str, Any]) -> str:
        operator = req.get("operator", "")
        if not isinstance(operator, str) or len(operator) > 64:
            raise CommandError("operator must be a name of at most 64 characters")
        return operator.strip()

    def _need_printer(self) -> None:
        if self.printer is None:
            raise CommandError(
                "no printer is configured; add a [[printer]] and name it in [tickets] printer"
            )

    async def _target(self, req: dict[str, Any]) -> tuple[Ticket | None, dict[str, Any] | None]:
        """The existing ticket a request names, or the fields of the ticket to issue."""
        number, weighing = req.get("number"), req.get("weighing")
        if number:
            await self._recall_named(req)
            return self.book.find(number=str(number)), None
        if weighing:
            w = str(weighing)
            if self._may_be_forgotten(w):
                await self._recall("weighing", w)
            if w in self.book.by_weighing:
                return self.book.tickets[self.book.by_weighing[w]], None
            if w in self.proj.unassigned:
                return None, tickets.from_capture(self.proj.unassigned[w])
            owner = self.proj.assigned.get(w)
            if owner is None:
                raise TicketRefused(f"there is no weighing {w}; see visits.list for captures")
            req = {"visit": owner}
        try:
            v = self.proj.find(req)
        except Refusal as exc:
            # a visit this service no longer holds: its ticket, if it has one, is in the store
            visit = str(req.get("visit") or "")
            if visit:
                await self._recall("visit", visit)
                if self.book.of_visit(visit):
                    return self.book.find(visit=visit), None
            raise TicketRefused(str(exc)) from None
        fields = tickets.from_visit(
            v, visit_checks.checks(v, self.proj.kpi, self.proj.tare_history)
        )
        if self._may_be_forgotten(str(fields["weighing"]), v):
            await self._recall("weighing", str(fields["weighing"]))
        existing = self.book.by_weighing.get(fields["weighing"])
        if existing:
            return self.book.tickets[existing], None
        return None, fields

    async def _recall_named(self, req: dict[str, Any]) -> None:
        """Read back the ticket a request names by number, or a visit's (its newest may have been
        forgotten while older ones are held), if the book forgot it."""
        number, visit = str(req.get("number") or ""), str(req.get("visit") or "")
        if number and number not in self.book.tickets:
            await self._recall("number", number)
        elif not number and visit:
            await self._recall("visit", visit)

    def _status(self, t: Ticket) -> dict[str, Any]:
        return tickets.status(self.book, t)

    async def _print(self, req: dict[str, Any]) -> Any:
        self._need_printer()
        operator = self._operator(req)
        async with self.lock:
            self._sync()
            try:
                t, fields = await self._target(req)
            except TicketRefused as exc:
                raise CommandError(str(exc)) from None
            if t is None:
                assert fields is not None
                v = self.proj.visits.get(fields["visit"])
                seq = self._weighed_seq(v, fields["weighing"]) if v is not None else 0
                t = await self._issue(fields, print_it=True, operator=operator, weighed_seq=seq)
            elif self.book.printed(t.number):
                raise CommandError(
                    f"ticket {t.number} has been printed; `tally ticket reprint {t.number}`"
                    f" prints a copy marked {tickets.COPY_MARK}"
                )
            elif t.number not in self.book.asked:
                await self.ctx.writer.append(
                    Kind.TICKET_PRINT_REQUESTED, {"number": t.number, "operator": operator}
                )
                self._sync()
                self.print_wake.set()
            return self._status(t)

    async def _reprint(self, req: dict[str, Any]) -> Any:
        self._need_printer()
        operator = self._operator(req)
        async with self.lock:
            self._sync()
            await self._recall_named(req)
            try:
                t = self.book.find(str(req.get("number") or ""), str(req.get("visit") or ""))
            except TicketRefused as exc:
                raise CommandError(str(exc)) from None
            if not self.book.printed(t.number):
                if t.number in self.book.asked:
                    raise CommandError(
                        f"ticket {t.number} has not printed yet (see the printer alert);"
                        " it prints by itself when the printer is back"
                    )
                raise CommandError(
                    f"ticket {t.number} was never printed; `tally ticket print {t.number}`"
                    " prints the original"
                )
            copy = self.book.copies.get(t.number, 0) + 1
            await self.ctx.writer.append(
                Kind.TICKET_REPRINTED, {"number": t.number, "copy": copy, "operator": operator}
            )
            self._sync()
            self.print_wake.set()
            return self._status(t)

    async def _show(self, req: dict[str, Any]) -> Any:
        async with self.lock:
            self._sync()
            day = str(req.get("day") or tickets.local_day(Stamp.now().at, self.tz).isoformat())
            if req.get("number") or req.get("visit"):
                await self._recall_named(req)
            elif day <= self.book.forgotten_day:
                await self._recall("day", day)
            try:
                return tickets.show(
                    self.book, day, str(req.get("number") or ""), str(req.get("visit") or "")
                )
            except TicketRefused as exc:
                raise CommandError(str(exc)) from None

    # --- the loops -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Issue due tickets on every change; print owed tickets in another task."""
        loop = asyncio.get_running_loop()
        printer = asyncio.create_task(self._print_loop(), name="ticket-printer")
        try:
            while True:
                await self._issue_due()
                # not wait_for: on 3.11 it can swallow a cancellation that races a wake-up
                with contextlib.suppress(TimeoutError):
                    # the look falls on the 5 s beat of the clock and health watches
                    async with asyncio.timeout_at(next_tick(loop.time(), LOOK_S)):
                        await self.wake.wait()
                self.wake.clear()
        finally:
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer

    async def _print_loop(self) -> None:
        """Print owed jobs oldest first; while the printer fails, raise the alert and retry."""
        if self.printer is None:
            return
        self.print_wake.set()
        while True:
            if not self.book.pending:
                await self.print_wake.wait()
                self.print_wake.clear()
                continue
            job = next(iter(self.book.pending.values()))
            t = self.book.tickets.get(job.number)
            if t is None:  # a job for a ticket this database never issued: nothing to print
                async with self.lock:
                    self.book.pending.pop(job.job, None)
                continue
            doc = tickets.document(t, self.cfg, self.tz, copy=job.copy)
            try:
                ref = await asyncio.to_thread(self.printer.print_document, doc)
            except PrinterOffline as exc:
                log.warning("%s; ticket %s waits", exc, t.number)
                await self.ctx.alerts.raise_(
                    ALERT,
                    f"{exc}; tickets wait and print when it is back",
                    printer=self.printer.name,
                )
                await asyncio.sleep(self.cfg.retry_s)
                continue
            async with self.lock:
                await self.ctx.writer.append(
                    Kind.TICKET_PRINTED,
                    {
                        "number": t.number,
                        "job": job.job,
                        "copy": job.copy,
                        "printer": self.printer.name,
                        "ref": ref,
                    },
                )
                self._sync()
            await self.ctx.alerts.clear(ALERT, f"the printer {self.printer.name} prints again")


def build(ctx: Context) -> list[Service]:
    """The tickets service of this terminal."""
    return [TicketsService(ctx)]

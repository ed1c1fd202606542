"""Weigh tickets (磅单): pure content from a visit, gapless numbers and the print queue, all
folded from `ticket.*` events.

A ticket's number is `TERMINAL-YYYYMMDD-NNNN`, counted per terminal and plant-local day. The
number is never held anywhere but in the `ticket.issued` event that uses it: the next number
is the last stored one plus one, so a restart or a power cut can neither skip nor repeat one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import TicketsConfig
from agent.domain.events import Event, parse_at
from agent.domain.kinds import Kind
from agent.domain.visit import Command, VisitState
from drivers.printers.document import Document

ISSUED = Kind.TICKET_ISSUED
PRINT_REQUESTED = Kind.TICKET_PRINT_REQUESTED
REPRINTED = Kind.TICKET_REPRINTED
PRINTED = Kind.TICKET_PRINTED
JOB_KINDS = (ISSUED, PRINT_REQUESTED, REPRINTED)  # events that ask for a print (if `print`)
COPY_MARK = "副本"
# Tickets a daemon holds in memory, a few days of a busy weighbridge; the store has them all.
KEEP_TICKETS = 1000

FLAG_NAMES = {
    "tare_fluctuation": ("皮重波动", "tare fluctuation"),
    "underloaded": ("低于验证量90%", "below 90 % of the verified quantity"),
    "bagged_overweight": ("袋装重车超重", "bagged load overweight"),
    "seal_mismatch": ("封签不符", "seal mismatch"),
}
LOAD_NAMES = {"bulk": "散装", "bagged": "袋装"}


class TicketRefused(Exception):
    """A ticket request cannot be done; the message is one clear sentence."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """One issued ticket, exactly as its `ticket.issued` event recorded it."""

    number: str
    serial: int
    day: str  # plant-local YYYY-MM-DD the number counts in
    visit: str  # "" for a single weighing that belongs to no visit
    weighing: str  # the weighing the ticket is for (the gross, or the single one)
    plate: str = ""
    order: str = ""
    product: str = ""
    load: str = ""
    bags: int | None = None
    bag_kg: int | None = None
    tare_kg: int | None = None
    tare_at: str | None = None
    gross_kg: int | None = None
    gross_at: str | None = None
    net_kg: int | None = None
    weight_kg: int | None = None  # a single weighing's weight (no tare/gross known)
    weight_at: str | None = None
    scale: str = ""
    seals: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # check names, e.g. "underloaded"
    operator: str = ""
    issued_at: str = ""

    def data(self, *, print_it: bool, weighed_seq: int = 0) -> dict[str, Any]:
        """The `ticket.issued` payload (issued_at is the event's own time); `weighed_seq` is
        the seq of the `visit.weighed` event of a visit's ticket."""
        d = asdict(self)
        del d["issued_at"]
        d["seals"], d["flags"], d["print"] = list(self.seals), list(self.flags), print_it
        if weighed_seq:
            d["weighed_seq"] = weighed_seq
        return d

    @staticmethod
    def from_event(ev: Event) -> Ticket:
        """The ticket an `ticket.issued` event recorded."""
        d = ev.data
        kw = {k: d[k] for k in _PLAIN_FIELDS if k in d}
        return Ticket(
            **kw,
            seals=tuple(str(s) for s in d.get("seals") or ()),
            flags=tuple(str(f) for f in d.get("flags") or ()),
            issued_at=ev.at,
        )

    def to_dict(self) -> dict[str, Any]:
        """The ticket as the local API and `tally ticket show --json` give it."""
        d = asdict(self)
        d["seals"], d["flags"] = list(self.seals), list(self.flags)
        return d


_PLAIN_FIELDS = tuple(
    f for f in Ticket.__dataclass_fields__ if f not in ("seals", "flags", "issued_at")
)


def ticket_number(terminal: str, day: date, serial: int) -> str:
    """The printed number, e.g. `wb1-20261129-0007`."""
    return f"{terminal}-{day:%Y%m%d}-{serial:04d}"


def local_day(at: datetime, tz: ZoneInfo) -> date:
    """The plant-local day a ticket issued at `at` counts in."""
    return at.astimezone(tz).date()


def from_visit(v: VisitState, pending: Iterable[Command] = ()) -> dict[str, Any]:
    """The ticket fields of a visit with at least one weighing: the latest gross (else tare),
    its times, seals and flags, including flags the projection is about to raise (`pending`).

    Raises TicketRefused when the visit has no weighing.
    """
    tare, gross = v.last("tare"), v.last("gross")
    main = gross or tare
    if main is None:
        raise TicketRefused(f"{v.plate} (visit {v.visit}) has no weighing yet; weigh it first")
    flags = [f.check for f in v.flags]
    flags += [str(d["check"]) for kind, d in pending if kind == "visit.flagged"]
    return {
        "visit": v.visit,
        "weighing": main.weighing,
        "plate": v.plate,
        "order": v.order,
        "product": v.product,
        "load": v.load,
        "bags": v.bags,
        "bag_kg": v.bag_kg,
        "tare_kg": tare.weight_kg if tare else None,
        "tare_at": tare.mark.at if tare else None,
        "gross_kg": gross.weight_kg if gross else None,
        "gross_at": gross.mark.at if gross else None,
        "net_kg": v.net_kg,
        "scale": v.scale or "",
        "seals": tuple(v.seals),
        "flags": tuple(dict.fromkeys(flags)),
    }


def from_capture(capture: dict[str, Any]) -> dict[str, Any]:
    """The ticket fields of a single weighing no visit claimed (a capture of `visits.list`)."""
    return {
        "visit": "",
        "weighing": str(capture["weighing"]),
        "weight_kg": int(capture["weight_kg"]),
        "weight_at": str(capture["at"]),
        "scale": str(capture.get("scale") or ""),
    }


@dataclass(frozen=True, slots=True)
class Job:
    """A print the book still owes: the original (copy 0) or a reprint (copy n)."""

    job: str  # the id of the event that asked for it
    number: str
    copy: int
    asked_at: str


@dataclass(slots=True)
class TicketBook:
    """The tickets of this terminal, the last serial of each day and the prints still owed.

    With `keep`, at most that many tickets are held: issuing one more forgets the oldest whose
    prints are all done (its events stay in the store, which the daemon reads them back from;
    `forgotten_seq` and `forgotten_day` say what may have to be read back). The serials of
    every day are kept, so numbering never depends on what was forgotten.
    """

    keep: int | None = None
    forgotten_seq: int = 0  # the newest weighing of a forgotten ticket (0: nothing forgotten)
    forgotten_day: str = ""  # the latest day of a forgotten ticket
    last_weighed_seq: int = 0  # the newest weighing a visit's ticket was issued for
    weighed_seqs: dict[str, int] = field(default_factory=dict)  # number → its weighing's seq
    tickets: dict[str, Ticket] = field(default_factory=dict)
    by_weighing: dict[str, str] = field(default_factory=dict)
    by_visit: dict[str, list[str]] = field(default_factory=dict)
    last_serial: dict[str, int] = field(default_factory=dict)
    copies: dict[str, int] = field(default_factory=dict)
    prints: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pending: OrderedDict[str, Job] = field(default_factory=OrderedDict)
    asked: set[str] = field(default_factory=set)  # tickets whose original print was asked for

    def apply(self, ev: Event) -> None:
        """Fold one event in (kinds other than `ticket.*` are ignored)."""
        d, kind = ev.data, ev.kind
        if kind == ISSUED:
            t = Ticket.from_event(ev)
            self.tickets[t.number] = t
            self.by_weighing[t.weighing] = t.number
            if t.visit:
                numbers = self.by_visit.setdefault(t.visit, [])
                numbers.append(t.number)
                if len(numbers) > 1:  # a forgotten ticket read back comes after newer ones
                    numbers.sort(key=lambda n: (self.tickets[n].day, self.tickets[n].serial))
            self.last_serial[t.day] = max(self.last_serial.get(t.day, 0), t.serial)
            weighed_seq = int(d.get("weighed_seq") or 0)
            self.weighed_seqs[t.number] = weighed_seq
            self.last_weighed_seq = max(self.last_weighed_seq, weighed_seq)
            if d.get("print"):
                self.asked.add(t.number)
                self.pending[ev.id] = Job(ev.id, t.number, 0, ev.at)
        elif kind == PRINT_REQUESTED:
            number = str(d.get("number"))
            self.asked.add(number)
            self.pending[ev.id] = Job(ev.id, number, 0, ev.at)
        elif kind == REPRINTED:
            number = str(d.get("number"))
            copy = int(d.get("copy", self.copies.get(number, 0) + 1))
            self.copies[number] = max(self.copies.get(number, 0), copy)
            self.pending[ev.id] = Job(ev.id, number, copy, ev.at)
        elif kind == PRINTED:
            job = str(d.get("job"))
            self.pending.pop(job, None)
            self.prints.setdefault(str(d.get("number")), []).append({**d, "at": ev.at})
        if self.keep is not None and kind in (ISSUED, PRINTED):
            while len(self.tickets) > self.keep and self._forget_oldest():
                pass

    def _forget_oldest(self) -> bool:
        """Drop the oldest ticket that owes no print (tickets are held in the order issued);
        False when every ticket held still owes one."""
        owed = {j.number for j in self.pending.values()}
        number = next((n for n in self.tickets if n not in owed), None)
        if number is None:
            return False
        t = self.tickets.pop(number)
        if self.by_weighing.get(t.weighing) == number:
            del self.by_weighing[t.weighing]
        numbers = self.by_visit.get(t.visit)
        if numbers is not None and number in numbers:
            numbers.remove(number)
            if not numbers:
                del self.by_visit[t.visit]
        self.copies.pop(number, None)
        self.prints.pop(number, None)
        self.asked.discard(number)
        self.forgotten_seq = max(self.forgotten_seq, self.weighed_seqs.pop(number, 0), 1)
        self.forgotten_day = max(self.forgotten_day, t.day)
        return True

    def next_serial(self, day: date) -> int:
        """The serial the next ticket of `day` gets."""
        return self.last_serial.get(day.isoformat(), 0) + 1

    def of_visit(self, visit: str) -> list[Ticket]:
        """The tickets of a visit, oldest first."""
        return [self.tickets[n] for n in self.by_visit.get(visit, [])]

    def find(self, number: str = "", visit: str = "") -> Ticket:
        """The ticket by number, or the newest of a visit; raise TicketRefused."""
        if number:
            t = self.tickets.get(number)
            if t is None:
                raise TicketRefused(f"there is no ticket {number}; `tally ticket show` lists them")
            return t
        found = self.of_visit(visit)
        if not found:
            raise TicketRefused(f"visit {visit} has no ticket yet; print one with --visit")
        return found[-1]

    def printed(self, number: str) -> bool:
        """Whether any print of the ticket has reached a printer."""
        return bool(self.prints.get(number))


def status(book: TicketBook, t: Ticket) -> dict[str, Any]:
    """A ticket with its prints, copies and the prints it still waits for."""
    waiting = [j.copy for j in book.pending.values() if j.number == t.number]
    return {
        "ticket": t.to_dict(),
        "prints": book.prints.get(t.number, []),
        "copies": book.copies.get(t.number, 0),
        "waiting": waiting,
    }


def show(book: TicketBook, day: str, number: str = "", visit: str = "") -> dict[str, Any]:
    """The answer of `ticket.show`: one ticket (by number, or a visit's newest) or the tickets
    of the plant-local `day`; raise TicketRefused when the named one does not exist."""
    if number or visit:
        return status(book, book.find(number, visit))
    of_day = sorted((t for t in book.tickets.values() if t.day == day), key=lambda t: t.serial)
    return {"day": day, "tickets": [status(book, t) for t in of_day]}


def fold(events: Iterable[Event]) -> TicketBook:
    """A ticket book folded from stored events in seq order."""
    book = TicketBook()
    for ev in events:
        book.apply(ev)
    return book


def document(
    t: Ticket, cfg: TicketsConfig, tz: ZoneInfo, *, copy: int = 0, language: str = "zh"
) -> Document:
    """What the printers print for ticket `t` (copy > 0 is marked 副本)."""

    def when(at: str | None) -> str:
        return parse_at(at).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if at else ""

    def kg(value: int | None, at: str | None = None) -> str:
        if value is None:
            return ""
        return f"{value} kg" + (f"   {when(at)}" if at else "")

    rows: list[tuple[str, str]] = []
    if t.plate:
        rows.append(("车牌号", t.plate))
    if t.order:
        rows.append(("订单号", t.order))
    if t.product:
        rows.append(("品种", t.product))
    if t.load:
        rows.append(("装车方式", LOAD_NAMES.get(t.load, t.load)))
    if t.bags is not None:
        rows.append(("袋数", f"{t.bags} 袋 × {t.bag_kg} kg" if t.bag_kg else f"{t.bags} 袋"))
    if t.weight_kg is not None:
        rows.append(("重量", kg(t.weight_kg, t.weight_at)))
    if t.tare_kg is not None:
        rows.append(("皮重", kg(t.tare_kg, t.tare_at)))
    if t.gross_kg is not None:
        rows.append(("毛重", kg(t.gross_kg, t.gross_at)))
    if t.net_kg is not None:
        rows.append(("净重", kg(t.net_kg)))
    if t.seals:
        rows.append(("铅封号", " ".join(t.seals)))
    if t.scale:
        rows.append(("地磅", t.scale))
    rows.append(("司磅员", t.operator))
    rows.append(("开单时间", when(t.issued_at)))
    index = 0 if language == "zh" else 1
    notes = tuple(f"{FLAG_NAMES.get(f, (f, f))[index]}" for f in t.flags)
    return Document(
        title=cfg.title,
        number=t.number,
        rows=tuple(rows),
        qr=t.visit or t.weighing,
        company=cfg.company,
        notes=notes,
        copy_mark=COPY_MARK if copy else "",
        footer=cfg.footer,
    )


def text(doc: Document) -> str:
    """The document as plain text lines (for `tally ticket show`)."""
    lines = []
    if doc.company:
        lines.append(doc.company)
    lines.append(doc.title + (f"  【{doc.copy_mark}】" if doc.copy_mark else ""))
    lines.append(f"No. {doc.number}")
    lines += [f"{label}  {value}" for label, value in doc.rows]
    lines += [f"! {n}" for n in doc.notes]
    if doc.qr:
        lines.append(f"QR  {doc.qr}")
    if doc.footer:
        lines.append(doc.footer)
    return "\n".join(lines)

"""Service windows (pure): open tickets, validation of window commands, and window_wait KPIs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import NAME, KpiConfig
from agent.domain.events import Event
from agent.domain.kinds import Kind
from agent.domain.marks import Mark, duration_ms
from agent.errors import Refused

# service → the KpiConfig field holding its target in minutes
SERVICES: dict[str, str] = {
    "plan_order": "window_plan_order_min",
    "payment": "window_payment_min",
    "transport_letter": "window_transport_letter_min",
    "no_letter": "window_no_letter_min",
}


class WindowError(Refused):
    """A window command was refused; the message is one clear sentence."""


def target_min(cfg: KpiConfig, service: str) -> float:
    """The configured target in minutes of a window service."""
    return float(getattr(cfg, SERVICES[service]))


@dataclass(frozen=True, slots=True)
class Ticket:
    """Someone waiting at a window: arrived, not yet served."""

    ticket: str
    window: str
    service: str
    arrived_at: str


class WindowBook:
    """The open tickets, folded from window events; validates new window commands."""

    def __init__(self) -> None:
        self.open: dict[str, Ticket] = {}
        self.issued = 0

    def apply(self, ev: Event) -> None:
        """Fold one event (others are ignored)."""
        if ev.kind == Kind.WINDOW_ARRIVED:
            d = ev.data
            self.open[d["ticket"]] = Ticket(d["ticket"], d["window"], d["service"], ev.at)
            self.issued += 1
        elif ev.kind == Kind.WINDOW_SERVED:
            self.open.pop(ev.data["ticket"], None)

    def arrive(self, window: Any, service: Any, ticket: Any = None) -> dict[str, Any]:
        """The payload of a `window.arrived` for this request, or WindowError."""
        if not isinstance(window, str) or not NAME.fullmatch(window):
            raise WindowError(
                f"window {window!r} is not a window name; use a short name such as sales, finance or gate"
            )
        if service not in SERVICES:
            raise WindowError(
                f"service {service!r} is not a window service; use one of {', '.join(SERVICES)}"
            )
        if ticket is None:
            ticket = f"{window}-{self.issued + 1:04d}"
        if not isinstance(ticket, str) or not 1 <= len(ticket) <= 32:
            raise WindowError("ticket must be a text of 1 to 32 characters")
        if ticket in self.open:
            raise WindowError(
                f"ticket {ticket} is already waiting at the {self.open[ticket].window} window"
            )
        return {"window": window, "service": service, "ticket": ticket}

    def serve(self, ticket: Any = None, window: Any = None, service: Any = None) -> dict[str, Any]:
        """The payload of a `window.served`: by ticket, or the longest-waiting at window/service."""
        if ticket is not None:
            if ticket not in self.open:
                raise WindowError(f"ticket {ticket!r} is not waiting at any window")
            t = self.open[ticket]
        else:
            waiting = [
                t
                for t in self.open.values()
                if (window is None or t.window == window)
                and (service is None or t.service == service)
            ]
            if not waiting:
                raise WindowError("nobody is waiting at that window; name the ticket to serve")
            t = waiting[0]
        return {"window": t.window, "service": t.service, "ticket": t.ticket}


class PlantWindows:
    """The other terminals' open window tickets (with plant-wide replication): one `WindowBook`
    fold per stream (terminal, epoch), as each terminal keeps its own, so two terminals may
    reuse a ticket number."""

    def __init__(self) -> None:
        self.books: dict[tuple[str, str], WindowBook] = {}

    def apply(self, ev: Event) -> bool:
        """Fold one foreign event in; return whether it was a window event."""
        if ev.kind not in (Kind.WINDOW_ARRIVED, Kind.WINDOW_SERVED):
            return False
        self.books.setdefault((ev.terminal, ev.epoch), WindowBook()).apply(ev)
        return True

    def open_tickets(self) -> list[dict[str, Any]]:
        """Every ticket waiting at another terminal's window, with that terminal."""
        return [
            {
                "terminal": terminal,
                "ticket": t.ticket,
                "window": t.window,
                "service": t.service,
                "arrived_at": t.arrived_at,
            }
            for (terminal, _epoch), book in sorted(self.books.items())
            for t in book.open.values()
        ]


def served(events: Iterable[Event]) -> Iterator[tuple[Event, Event]]:
    """Each served ticket as (its `window.arrived`, its `window.served`), in the order served.

    Tickets are paired by (terminal, epoch, ticket), so two terminals may reuse numbers; events
    must come in seq order per terminal. The one fold of window waits: the KPIs and the
    operators' month both read it.
    """
    arrived: dict[tuple[str, str, str], Event] = {}
    for ev in events:
        ticket = ev.data.get("ticket")
        if not isinstance(ticket, str):
            continue
        if ev.kind == Kind.WINDOW_ARRIVED:
            arrived[(ev.terminal, ev.epoch, ticket)] = ev
        elif ev.kind == Kind.WINDOW_SERVED:
            start = arrived.pop((ev.terminal, ev.epoch, ticket), None)
            if start is not None:
                yield start, ev


def wait_ms(start: Event, end: Event) -> int:
    """The wait of a served ticket in ms (monotonic when both ends share a boot, else wall)."""
    return duration_ms(Mark.of(start), Mark.of(end))


def within_target(cfg: KpiConfig, service: str, ms: int) -> bool:
    """Whether a wait of `ms` met the service's target (a wait of exactly the target did)."""
    return ms <= round(target_min(cfg, service) * 60_000)


def window_samples(events: Iterable[Event], day: date, tz: ZoneInfo) -> dict[str, list[int]]:
    """Per service, the waits in ms of tickets served on the plant-local `day` (see `served`)."""
    waits: dict[str, list[int]] = {s: [] for s in SERVICES}
    for start, end in served(events):
        if end.when.astimezone(tz).date() != day:
            continue
        service = start.data.get("service")
        if isinstance(service, str) and service in waits:
            waits[service].append(wait_ms(start, end))
    return waits

"""Live warnings before a target is missed (pure): each running wait against its target.

`running(visits, tickets, cfg)` lists the waits now running (a truck in a scale queue, a bagged
truck not yet loading, a bulk truck in the plant, a loaded bulk truck not yet sealed, someone at
a window of this terminal or, with plant-wide replication, of another); `due(waits, now, share)`
says which of them have passed `share` of their target (a warning) or the whole target
(overdue), and `next_change` when that answer next changes, so the daemon wakes exactly then
instead of polling. Alert names are `late.<target>.<visit or ticket>`
(`late.window.<window>.<ticket>`, `late.window.<terminal>.<window>.<ticket>` for another's):
one per wait, its level raised from warning to overdue in place, cleared when the stage happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.config import KpiConfig
from agent.domain.events import parse_at
from agent.domain.visit import VisitState
from agent.domain.window_services import SERVICES, target_min

PREFIX = "late."


@dataclass(frozen=True, slots=True)
class Wait:
    """One wait running now: what it is, whose, since when and against which target."""

    alert: str  # late.<target>.<visit or window.ticket>
    target: str  # scale_wait, bag_load_wait, bulk_turnaround, seal_lag, window.<service>
    subject: str  # how a sentence names it: a plate, or a window ticket
    doing: str  # what is running, completing "<subject> has been ..."
    since: datetime
    target_min: float
    visit: str = ""


@dataclass(frozen=True, slots=True)
class Due:
    """A wait past its warning share (level 'warning') or its whole target ('overdue')."""

    wait: Wait
    level: str
    detail: str
    due_at: datetime  # when the target is (or was) missed


def running(
    visits: Iterable[VisitState], tickets: Iterable[Mapping[str, Any]], cfg: KpiConfig
) -> list[Wait]:
    """Every timed wait running now in the open visits and the window tickets."""
    out: list[Wait] = []
    for v in visits:
        if not v.open:
            continue

        def add(target: str, doing: str, at: str, minutes: float, v: VisitState = v) -> None:
            out.append(
                Wait(
                    f"{PREFIX}{target}.{v.visit}",
                    target,
                    v.plate,
                    doing,
                    parse_at(at),
                    minutes,
                    v.visit,
                )
            )

        if v.queued is not None:
            scale = f"scale {v.scale}" if v.scale else "the scale"
            add("scale_wait", f"in the queue of {scale}", v.queued.at, cfg.weigh_wait_min)
        if v.load == "bagged" and v.loading_started is None:
            start = v.arrived or v.gate_in  # as the KPI measures it: from arrival
            if start is not None:
                add("bag_load_wait", "waiting to load", start.at, cfg.bag_load_wait_min)
        if v.load == "bulk" and v.gate_in is not None:
            add("bulk_turnaround", "in the plant", v.gate_in.at, cfg.bulk_turnaround_min)
        if v.load == "bulk" and v.loading_finished is not None and v.sealed is None:
            add("seal_lag", "loaded and unsealed", v.loading_finished.at, cfg.seal_lag_min)
    for t in tickets:
        service, ticket, window = t.get("service"), t.get("ticket"), t.get("window")
        at, terminal = t.get("arrived_at"), t.get("terminal")
        if service not in SERVICES or not isinstance(ticket, str) or not isinstance(at, str):
            continue
        # Another terminal's ticket (plant-wide replication) is named with its terminal, as
        # ticket numbers are per terminal.
        other = terminal if isinstance(terminal, str) and terminal else ""
        out.append(
            Wait(
                f"{PREFIX}window.{other + '.' if other else ''}{window}.{ticket}",
                f"window.{service}",
                f"ticket {ticket}" + (f" of {other}" if other else ""),
                f"waiting at the {window} window ({service})",
                parse_at(at),
                target_min(cfg, str(service)),
            )
        )
    return out


PAST = timedelta(milliseconds=1)  # how far beyond its target a wait is overdue


def due(waits: Iterable[Wait], now: datetime, share: float) -> dict[str, Due]:
    """The waits past `share` of their target or past it, by alert name.

    A wait exactly on its target is within it (the standard's 不超过): overdue starts one
    millisecond (the events' resolution) later.
    """
    out: dict[str, Due] = {}
    for w in waits:
        warn_at, over_at = _marks(w, share)
        due_at = over_at - PAST
        target = f"{w.target_min:g} min"
        if now >= over_at:
            level, detail = (
                "overdue",
                f"{w.subject} has been {w.doing} longer than its {target} target",
            )
        elif now >= warn_at:
            level = "warning"
            detail = f"{w.subject} has been {w.doing} for {share:.0%} of its {target} target"
        else:
            continue
        out[w.alert] = Due(w, level, detail, due_at)
    return out


def next_change(waits: Iterable[Wait], now: datetime, share: float) -> datetime | None:
    """The next moment after `now` at which `due` answers differently (None: never, as is)."""
    later = [m for w in waits for m in _marks(w, share) if m > now]
    return min(later, default=None)


ENDED = {
    "scale_wait": "the scale wait is over",
    "bag_load_wait": "loading has started",
    "bulk_turnaround": "the visit has ended",
    "seal_lag": "the seal is on or the visit has ended",
}


def ended(subject: object, target: object) -> str:
    """Why a late.* alert cleared: its stage happened (or its visit or ticket ended)."""
    what = ENDED.get(str(target), "served" if str(target).startswith("window.") else "ended")
    return f"{subject or 'the wait'}: {what}"


def _marks(w: Wait, share: float) -> tuple[datetime, datetime]:
    """When the wait reaches its warning share, and when it is past its target."""
    target = timedelta(minutes=w.target_min)
    return w.since + target * share, w.since + target + PAST

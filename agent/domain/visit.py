"""One visit folded from its events (VisitState), and the batch fold every report reads.

This is the one place a visit's events become facts about it: the live projection, the KPI
engine and the ledgers all fold with `VisitState.apply`, operator corrections applied first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.domain.corrections import Corrections, collect_corrections, corrected
from agent.domain.events import Event
from agent.domain.kinds import Kind
from agent.domain.marks import Mark, duration_ms, minutes

Command = tuple[str, dict[str, Any]]  # (event kind, data) to append

STAGE_OF: dict[str, str] = {
    Kind.VISIT_ARRIVED: "arrived",
    Kind.VISIT_GATE_IN: "gated_in",
    Kind.VISIT_QUEUED_AT_SCALE: "scale_queue",
    Kind.VISIT_LOADING_STARTED: "loading",
    Kind.VISIT_LOADING_FINISHED: "loaded",
    Kind.VISIT_SEALED: "sealed",
    Kind.VISIT_EXITED: "exited",
    Kind.VISIT_CANCELLED: "cancelled",
}


@dataclass(slots=True)
class Weighing:
    """One weighing assigned to a visit."""

    weighing: str
    role: str
    weight_kg: int
    mark: Mark
    index: int
    queued: Mark | None  # the latest scale-queue event before it, if any


@dataclass(frozen=True, slots=True)
class Flag:
    """One check raised on a visit (a `visit.flagged` event)."""

    check: str
    detail: str
    weighing: str  # the weighing checked ('' when the check is not about one)
    mark: Mark


@dataclass(slots=True)
class VisitState:
    """Everything known about one visit, folded from its events."""

    visit: str
    plate: str = ""
    order: str = ""
    product: str = ""
    load: str = ""
    planned_kg: int = 0
    index: int = 0
    arrived: Mark | None = None
    stage: str = "arrived"
    stage_since: str = ""
    gate_in: Mark | None = None
    gate_in_reason: str = ""  # why it was released out of arrival order
    queued: Mark | None = None  # in the scale queue now (since this mark)
    queued_index: int = 0
    last_queue: Mark | None = None
    scale: str | None = None
    weighings: list[Weighing] = field(default_factory=list)
    loading_started: Mark | None = None
    loading_finished: Mark | None = None
    point: str | None = None
    counter: dict[str, Any] | None = None
    bags: int | None = None
    bag_kg: int | None = None
    sealed: Mark | None = None
    seals: list[str] = field(default_factory=list)
    exited: Mark | None = None
    seals_seen: list[str] | None = None  # the seal numbers the gate saw at exit
    product_seen: str = ""  # the product the gate saw at exit ('' when not recorded)
    exit_reason: str = ""  # why the gate let it out despite its exit checks
    exit_checks: list[str] = field(default_factory=list)  # the checks that reason overrode
    broken_found: int = 0  # broken bags the loading crew found on this truck
    broken_replaced: int = 0  # and replaced
    cancelled: Mark | None = None
    cancel_reason: str | None = None
    flags: list[Flag] = field(default_factory=list)
    raised: set[tuple[str, str]] = field(default_factory=set)
    events: list[tuple[int, Event]] = field(default_factory=list)

    @staticmethod
    def folded(visit: str, events: list[tuple[int, Event]]) -> VisitState:
        """A visit folded afresh from its (index, event) pairs, e.g. after a correction."""
        v = VisitState(visit)
        for index, ev in events:
            v.apply(ev, index)
        v.events = events
        return v

    @property
    def open(self) -> bool:
        """Neither exited nor cancelled."""
        return self.exited is None and self.cancelled is None

    @property
    def label(self) -> str:
        """How a sentence names the visit: its plate and id."""
        return f"{self.plate} (visit {self.visit})"

    def last(self, role: str) -> Weighing | None:
        """The latest weighing of a role."""
        for w in reversed(self.weighings):
            if w.role == role:
                return w
        return None

    @property
    def tare_kg(self) -> int | None:
        """The latest tare."""
        w = self.last("tare")
        return w.weight_kg if w else None

    @property
    def gross_kg(self) -> int | None:
        """The latest gross."""
        w = self.last("gross")
        return w.weight_kg if w else None

    @property
    def net_kg(self) -> int | None:
        """Latest gross minus latest tare."""
        t, g = self.tare_kg, self.gross_kg
        return None if t is None or g is None else g - t

    def planned_bags(self) -> int | None:
        """Bags the plan needs at the counter's bag mass (rounded up)."""
        if self.load != "bagged" or not self.counter or not self.counter.get("bag_kg"):
            return None
        return -(-self.planned_kg // int(self.counter["bag_kg"]))

    def apply(self, ev: Event, index: int) -> None:
        """Fold one of this visit's events in (corrections already applied to its data)."""
        step = _STEPS.get(ev.kind)
        if step is None:
            return
        step(self, ev.data, Mark.of(ev), index)
        stage = STAGE_OF.get(ev.kind)  # weighings set their own stage, flags none
        if stage is not None:
            self.stage, self.stage_since = stage, ev.at

    def waits(self) -> dict[str, float | None]:
        """Finished durations in minutes (None until both ends are known)."""
        tare, gross = self.last("tare"), self.last("gross")

        def span(a: Mark | None, b: Mark | None) -> float | None:
            return minutes(duration_ms(a, b)) if a and b else None

        return {
            "tare_wait_min": span(tare.queued, tare.mark) if tare else None,
            "gross_wait_min": span(gross.queued, gross.mark) if gross else None,
            "bag_load_wait_min": span(self.gate_in, self.loading_started),
            "loading_min": span(self.loading_started, self.loading_finished),
            "seal_lag_min": span(self.loading_finished, self.sealed),
            "turnaround_min": span(self.gate_in, self.exited),
        }

    def to_dict(self, loaded: Mapping[str, int] | None = None) -> dict[str, Any]:
        """The visit as published on the `visits` topic (live fields from `loaded` totals)."""
        counted: int | None = None
        suggested = False
        hint: str | None = None
        planned_bags = self.planned_bags()
        if loaded is not None and self.counter and self.loading_finished is None:
            total = loaded.get(str(self.counter.get("packer")))
            if total is not None and self.counter.get("from") is not None:
                counted = max(0, total - int(self.counter["from"]))
                if planned_bags is not None and counted >= planned_bags:
                    suggested = True
                    hint = (
                        f"{counted} of {planned_bags} planned bags loaded on {self.plate};"
                        " finish loading"
                    )
        return {
            "visit": self.visit,
            "plate": self.plate,
            "order": self.order,
            "product": self.product,
            "load": self.load,
            "planned_kg": self.planned_kg,
            "stage": self.stage,
            "stage_since": self.stage_since,
            "arrived_at": self.arrived.at if self.arrived else None,
            "gate_in_at": self.gate_in.at if self.gate_in else None,
            "queued_at": self.queued.at if self.queued else None,
            "scale": self.scale if self.queued else None,
            "tare_kg": self.tare_kg,
            "gross_kg": self.gross_kg,
            "net_kg": self.net_kg,
            "bags": self.bags,
            "bag_kg": self.bag_kg,
            "point": self.point,
            "seals": list(self.seals),
            "broken_bags": {"found": self.broken_found, "replaced": self.broken_replaced},
            "exit_reason": self.exit_reason,
            "cancel_reason": self.cancel_reason,
            "flags": [{"check": f.check, "detail": f.detail} for f in self.flags],
            "waits": self.waits(),
            "counter": (
                {
                    "packer": self.counter.get("packer"),
                    "from": self.counter.get("from"),
                    "planned_bags": planned_bags,
                }
                if self.counter
                else None
            ),
            "counted_bags": counted,
            "finish_suggested": suggested,
            "hint": hint,
        }


# --- one step of the fold per kind (a table: comparing kinds one by one costs per event) ------

Step = Callable[[VisitState, dict[str, Any], Mark, int], None]


def _arrived(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    v.plate = str(d.get("plate", ""))
    v.order = str(d.get("order", ""))
    v.product = str(d.get("product", ""))
    v.load = str(d.get("load", ""))
    v.planned_kg = _as_int(d.get("planned_kg"))
    v.index = index
    v.arrived = mark


def _gate_in(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    v.gate_in = mark
    v.gate_in_reason = str(d.get("reason") or "")


def _queued(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    v.queued, v.queued_index, v.last_queue = mark, index, mark
    v.scale = d.get("scale")


def _weighed(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    role = "gross" if d.get("role") == "gross" else "tare"
    weight = _as_int(d.get("weight_kg"))
    v.weighings.append(Weighing(str(d.get("weighing")), role, weight, mark, index, v.last_queue))
    v.queued = None
    v.last_queue = None
    v.stage = "weighed" if role == "gross" else "tared"
    v.stage_since = mark.at


def _loading_started(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    v.loading_started, v.loading_finished = mark, None
    v.point = d.get("point")
    counter = d.get("counter")
    v.counter = dict(counter) if isinstance(counter, dict) else None


def _loading_finished(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    v.loading_finished = mark
    if d.get("point"):
        v.point = d.get("point")
    v.bags = _opt_int(d.get("bags"))
    v.bag_kg = _opt_int(d.get("bag_kg"))


def _sealed(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    v.sealed = mark
    v.seals = [str(s) for s in d.get("seals") or []]


def _exited(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    v.exited, v.queued = mark, None
    seen = d.get("seals_seen")
    v.seals_seen = [str(s) for s in seen] if isinstance(seen, list) else None
    v.product_seen = str(d.get("product_seen") or "")
    v.exit_reason = str(d.get("reason") or "")
    checks = d.get("exit_checks")
    v.exit_checks = [str(c) for c in checks] if isinstance(checks, list) else []


def _broken_bags(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    v.broken_found += max(0, _as_int(d.get("found")))
    v.broken_replaced += max(0, _as_int(d.get("replaced")))


def _cancelled(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    v.cancelled, v.queued = mark, None
    v.cancel_reason = d.get("reason")


def _flagged(v: VisitState, d: dict[str, Any], mark: Mark, index: int) -> None:
    check, weighing = str(d.get("check")), str(d.get("weighing", ""))
    v.flags.append(Flag(check, str(d.get("detail", "")), weighing, mark))
    v.raised.add((check, weighing))


_STEPS: dict[str, Step] = {
    Kind.VISIT_ARRIVED: _arrived,
    Kind.VISIT_GATE_IN: _gate_in,
    Kind.VISIT_QUEUED_AT_SCALE: _queued,
    Kind.VISIT_WEIGHED: _weighed,
    Kind.VISIT_LOADING_STARTED: _loading_started,
    Kind.VISIT_LOADING_FINISHED: _loading_finished,
    Kind.VISIT_SEALED: _sealed,
    Kind.VISIT_EXITED: _exited,
    Kind.VISIT_CANCELLED: _cancelled,
    Kind.VISIT_FLAGGED: _flagged,
    Kind.VISIT_BROKEN_BAGS: _broken_bags,
}


def fold_visits(events: Iterable[Event], fixes: Corrections | None = None) -> dict[str, VisitState]:
    """Every visit the events name, each folded with the operator's corrections applied.

    `events` come in seq order per terminal; `fixes` are their corrections when the caller has
    already collected them. Unlike the live projection this keeps every visit, closed or not,
    and folds events of visits whose arrival is not among them (a report's window may begin
    after it), so reports over any stretch of events see the same facts as the projection.
    """
    ordered = list(events)
    if fixes is None:
        fixes = collect_corrections(ordered)
    visits: dict[str, VisitState] = {}
    for index, raw in enumerate(ordered, 1):
        if not raw.kind.startswith("visit."):
            continue
        vid = raw.data.get("visit")
        if not isinstance(vid, str):
            continue
        ev = corrected(raw, fixes) if fixes else raw
        v = visits.get(vid)
        if v is None:
            v = visits[vid] = VisitState(vid)
        v.events.append((index, ev))
        v.apply(ev, index)
    return visits


def weighed(v: VisitState, weighing: str, role: str, weight: int) -> Command:
    """The `visit.weighed` that assigns a captured weighing to the visit."""
    return (
        Kind.VISIT_WEIGHED,
        {"visit": v.visit, "weighing": weighing, "role": role, "weight_kg": weight},
    )


def flagged(v: VisitState, check: str, weighing: str, detail: str) -> Command:
    """The `visit.flagged` that records a check raised on the visit."""
    return (
        Kind.VISIT_FLAGGED,
        {"visit": v.visit, "check": check, "detail": detail, "weighing": weighing},
    )


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _opt_int(value: Any) -> int | None:
    return None if value is None else _as_int(value)

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
PENDING = "pending:"  # the id prefix of a provisional visit (stages known by plate and order)

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

    def __deepcopy__(self, memo: dict[int, Any]) -> Flag:
        """A flag is never edited, so copies of a projection share it."""
        return self


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
    # Derived on a plant timeline (never events): stages recorded by plate and order before
    # the arrival was known here (`provisional`), duplicate arrivals folded into this one
    # (`merged_from`), and stages the timeline contradicts (`conflicts`).
    provisional: bool = False
    merged_from: list[str] = field(default_factory=list)
    conflicts: list[Flag] = field(default_factory=list)

    @staticmethod
    def folded(visit: str, events: list[tuple[int, Event]]) -> VisitState:
        """A visit folded afresh from its (index, event) pairs, e.g. after a correction."""
        v = VisitState(visit)
        for index, ev in events:
            v.apply(ev, index)
        v.events = events
        return v

    @staticmethod
    def pending(plate: str, order: str) -> VisitState:
        """The provisional visit of stages recorded by plate and order before its arrival."""
        return VisitState(pending_id(plate, order), plate=plate, order=order, provisional=True)

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
        mark = Mark.of(ev)
        if ev.kind == Kind.VISIT_ARRIVED and self.arrived is not None:
            # a duplicate arrival of the same plate and order, folded into this visit
            self.merged_from.append(str(ev.data.get("visit")))
            return
        if ev.kind in _AFTER_CLOSE and not self.open:
            closed = self.exited or self.cancelled
            how = "left" if self.exited else "was cancelled"
            self.conflicts.append(
                Flag(
                    "after_close",
                    f"{ev.kind} recorded at {ev.terminal} {ev.at} after the visit {how}"
                    f" at {closed.at if closed else ''}",
                    "",
                    mark,
                )
            )
        if ev.kind == Kind.VISIT_GATE_IN:
            before = self.stage_marks()
            if before:
                first = before[0]
                self.conflicts.append(
                    Flag(
                        "before_gate_in",
                        f"a stage was recorded at {first.terminal} {first.at} before the"
                        f" gate-in at {ev.terminal} {ev.at}",
                        "",
                        mark,
                    )
                )
        shown = (self.stage, self.stage_since)
        keep = not self.open or (ev.kind == Kind.VISIT_GATE_IN and bool(self.stage_marks()))
        step(self, ev.data, mark, index)
        stage = STAGE_OF.get(ev.kind)  # weighings set their own stage, flags none
        if stage is not None:
            self.stage, self.stage_since = stage, ev.at
        if keep:
            # On a plant timeline a stage can fold after a later one (a gate-in folded after
            # the loading it let in) or after the end: the stage shown does not go back.
            self.stage, self.stage_since = shown

    def stage_marks(self) -> list[Mark]:
        """The marks of the stages after the gate (queue, weighings, loading, seal) folded so far."""
        marks = [m for m in (self.last_queue, self.loading_started, self.sealed) if m is not None]
        marks += [w.mark for w in self.weighings]
        return sorted(marks, key=lambda m: (m.at, m.terminal))

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
            **self._plant_fields(),
        }

    def _plant_fields(self) -> dict[str, Any]:
        """The derived plant-timeline fields, present only when set (a lone terminal never
        sets them, so its answers keep their shape)."""
        out: dict[str, Any] = {}
        if self.provisional:
            out["provisional"] = True
        if self.merged_from:
            out["merged_from"] = list(self.merged_from)
        if self.conflicts:
            out["conflicts"] = [{"check": f.check, "detail": f.detail} for f in self.conflicts]
        return out


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


# stages that contradict a visit already closed when the timeline folds them after its end
_AFTER_CLOSE = frozenset(
    {
        Kind.VISIT_GATE_IN,
        Kind.VISIT_QUEUED_AT_SCALE,
        Kind.VISIT_WEIGHED,
        Kind.VISIT_LOADING_STARTED,
        Kind.VISIT_LOADING_FINISHED,
        Kind.VISIT_SEALED,
        Kind.VISIT_EXITED,
        Kind.VISIT_CANCELLED,
    }
)

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


def pending_id(plate: str, order: str) -> str:
    """The id of the provisional visit of a plate and order."""
    return f"{PENDING}{plate}/{order}"


def plate_order(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (plate, order) an event's data names, if it names both."""
    plate, order = data.get("plate"), data.get("order")
    if isinstance(plate, str) and plate and isinstance(order, str) and order:
        return plate, order
    return None


class Identities:
    """Which visit each visit event belongs to, decided in plant-timeline order.

    An event names its visit by id, or, recorded where the visit was not known yet, by plate
    and order (DESIGN section 4). A plate-and-order stage joins the latest visit that arrived
    with that plate and order; before any did, it waits in a provisional visit that the arrival
    takes over. A second arrival of a plate and order whose visit is still open, recorded on
    another terminal, is the same truck registered on two terminals that could not see each
    other (a terminal that saw the first refuses a second arrival of the plate): the earlier
    arrival in timeline order wins and the later one's events join it (`merged_from`). Every node folds
    the same events in the same order, so every node decides the same way.
    """

    def __init__(self) -> None:
        self.alias: dict[str, str] = {}  # a merged arrival's visit → the visit it joined
        self.latest: dict[tuple[str, str], str] = {}  # (plate, order) → its latest visit

    def forget(self, gone: VisitState) -> None:
        """Drop what names a visit no longer kept (the live projection's memory bound): its
        plate-and-order entry and the arrivals merged into it. A later stage by its plate and
        order then waits in a provisional visit, as for a visit never seen."""
        key = (gone.plate, gone.order)
        if self.latest.get(key) == gone.visit:
            del self.latest[key]
        for merged in gone.merged_from:
            if self.alias.get(merged) == gone.visit:
                del self.alias[merged]

    def route(self, ev: Event, visits: Mapping[str, VisitState]) -> str | None:
        """The id of the visit `ev` folds into (a provisional id while its arrival is
        unknown), or None when the event names no visit."""
        d = ev.data
        vid = d.get("visit")
        key = plate_order(d)
        if ev.kind == Kind.VISIT_ARRIVED:
            if not isinstance(vid, str):
                return None
            if key is not None:
                first = visits.get(self.latest.get(key, ""))
                if (
                    first is not None
                    and first.visit != vid
                    and first.open
                    and first.arrived is not None
                    and first.arrived.terminal != ev.terminal
                ):
                    self.alias[vid] = first.visit
                    return first.visit
                self.latest[key] = vid
            return vid
        if isinstance(vid, str):
            return self.alias.get(vid, vid)
        if key is None:
            return None
        return self.latest.get(key) or pending_id(*key)


def join_pending(v: VisitState, visits: dict[str, VisitState]) -> VisitState | None:
    """Fold the provisional visit of v's plate and order, if any, into v (just arrived);
    return the provisional visit, now removed from `visits`."""
    pending = visits.pop(pending_id(v.plate, v.order), None)
    if pending is None:
        return None
    for index, ev in pending.events:
        v.events.append((index, ev))
        v.apply(ev, index)
    return pending


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
    ids = Identities()
    for index, raw in enumerate(ordered, 1):
        if not raw.kind.startswith("visit."):
            continue
        ev = corrected(raw, fixes) if fixes else raw
        vid = ids.route(ev, visits)
        if vid is None:
            continue
        v = visits.get(vid)
        if v is None:
            key = plate_order(ev.data) if vid.startswith(PENDING) else None
            v = visits[vid] = VisitState.pending(*key) if key else VisitState(vid)
        v.events.append((index, ev))
        v.apply(ev, index)
        if ev.kind == Kind.VISIT_ARRIVED and v.visit == ev.data.get("visit"):
            join_pending(v, visits)
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

"""The visit projection: a pure, rebuildable fold of visit and weighing events, with validation."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agent.config import KpiConfig
from agent.domain import plates
from agent.domain.events import Event, parse_at

PLANNED_KG = (1, 100_000)
WEIGHT_KG = (1, 200_000)
BAGS = (1, 10_000)
BAG_KG = (1, 5_000)
MAX_TEXT = 64
MAX_REASON = 200
MAX_SEALS = 20
SEAL = re.compile(r"[0-9A-Za-z][0-9A-Za-z_/-]{0,31}")
KEEP_UNASSIGNED = 200  # captures nobody claimed; the oldest are forgotten
KEEP_CLOSED = 1000  # closed visits kept in memory for corrections and tare history
LIVE_FIELDS = ("counted_bags", "finish_suggested", "hint")  # not derived from events

# Fields an operator may correct, per event kind (docs/visits-and-kpis.md: a correction is an event).
CORRECTABLE: dict[str, tuple[str, ...]] = {
    "visit.arrived": ("plate", "order", "product", "load", "planned_kg"),
    "visit.weighed": ("weight_kg", "role"),
    "visit.loading_started": ("point",),
    "visit.loading_finished": ("point", "bags", "bag_kg"),
    "visit.sealed": ("seals",),
    "visit.cancelled": ("reason",),
}

Command = tuple[str, dict[str, Any]]  # (event kind, data) to append


class Refusal(Exception):
    """An operator command cannot be accepted; the message is one clear sentence."""


# --- clocks ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mark:
    """Where and when an event happened, enough to measure a duration to another one."""

    at: str
    terminal: str
    epoch: str
    boot: str
    mono_ns: int

    @staticmethod
    def of(ev: Event) -> Mark:
        """The mark of an event."""
        return Mark(ev.at, ev.terminal, ev.epoch, ev.boot, ev.mono_ns)


def duration_ms(start: Mark, end: Mark) -> int:
    """Milliseconds from `start` to `end`: monotonic within one terminal, epoch and boot.

    Otherwise (another terminal, a reboot, a new database) the wall clocks are all there is.
    """
    if (start.terminal, start.epoch, start.boot) == (end.terminal, end.epoch, end.boot):
        return (end.mono_ns - start.mono_ns) // 1_000_000
    delta = parse_at(end.at) - parse_at(start.at)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


RELEASES_KEPT = 11  # the last ten gaps between releases make the estimate
DEFAULT_RELEASE_MIN = {"gate": 5.0, "scale": 3.0}  # until the day has shown its own pace
MAX_GAP_MIN = 60.0  # a longer gap is a pause (a meal, a night), not the queue's pace


def release_interval_min(marks: list[Mark], default_min: float) -> float:
    """Minutes between releases from a queue: the median of the recent gaps, ignoring pauses.

    Pure: the expected wait of the n-th vehicle in a queue is n times this.
    """
    gaps = sorted(
        g
        for a, b in itertools.pairwise(marks)
        if 0 <= (g := duration_ms(a, b) / 60_000) <= MAX_GAP_MIN
    )
    if len(gaps) < 3:
        return default_min
    mid = len(gaps) // 2
    return gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2


def minutes(ms: int | None) -> float | None:
    """Milliseconds as minutes rounded to 0.1 for display."""
    return None if ms is None else round(ms / 60_000, 1)


# --- corrections (shared with the KPI engine) -------------------------------------------------


def corrected(ev: Event, corrections: Mapping[str, Mapping[str, Any]]) -> Event:
    """The event with the operator's corrections of its data fields applied."""
    fix = corrections.get(ev.id)
    if not fix:
        return ev
    return dataclasses.replace(ev, data={**ev.data, **fix})


def collect_corrections(events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """target event id → {field: new value} from `operator.corrected` events (last one wins)."""
    fixes: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev.kind == "operator.corrected":
            d = ev.data
            target, name = d.get("target_event"), d.get("field")
            if isinstance(target, str) and isinstance(name, str):
                fixes.setdefault(target, {})[name] = d.get("new")
    return fixes


# --- one visit ---------------------------------------------------------------------------------

STAGE_OF = {
    "visit.arrived": "arrived",
    "visit.gate_in": "gated_in",
    "visit.queued_at_scale": "scale_queue",
    "visit.loading_started": "loading",
    "visit.loading_finished": "loaded",
    "visit.sealed": "sealed",
    "visit.exited": "exited",
    "visit.cancelled": "cancelled",
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
    cancelled: Mark | None = None
    cancel_reason: str | None = None
    flags: list[dict[str, str]] = field(default_factory=list)
    raised: set[tuple[str, str]] = field(default_factory=set)
    events: list[tuple[int, Event]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Neither exited nor cancelled."""
        return self.exited is None and self.cancelled is None

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
        """Fold one of this visit's events in."""
        d, mark = ev.data, Mark.of(ev)
        kind = ev.kind
        if kind == "visit.arrived":
            self.plate = str(d.get("plate", ""))
            self.order = str(d.get("order", ""))
            self.product = str(d.get("product", ""))
            self.load = str(d.get("load", ""))
            self.planned_kg = _as_int(d.get("planned_kg"))
            self.index = index
            self.arrived = mark
        elif kind == "visit.gate_in":
            self.gate_in = mark
        elif kind == "visit.queued_at_scale":
            self.queued, self.queued_index, self.last_queue = mark, index, mark
            self.scale = d.get("scale")
        elif kind == "visit.weighed":
            role = "gross" if d.get("role") == "gross" else "tare"
            self.weighings.append(
                Weighing(
                    str(d.get("weighing")),
                    role,
                    _as_int(d.get("weight_kg")),
                    mark,
                    index,
                    self.last_queue,
                )
            )
            self.queued = None
            self.last_queue = None
            self.stage = "weighed" if role == "gross" else "tared"
            self.stage_since = ev.at
            return
        elif kind == "visit.loading_started":
            self.loading_started, self.loading_finished = mark, None
            self.point = d.get("point")
            counter = d.get("counter")
            self.counter = dict(counter) if isinstance(counter, dict) else None
        elif kind == "visit.loading_finished":
            self.loading_finished = mark
            if d.get("point"):
                self.point = d.get("point")
            self.bags = _opt_int(d.get("bags"))
            self.bag_kg = _opt_int(d.get("bag_kg"))
        elif kind == "visit.sealed":
            self.sealed = mark
            self.seals = [str(s) for s in d.get("seals") or []]
        elif kind == "visit.exited":
            self.exited, self.queued = mark, None
        elif kind == "visit.cancelled":
            self.cancelled, self.queued = mark, None
            self.cancel_reason = d.get("reason")
        elif kind == "visit.flagged":
            check = str(d.get("check"))
            self.flags.append({"check": check, "detail": str(d.get("detail", ""))})
            self.raised.add((check, str(d.get("weighing", ""))))
            return
        else:
            return
        self.stage = STAGE_OF[kind]
        self.stage_since = ev.at

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
            "cancel_reason": self.cancel_reason,
            "flags": [dict(f) for f in self.flags],
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


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _opt_int(value: Any) -> int | None:
    return None if value is None else _as_int(value)


# --- the projection ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What validation needs beyond the projection: ids, scales and packers of this terminal."""

    new_visit_id: str = ""
    scales: tuple[str, ...] = ()
    default_scale: str = ""
    packer_bag_kg: Mapping[str, int] = field(default_factory=dict)


class Projection:
    """Visits, the gate queue, the scale queue and unassigned weighings, folded from events.

    `apply` takes every stored event in seq order (kinds it does not use are skipped), so a
    rebuild from the store and the live, incremental projection are the same fold.
    """

    def __init__(self, kpi: KpiConfig | None = None) -> None:
        self.kpi = kpi or KpiConfig()
        self.visits: dict[str, VisitState] = {}
        self.open_by_plate: dict[str, str] = {}
        self.event_visit: dict[str, str] = {}  # event id → visit id (for corrections)
        self.unassigned: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.assigned: dict[str, str] = {}  # weighing → visit (kept for open visits' refusals)
        self.pending_auto: OrderedDict[str, str] = OrderedDict()  # weighing → visit
        self.archived_tares: dict[str, list[tuple[int, int]]] = {}  # plate → [(index, kg)]
        self.closed: list[str] = []
        self.dirty: set[str] = set()
        self.loaded: dict[str, int] = {}  # live packer `loaded` totals (not from events)
        self.last_seq = 0
        self.count = 0
        # The latest releases from each queue (gate-ins, weighings), for the drivers' estimates.
        self.releases: dict[str, list[Mark]] = {"gate": [], "scale": []}

    # --- folding ------------------------------------------------------------------------------

    def apply(self, ev: Event) -> None:
        """Fold one event in (events of kinds the projection does not use are only counted)."""
        self.last_seq = max(self.last_seq, ev.seq)
        kind = ev.kind
        if not relevant(kind):
            return
        self.count += 1
        index = self.count
        if kind == "weighing.captured":
            self._captured(ev)
        elif kind == "operator.corrected":
            self._corrected(ev)
        elif kind.startswith("visit."):
            vid = ev.data.get("visit")
            if not isinstance(vid, str):
                return
            v = self.visits.get(vid)
            if kind == "visit.arrived":
                if v is not None:
                    return
                v = self.visits[vid] = VisitState(vid)
            elif v is None:
                return  # a visit this terminal never saw arrive
            was_open = v.open
            if kind != "visit.flagged":
                # A match is decided when the capture arrives; anything after it decides again.
                for w, target in list(self.pending_auto.items()):
                    if target == vid:
                        del self.pending_auto[w]
            v.events.append((index, ev))
            self.event_visit[ev.id] = vid
            v.apply(ev, index)
            self.dirty.add(vid)
            if kind in ("visit.gate_in", "visit.weighed"):
                marks = self.releases["gate" if kind == "visit.gate_in" else "scale"]
                marks.append(Mark.of(ev))
                del marks[:-RELEASES_KEPT]
            if kind == "visit.weighed":
                w = str(ev.data.get("weighing"))
                self.unassigned.pop(w, None)
                self.pending_auto.pop(w, None)
                self.assigned[w] = vid
            if kind == "visit.arrived" and v.open:
                self.open_by_plate[v.plate] = vid
            if was_open and not v.open:
                self._close(v)

    def _captured(self, ev: Event) -> None:
        d = ev.data
        w = str(d.get("weighing"))
        if w in self.assigned:
            return
        scale = d.get("scale")
        self.unassigned[w] = {
            "weighing": w,
            "scale": scale,
            "weight_kg": _as_int(d.get("weight_kg")),
            "at": ev.at,
        }
        while len(self.unassigned) > KEEP_UNASSIGNED:
            old, _ = self.unassigned.popitem(last=False)
            self.pending_auto.pop(old, None)
        waiting = [v for v in self.visits.values() if v.open and v.queued and v.scale == scale]
        if len(waiting) == 1:
            v = waiting[0]
            try:
                _check_weight(
                    v, "tare" if v.tare_kg is None else "gross", _as_int(d.get("weight_kg"))
                )
            except Refusal:
                return  # left for the operator
            self.pending_auto[w] = v.visit

    def _corrected(self, ev: Event) -> None:
        d = ev.data
        target = d.get("target_event")
        vid = self.event_visit.get(str(target))
        v = self.visits.get(vid) if vid else None
        if v is None:
            return
        name = str(d.get("field"))
        was_open = v.open
        old_plate = v.plate
        events = [
            (
                i,
                dataclasses.replace(e, data={**e.data, name: d.get("new")})
                if e.id == target
                else e,
            )
            for i, e in v.events
        ]
        fresh = VisitState(v.visit)
        for i, e in events:
            fresh.apply(e, i)
        fresh.events = events
        self.visits[v.visit] = fresh
        self.dirty.add(v.visit)
        if was_open and self.open_by_plate.get(old_plate) == v.visit:
            del self.open_by_plate[old_plate]
            if fresh.open:
                self.open_by_plate[fresh.plate] = v.visit

    def _close(self, v: VisitState) -> None:
        if self.open_by_plate.get(v.plate) == v.visit:
            del self.open_by_plate[v.plate]
        for w in v.weighings:
            self.assigned.pop(w.weighing, None)
        self.closed.append(v.visit)
        if len(self.closed) > KEEP_CLOSED:
            gone = self.visits.pop(self.closed.pop(0), None)
            if gone is not None:
                for w in gone.weighings:
                    if w.role == "tare":
                        self.archived_tares.setdefault(gone.plate, []).append(
                            (w.index, w.weight_kg)
                        )
                history = self.archived_tares.get(gone.plate, [])
                del history[: -max(self.kpi.tare_history, 1)]
                for _, e in gone.events:
                    self.event_visit.pop(e.id, None)

    # --- views --------------------------------------------------------------------------------

    def open_visits(self) -> list[VisitState]:
        """Open visits in arrival order."""
        return sorted((v for v in self.visits.values() if v.open), key=lambda v: v.index)

    def snapshot(self, live: bool = True) -> dict[str, Any]:
        """The `visits` topic; with `live=False` the fields that events alone cannot give are
        left empty (that is what a rebuild from the store yields)."""
        loaded = self.loaded if live else None
        opened = self.open_visits()
        queue = [v for v in opened if v.gate_in is None]
        scale_queue = sorted((v for v in opened if v.queued), key=lambda v: v.queued_index)
        return {
            "open": [v.to_dict(loaded) for v in opened],
            "queue": self._with_expected(queue, "gate", loaded),
            "scale_queue": self._with_expected(scale_queue, "scale", loaded),
            "unassigned": [dict(w) for w in reversed(self.unassigned.values())],
        }

    def _with_expected(
        self, queue: list[VisitState], which: str, loaded: dict[str, int] | None
    ) -> list[dict[str, Any]]:
        """Queue entries with `waits.expected_min`: the drivers' estimate of their wait."""
        step = release_interval_min(self.releases[which], DEFAULT_RELEASE_MIN[which])
        out = []
        for position, v in enumerate(queue, 1):
            d = v.to_dict(loaded)
            d["waits"] = {**d["waits"], "expected_min": round(position * step, 1)}
            out.append(d)
        return out

    def queue_length(self) -> int:
        """Vehicles arrived and not yet gated in."""
        return sum(1 for v in self.visits.values() if v.open and v.gate_in is None)

    def find(self, req: Mapping[str, Any]) -> VisitState:
        """The visit a request names by `visit` (id) or `plate` (of its open visit)."""
        vid, plate = req.get("visit"), req.get("plate")
        if vid:
            v = self.visits.get(str(vid))
            if v is None:
                raise Refusal(f"there is no visit {vid}; list them with visits.list")
            return v
        if plate:
            try:
                norm = plates.normalise(str(plate))
            except plates.PlateError as exc:
                raise Refusal(str(exc)) from None
            found = self.open_by_plate.get(norm)
            if found is None:
                raise Refusal(f"plate {norm} has no open visit; record its arrival first")
            return self.visits[found]
        raise Refusal("name the visit with its id (visit) or its plate")

    def tare_history(self, plate: str, before: int) -> list[int]:
        """The plate's tares folded before index `before`, oldest first (at most tare_history)."""
        found = [(i, kg) for i, kg in self.archived_tares.get(plate, []) if i < before]
        for v in self.visits.values():
            if v.plate == plate:
                found.extend((w.index, w.weight_kg) for w in v.weighings if w.role == "tare")
        found = sorted(x for x in found if x[0] < before)
        return [kg for _, kg in found[-self.kpi.tare_history :]]

    # --- checks and automatic matching --------------------------------------------------------

    def checks(self, v: VisitState) -> list[Command]:
        """`visit.flagged` events this visit needs and has not had yet."""
        out: list[Command] = []
        cfg = self.kpi
        tare = v.last("tare")
        if tare and ("tare_fluctuation", tare.weighing) not in v.raised:
            history = self.tare_history(v.plate, tare.index)
            if len(history) >= cfg.tare_min_history:
                ref = _median(history)
                allowed = max(Decimal(cfg.tare_tolerance_kg), _pct(cfg.tare_tolerance_pct) * ref)
                diff = abs(Decimal(tare.weight_kg) - ref)
                if diff > allowed:
                    out.append(
                        _flag(
                            v,
                            "tare_fluctuation",
                            tare.weighing,
                            f"tare {tare.weight_kg} kg differs from the reference {_kg(ref)} kg"
                            f" (median of {len(history)} previous tares) by {_kg(diff)} kg,"
                            f" more than {_kg(allowed)} kg",
                        )
                    )
        gross, net = v.last("gross"), v.net_kg
        if gross is None or net is None:
            return out
        if ("underloaded", gross.weighing) not in v.raised and v.planned_kg > 0:
            floor = _pct(cfg.underload_pct) * v.planned_kg
            if net < floor:
                out.append(
                    _flag(
                        v,
                        "underloaded",
                        gross.weighing,
                        f"net {net} kg is below {cfg.underload_pct:g} % of the planned"
                        f" {v.planned_kg} kg",
                    )
                )
        if (
            v.load == "bagged"
            and v.bags is not None
            and v.bag_kg is not None
            and ("bagged_overweight", gross.weighing) not in v.raised
        ):
            nominal = v.bags * v.bag_kg
            if net > nominal * (1 + _pct(cfg.overweight_pct)):
                out.append(
                    _flag(
                        v,
                        "bagged_overweight",
                        gross.weighing,
                        f"net {net} kg exceeds {v.bags} bags × {v.bag_kg} kg = {nominal} kg"
                        f" by more than {cfg.overweight_pct:g} %",
                    )
                )
        return out

    def reactions(self) -> list[Command]:
        """Events the projection calls for by itself: automatic weighing matches, then checks.

        Append them, fold them in and ask again until the answer is empty.
        """
        for w, vid in list(self.pending_auto.items()):
            del self.pending_auto[w]
            v = self.visits.get(vid)
            capture = self.unassigned.get(w)
            if v is None or capture is None or not v.open or v.queued is None:
                continue
            role = "tare" if v.tare_kg is None else "gross"
            try:
                _check_weight(v, role, capture["weight_kg"])
            except Refusal:
                continue  # left for the operator
            return [_weighed(v, w, role, capture["weight_kg"])]
        out: list[Command] = []
        for vid in sorted(self.dirty):
            v = self.visits.get(vid)
            if v is not None and v.open:
                out.extend(self.checks(v))
        self.dirty.clear()
        return out

    # --- operator commands --------------------------------------------------------------------

    def command(self, op: str, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
        """Validate one operator command against the projection; return the events to append.

        Raises Refusal with one sentence when the command cannot be accepted.
        """
        if op == "visit.arrive":
            return self._arrive(req, ctx)
        if op == "visit.correct":
            return self._correct(req)
        v = self.find(req)
        handler = {
            "visit.gate_in": self._gate_in,
            "visit.queue": self._queue,
            "visit.weigh": self._weigh,
            "visit.loading_start": self._loading_start,
            "visit.loading_finish": self._loading_finish,
            "visit.seal": self._seal,
            "visit.exit": self._exit,
            "visit.cancel": self._cancel,
        }.get(op)
        if handler is None:
            raise Refusal(f"unknown visit command {op!r}")
        return handler(v, req, ctx)

    def _arrive(self, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
        try:
            plate = plates.normalise(_text(req, "plate", required=True))
        except plates.PlateError as exc:
            raise Refusal(str(exc)) from None
        if plate in self.open_by_plate:
            raise Refusal(
                f"plate {plate} already has an open visit {self.open_by_plate[plate]};"
                " exit or cancel it first"
            )
        data = {
            "visit": ctx.new_visit_id,
            "plate": plate,
            "order": _text(req, "order", required=True),
            "product": _text(req, "product", required=True),
            "load": _load(req.get("load")),
            "planned_kg": _int(req, "planned_kg", *PLANNED_KG, required=True),
        }
        return [("visit.arrived", data)]

    def _gate_in(self, v: VisitState, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
        _require_open(v)
        if v.gate_in is not None:
            raise Refusal(f"{_name(v)} is already through the gate (since {v.gate_in.at})")
        # The gate releases in arrival order; jumping the queue needs a recorded reason.
        ahead = [x for x in self.open_visits() if x.gate_in is None and x.index < v.index]
        reason = _text(req, "reason", limit=MAX_REASON)
        if ahead and not reason:
            raise Refusal(
                f"{_name(v)} is not next at the gate ({ahead[0].plate} arrived earlier);"
                " give a reason to release it out of order"
            )
        data: dict[str, Any] = {"visit": v.visit}
        if ahead:
            data.update(reason=reason, ahead=[x.plate for x in ahead])
        return [("visit.gate_in", data)]

    def _queue(self, v: VisitState, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
        _require_in(v)
        scale = _text(req, "scale") or ctx.default_scale
        if ctx.scales and scale not in ctx.scales:
            raise Refusal(f"there is no scale {scale!r}; the scales are {', '.join(ctx.scales)}")
        if v.queued is not None:
            raise Refusal(f"{_name(v)} is already queued at scale {v.scale or '(default)'}")
        return [("visit.queued_at_scale", {"visit": v.visit, "scale": scale})]

    def _weigh(self, v: VisitState, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
        _require_in(v)
        w = _text(req, "weighing")
        if not w:
            if not self.unassigned:
                raise Refusal("there is no unassigned weighing; wait for the scale to capture one")
            w = next(reversed(self.unassigned))
        capture = self.unassigned.get(w)
        if capture is None:
            owner = self.assigned.get(w)
            if owner is not None:
                raise Refusal(f"weighing {w} is already assigned to {_name(self.visits[owner])}")
            raise Refusal(f"there is no unassigned weighing {w}; see visits.list for captures")
        role = req.get("role") or ("tare" if v.tare_kg is None else "gross")
        if role not in ("tare", "gross"):
            raise Refusal(f"role must be 'tare' or 'gross', not {role!r}")
        _check_weight(v, role, capture["weight_kg"])
        return [_weighed(v, w, role, capture["weight_kg"])]

    def _loading_start(
        self, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
    ) -> list[Command]:
        _require_in(v)
        point = _text(req, "point", required=True)
        if v.loading_started is not None and v.loading_finished is None:
            raise Refusal(f"{_name(v)} is already loading at {v.point}; finish that first")
        if v.loading_finished is not None:
            raise Refusal(f"{_name(v)} has already been loaded; correct it if that was wrong")
        for other in self.visits.values():
            if (
                other.open
                and other.point == point
                and other.loading_started is not None
                and other.loading_finished is None
            ):
                raise Refusal(f"point {point} is loading {_name(other)}; finish that first")
        data: dict[str, Any] = {"visit": v.visit, "point": point}
        if v.load == "bagged" and point in ctx.packer_bag_kg and point in self.loaded:
            data["counter"] = {
                "packer": point,
                "from": self.loaded[point],
                "bag_kg": ctx.packer_bag_kg[point],
            }
        return [("visit.loading_started", data)]

    def _loading_finish(
        self, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
    ) -> list[Command]:
        _require_open(v)
        if v.loading_started is None:
            raise Refusal(f"{_name(v)} has not started loading; record loading-start first")
        if v.loading_finished is not None:
            raise Refusal(f"{_name(v)} has already finished loading at {v.point}")
        point = _text(req, "point") or v.point
        if point != v.point:
            raise Refusal(f"{_name(v)} is loading at {v.point}, not at {point}")
        data: dict[str, Any] = {"visit": v.visit, "point": point}
        if v.load == "bagged":
            bags = _int(req, "bags", *BAGS)
            if bags is None:
                counted = v.to_dict(self.loaded)["counted_bags"]
                if not counted:
                    raise Refusal(f"give the number of bags loaded on {_name(v)}")
                bags = counted
            bag_kg = _int(req, "bag_kg", *BAG_KG)
            if bag_kg is None:
                bag_kg = ctx.packer_bag_kg.get(str(point), 50)
            data.update(bags=bags, bag_kg=bag_kg)
        elif req.get("bags") is not None or req.get("bag_kg") is not None:
            raise Refusal(f"{_name(v)} is a bulk load; it has no bags")
        return [("visit.loading_finished", data)]

    def _seal(self, v: VisitState, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
        _require_in(v)
        if v.loading_finished is None:
            raise Refusal(f"{_name(v)} has not finished loading; seal it after loading")
        if v.sealed is not None:
            raise Refusal(
                f"{_name(v)} is already sealed ({', '.join(v.seals)}); correct it if wrong"
            )
        seals = _seals(req.get("seals"))
        return [("visit.sealed", {"visit": v.visit, "seals": seals})]

    def _exit(self, v: VisitState, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
        _require_in(v)
        if v.loading_started is not None and v.loading_finished is None:
            raise Refusal(f"{_name(v)} is still loading at {v.point}; finish loading first")
        if v.tare_kg is not None and v.gross_kg is None:
            raise Refusal(f"{_name(v)} has a tare but no gross; weigh it loaded before it leaves")
        if not v.seals:
            if req.get("seals_seen"):
                raise Refusal(f"{_name(v)} was never sealed; there are no seals to confirm")
            return [("visit.exited", {"visit": v.visit})]
        # A sealed bulk truck leaves only after the gate confirms the seal numbers it sees.
        if not req.get("seals_seen"):
            if v.load != "bulk":
                return [("visit.exited", {"visit": v.visit})]
            raise Refusal(
                f"{_name(v)} is sealed; give the seal numbers the gate sees (seals_seen) to let it out"
            )
        seen = _seals(req.get("seals_seen"))
        out: list[Command] = []
        if sorted(seen) != sorted(v.seals):
            missing = [s for s in v.seals if s not in seen]
            extra = [s for s in seen if s not in v.seals]
            detail = f"sealed {' '.join(v.seals)}; the gate saw {' '.join(seen)}"
            if missing:
                detail += f"; missing {' '.join(missing)}"
            if extra:
                detail += f"; unknown {' '.join(extra)}"
            out.append(_flag(v, "seal_mismatch", "", detail))
        out.append(("visit.exited", {"visit": v.visit, "seals_seen": seen}))
        return out

    def _cancel(self, v: VisitState, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
        _require_open(v)
        reason = _text(req, "reason", required=True, limit=MAX_REASON)
        return [("visit.cancelled", {"visit": v.visit, "reason": reason})]

    def _correct(self, req: Mapping[str, Any]) -> list[Command]:
        target = _text(req, "target_event", required=True, limit=200)
        vid = self.event_visit.get(target)
        if vid is None:
            raise Refusal(
                f"there is no visit event {target} to correct; give an id shown by tally events"
            )
        v = self.visits[vid]
        ev = next(e for _, e in v.events if e.id == target)
        allowed = CORRECTABLE.get(ev.kind, ())
        name = _text(req, "field", required=True)
        if name not in allowed:
            if not allowed:
                raise Refusal(f"a {ev.kind} event cannot be corrected")
            raise Refusal(
                f"field {name!r} of a {ev.kind} event cannot be corrected;"
                f" correctable: {', '.join(allowed)}"
            )
        new = _correct_value(name, req.get("new"))
        if name == "plate" and v.open and new != v.plate and new in self.open_by_plate:
            raise Refusal(f"plate {new} already has an open visit; correct that one first")
        old = ev.data.get(name)
        if old == new:
            raise Refusal(f"{name} is already {new!r}; nothing to correct")
        reason = _text(req, "reason", required=True, limit=MAX_REASON)
        operator = _text(req, "operator", required=True)
        return [
            (
                "operator.corrected",
                {
                    "target_event": target,
                    "visit": vid,
                    "field": name,
                    "old": old,
                    "new": new,
                    "reason": reason,
                    "operator": operator,
                },
            )
        ]


def relevant(kind: str) -> bool:
    """Whether the projection folds events of this kind."""
    return kind.startswith("visit.") or kind in ("weighing.captured", "operator.corrected")


def rebuild(events: Iterable[Event], kpi: KpiConfig | None = None) -> Projection:
    """A projection folded from stored events in seq order."""
    p = Projection(kpi)
    for ev in events:
        p.apply(ev)
    return p


# --- helpers -----------------------------------------------------------------------------------


def _name(v: VisitState) -> str:
    return f"{v.plate} (visit {v.visit})"


def _require_open(v: VisitState) -> None:
    if v.cancelled is not None:
        raise Refusal(f"{_name(v)} was cancelled ({v.cancel_reason}); record a new arrival")
    if v.exited is not None:
        raise Refusal(f"{_name(v)} has already left at {v.exited.at}")


def _require_in(v: VisitState) -> None:
    _require_open(v)
    if v.gate_in is None:
        raise Refusal(f"{_name(v)} is not through the gate yet; record gate-in first")


def _check_weight(v: VisitState, role: str, weight: int) -> None:
    if not WEIGHT_KG[0] <= weight <= WEIGHT_KG[1]:
        raise Refusal(f"{weight} kg is not a truck weight (1 to {WEIGHT_KG[1]} kg)")
    if role == "gross":
        tare = v.tare_kg
        if tare is None:
            raise Refusal(f"{_name(v)} has no tare yet; weigh it empty first")
        if weight <= tare:
            raise Refusal(
                f"the gross {weight} kg of {_name(v)} is not above its tare {tare} kg;"
                " assign it as a tare or pick another weighing"
            )


def _weighed(v: VisitState, weighing: str, role: str, weight: int) -> Command:
    return (
        "visit.weighed",
        {"visit": v.visit, "weighing": weighing, "role": role, "weight_kg": weight},
    )


def _flag(v: VisitState, check: str, weighing: str, detail: str) -> Command:
    return (
        "visit.flagged",
        {"visit": v.visit, "check": check, "detail": detail, "weighing": weighing},
    )


def _median(values: list[int]) -> Decimal:
    s = sorted(values)
    mid = len(s) // 2
    if len(s) % 2:
        return Decimal(s[mid])
    return (Decimal(s[mid - 1]) + Decimal(s[mid])) / 2


def _pct(value: float) -> Decimal:
    return Decimal(str(value)) / 100


def _kg(value: Decimal) -> str:
    return f"{value.normalize():f}" if value != value.to_integral() else str(int(value))


def _text(
    req: Mapping[str, Any], key: str, *, required: bool = False, limit: int = MAX_TEXT
) -> str:
    value = req.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Refusal(f"{key.replace('_', ' ')} is missing; give it")
        return ""
    if not isinstance(value, str):
        raise Refusal(f"{key.replace('_', ' ')} must be text, not {value!r}")
    value = value.strip()
    if len(value) > limit or any(c in value for c in "\r\n\t"):
        raise Refusal(f"{key.replace('_', ' ')} must be one line of at most {limit} characters")
    return value


def _int(
    req: Mapping[str, Any], key: str, lo: int, hi: int, *, required: bool = False
) -> int | None:
    value = req.get(key)
    label = key.replace("_", " ")
    if value is None or value == "":
        if required:
            raise Refusal(f"{label} is missing; give it")
        return None
    number = _whole(value)
    if number is None or not lo <= number <= hi:
        raise Refusal(f"{label} must be a whole number from {lo} to {hi}, not {value!r}")
    return number


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,9}\s*", value):
        return int(value)
    return None


def _load(value: Any) -> str:
    if value not in ("bagged", "bulk"):
        raise Refusal(f"load must be 'bagged' or 'bulk', not {value!r}")
    return str(value)


def _seals(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not value:
        raise Refusal("give at least one seal number")
    seals = [str(s).strip() for s in value if str(s).strip()]
    if not seals or len(seals) > MAX_SEALS:
        raise Refusal(f"give 1 to {MAX_SEALS} seal numbers")
    for s in seals:
        if not SEAL.fullmatch(s):
            raise Refusal(f"seal {s!r} is not a seal number (letters, digits, '-', '/', '_')")
    if len(set(seals)) != len(seals):
        raise Refusal("a seal number is given twice")
    return seals


def _correct_value(name: str, value: Any) -> Any:
    req = {name: value}
    if name == "plate":
        try:
            return plates.normalise(_text(req, name, required=True))
        except plates.PlateError as exc:
            raise Refusal(str(exc)) from None
    if name == "load":
        return _load(value)
    if name == "role":
        if value not in ("tare", "gross"):
            raise Refusal(f"role must be 'tare' or 'gross', not {value!r}")
        return value
    bounds = {"planned_kg": PLANNED_KG, "weight_kg": WEIGHT_KG, "bags": BAGS, "bag_kg": BAG_KG}
    if name in bounds:
        return _int(req, name, *bounds[name], required=True)
    if name == "seals":
        return _seals(value)
    limit = MAX_REASON if name == "reason" else MAX_TEXT
    return _text(req, name, required=True, limit=limit)

"""The live visit projection: open visits, the gate and scale queues with their expected waits,
unassigned weighings, and a rebuild from stored events."""

from __future__ import annotations

import itertools
import marshal
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from agent.config import KpiConfig
from agent.domain import visit_checks, visit_inputs
from agent.domain.corrections import corrected
from agent.domain.events import Event, format_at, parse_at, plain_bytes, plain_fields
from agent.domain.kinds import Kind
from agent.domain.marks import Mark, duration_ms
from agent.domain.visit import (
    PENDING,
    Command,
    Identities,
    VisitState,
    join_pending,
    pending_id,
    plate_order,
    weighed,
)
from agent.domain.visit_inputs import Refusal

KEEP_UNASSIGNED = 200  # captures nobody claimed; the oldest are forgotten
# Closed visits kept in memory: a late stage on the plant timeline still joins one, a
# correction refolds it, `visits.list --visit` shows it (an older visit's event is corrected
# from the store, and its tares stay in archived_tares)
KEEP_CLOSED = 1000
# The latest closed visits kept as objects; older ones are kept frozen as their events
# (`freeze_visit`), and folded again when something reads or changes one
SETTLE_AFTER = 20
KEEP_TARE_PLATES = 5000  # plates whose archived tares are kept; the least recent are forgotten
PENDING_DAYS = 1  # a provisional visit waits this many plant days after its own for its arrival
LIVE_FIELDS = ("counted_bags", "finish_suggested", "hint")  # not derived from events

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


class Projection:
    """Visits, the gate queue, the scale queue and unassigned weighings, folded from events.

    `apply` takes every stored event in seq order (kinds it does not use are skipped), so a
    rebuild from the store and the live, incremental projection are the same fold.
    """

    def __init__(
        self,
        kpi: KpiConfig | None = None,
        own: str | None = None,
        tz: tzinfo | None = None,
        keep_closed: int | None = None,
        settle_after: int | None = SETTLE_AFTER,
    ) -> None:
        self.kpi = kpi or KpiConfig()
        # closed visits kept in memory (default KEEP_CLOSED), the oldest dropped first
        self.keep_closed = KEEP_CLOSED if keep_closed is None else keep_closed
        # closed visits kept as objects before they are frozen into `settled` (None: never)
        self.settle_after = settle_after
        self.tz = tz or UTC  # where plant days begin (a provisional visit's bound)
        # On a plant timeline, the terminal whose events call for reactions here: a capture is
        # matched and a visit checked only by the terminal that recorded the change, so two
        # terminals never append the same match or flag (None: every event, one terminal).
        self.own = own
        self.visits: dict[str, VisitState] = {}  # open visits and the latest closed ones
        # Closed visits kept frozen (every one closed, none of them open: no open-visit view
        # needs them), with their tares by plate for the tare history.
        self.settled: dict[str, bytes] = {}
        self.settled_tares: dict[str, dict[str, list[tuple[int, int]]]] = {}
        self.ids = Identities()
        self.open_by_plate: dict[str, str] = {}
        self.unassigned: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.assigned: dict[str, str] = {}  # weighing → visit (kept for open visits' refusals)
        self.pending_auto: OrderedDict[str, str] = OrderedDict()  # weighing → visit
        # plate → its tares as the bytes of flat (index, kg) pairs, the plate archived last at
        # the end: 110 bytes a plate, where a list of tuples took 500 (thousands of plates are
        # kept), and plain bytes to pickle
        self.archived_tares: OrderedDict[str, bytes] = OrderedDict()
        self.closed: list[str] = []
        # Open provisional visits → when they are dropped if no arrival joined them (an `at`),
        # and the latest `at` folded: the projection's clock, so a rebuild drops the same ones.
        self.expiry: dict[str, str] = {}
        self.next_expiry = ""
        self.now = ""
        self.dirty: set[str] = set()
        self.loaded: dict[str, int] = {}  # live packer `loaded` totals (not from events)
        self.last_seq = 0
        self.count = 0
        # The latest releases from each queue (gate-ins, weighings), for the drivers' estimates.
        self.releases: dict[str, list[Mark]] = {"gate": [], "scale": []}

    # --- folding ------------------------------------------------------------------------------

    def apply(self, ev: Event) -> None:
        """Fold one event in (events of kinds the projection does not use are only counted)."""
        mine = self.own is None or ev.terminal == self.own
        if mine:
            self.last_seq = max(self.last_seq, ev.seq)
        kind = ev.kind
        if not relevant(kind):
            return
        self.count += 1
        index = self.count
        self.now = max(self.now, ev.at)
        if self.expiry and self.now >= self.next_expiry:
            self._expire()
        if kind == Kind.WEIGHING_CAPTURED:
            self._captured(ev)
        elif kind == Kind.OPERATOR_CORRECTED:
            self._corrected(ev)
        elif kind.startswith("visit."):
            self._visit_event(ev, index, mine)

    def _visit_event(self, ev: Event, index: int, mine: bool) -> None:
        kind = ev.kind
        vid = self.ids.route(ev, self.visits)  # a settled visit is closed: routed as one
        if vid is None:
            return
        v = self.visit(vid)
        arrival = kind == Kind.VISIT_ARRIVED and ev.data.get("visit") == vid
        if arrival:
            if v is not None:
                return
            v = self.visits[vid] = VisitState(vid)
        elif v is None:
            key = plate_order(ev.data) if vid.startswith(PENDING) else None
            if key is None:
                return  # a visit this terminal never saw arrive
            v = self.visits[vid] = VisitState.pending(*key)
            self.open_by_plate.setdefault(v.plate, vid)
            self._expires(vid, pending_bound(ev.at, self.tz))
        was_open = v.open
        if kind != Kind.VISIT_FLAGGED:
            # A match is decided when the capture arrives; anything after it decides again.
            for w, target in list(self.pending_auto.items()):
                if target == vid:
                    del self.pending_auto[w]
        v.events.append((index, ev))
        v.apply(ev, index)
        if mine:
            self.dirty.add(vid)
        if kind in (Kind.VISIT_GATE_IN, Kind.VISIT_WEIGHED):
            marks = self.releases["gate" if kind == Kind.VISIT_GATE_IN else "scale"]
            marks.append(Mark.of(ev))
            del marks[:-RELEASES_KEPT]
        if kind == Kind.VISIT_WEIGHED:
            w = str(ev.data.get("weighing"))
            self.unassigned.pop(w, None)
            self.pending_auto.pop(w, None)
            self.assigned[w] = vid
        if arrival:
            self._join(v)
            if v.open:
                self.open_by_plate[v.plate] = vid
        if was_open and not v.open:
            self._close(v)

    def _join(self, v: VisitState) -> None:
        """The stages recorded by plate and order before this arrival join it."""
        pending = join_pending(v, self.visits)
        if pending is None:
            return
        self.expiry.pop(pending.visit, None)
        for w in pending.weighings:
            if w.weighing in self.assigned:
                self.assigned[w.weighing] = v.visit
        for wid, target in list(self.pending_auto.items()):
            if target == pending.visit:
                self.pending_auto[wid] = v.visit
        if self.open_by_plate.get(pending.plate) == pending.visit:
            del self.open_by_plate[pending.plate]
        if pending.visit in self.dirty:
            self.dirty.discard(pending.visit)
            self.dirty.add(v.visit)

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
        v = visit_checks.auto_match(self.visits.values(), scale, _as_int(d.get("weight_kg")))
        if v is not None and (self.own is None or ev.terminal == self.own):
            self.pending_auto[w] = v.visit

    def _corrected(self, ev: Event) -> None:
        """Fold the visit of the corrected event again, the correction applied to its data."""
        d = ev.data
        target = d.get("target_event")
        vid = self.visit_holding(str(target), d.get("visit"))
        v = self.visit(vid) if vid else None
        if v is None:
            return
        fix = {str(target): {str(d.get("field")): d.get("new")}}
        was_open = v.open
        old_plate = v.plate
        fresh = VisitState.folded(v.visit, [(i, corrected(e, fix)) for i, e in v.events])
        fresh.provisional = v.provisional
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
        self.expiry.pop(v.visit, None)  # closed, it is kept as closed visits are
        self.closed.append(v.visit)
        if self.settle_after is not None and len(self.closed) > self.settle_after:
            self._settle(self.closed[-self.settle_after - 1])
        if len(self.closed) > self.keep_closed:
            vid = self.closed.pop(0)
            gone = self.visits.get(vid)
            if gone is not None:
                self._archive_tares(gone.plate, tares_of(gone))
                self._forget(gone)
            elif vid in self.settled:  # what forgetting it needs, without folding it again
                gone = settled_header(self.settled.pop(vid))
                by_plate = self.settled_tares.get(gone.plate, {})
                self._archive_tares(gone.plate, by_plate.pop(vid, []))
                if not by_plate:
                    self.settled_tares.pop(gone.plate, None)
                self._forget(gone)

    def _settle(self, vid: str) -> None:
        """Keep closed visit `vid` frozen from now on (unless it is open again or gone)."""
        v = self.visits.get(vid)
        if v is None or v.open:
            return
        try:
            frozen = freeze_visit(v)
        except (TypeError, ValueError):
            return  # data no store would take: kept as an object, as it was
        del self.visits[vid]
        self.settled[vid] = frozen
        tares = tares_of(v)
        if tares:
            self.settled_tares.setdefault(v.plate, {})[vid] = tares

    def visit(self, vid: str) -> VisitState | None:
        """Visit `vid` if it is held, as an object again if it was settled (to read or change
        it; it is settled again only if it closes again)."""
        v = self.visits.get(vid)
        if v is not None:
            return v
        frozen = self.settled.pop(vid, None)
        if frozen is None:
            return None
        v = self.visits[vid] = thaw_visit(frozen)
        by_plate = self.settled_tares.get(v.plate)
        if by_plate is not None:
            by_plate.pop(vid, None)
            if not by_plate:
                del self.settled_tares[v.plate]
        return v

    def held(self) -> Iterator[VisitState]:
        """Every visit held, the settled ones thawed as copies (to read, never to change)."""
        yield from self.visits.values()
        yield from (thaw_visit(b) for b in self.settled.values())

    def held_visits(self) -> dict[str, VisitState]:
        """Visit id → visit, for every visit held (settled ones as copies), in id order."""
        return {v.visit: v for v in sorted(self.held(), key=lambda v: v.visit)}

    def archived(self, plate: str) -> list[tuple[int, int]]:
        """The tares kept for `plate` from the visits already forgotten, as (index, kg)."""
        flat = array("q", self.archived_tares.get(plate, b""))
        return list(zip(flat[::2], flat[1::2], strict=True))

    def _archive_tares(self, plate: str, tares: list[tuple[int, int]]) -> None:
        """Keep a dropped visit's tares, (index, kg), for its plate's tare history."""
        history = self.archived(plate)
        history.extend(tares)
        del history[: -max(self.kpi.tare_history, 1)]
        self.archived_tares.pop(plate, None)
        if history:  # now the most recent plate
            self.archived_tares[plate] = array("q", [n for x in history for n in x]).tobytes()
        while len(self.archived_tares) > KEEP_TARE_PLATES:
            self.archived_tares.popitem(last=False)

    def _expires(self, vid: str, bound: str) -> None:
        self.expiry[vid] = bound
        self.next_expiry = min(self.next_expiry, bound) if self.next_expiry else bound

    def _expire(self) -> None:
        """Drop the provisional visits whose arrival did not come within their bound."""
        for vid, bound in list(self.expiry.items()):
            if bound <= self.now:
                del self.expiry[vid]
                v = self.visits.get(vid)
                if v is not None and v.provisional and v.open:
                    self._forget(v)
        self.next_expiry = min(self.expiry.values(), default="")

    def _forget(self, gone: VisitState) -> None:
        """Drop a visit from memory with every entry that names it, so nothing grows with the
        visits a terminal has seen: its events, weighings, plate, plate-and-order and aliases."""
        vid = gone.visit
        self.visits.pop(vid, None)
        self.expiry.pop(vid, None)
        self.dirty.discard(vid)
        for w, target in list(self.assigned.items()):
            if target == vid:
                del self.assigned[w]
        for w, target in list(self.pending_auto.items()):
            if target == vid:
                del self.pending_auto[w]
        if self.open_by_plate.get(gone.plate) == vid:
            del self.open_by_plate[gone.plate]
        self.ids.forget(gone)

    # --- views --------------------------------------------------------------------------------

    def visit_holding(self, event_id: str, hint: object = None) -> str | None:
        """The id of the visit held whose events include `event_id`, if any; `hint` (the visit
        a correction names) is looked at first, then the visits kept as objects, then the
        settled ones."""
        if isinstance(hint, str):
            v = self.visit(self.ids.alias.get(hint, hint))
            if v is not None and any(e.id == event_id for _, e in v.events):
                return v.visit
        for v in self.held():
            if any(e.id == event_id for _, e in v.events):
                return v.visit
        return None

    @property
    def event_visit(self) -> dict[str, str]:
        """Event id → visit id, for every event of the visits held. Made when asked, not kept:
        only a correction needs it, and a correction is rare next to the events it would cost
        to keep (a dict entry for every event of a thousand closed visits, in each projection).
        """
        return {e.id: v.visit for v in self.held() for _, e in v.events}

    def open_visits(self) -> list[VisitState]:
        """Open visits in arrival order."""
        return sorted((v for v in self.visits.values() if v.open), key=lambda v: v.index)

    def snapshot(self, live: bool = True) -> dict[str, Any]:
        """The `visits` topic; with `live=False` the fields that events alone cannot give are
        left empty (that is what a rebuild from the store yields)."""
        loaded = self.loaded if live else None
        opened = self.open_visits()
        queue = [v for v in opened if v.gate_in is None and not v.provisional]
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
        return sum(
            1 for v in self.visits.values() if v.open and v.gate_in is None and not v.provisional
        )

    def find(self, req: Mapping[str, Any]) -> VisitState:
        """The visit a request names by `visit` (id) or `plate` (of its open visit; with
        `order`, the open visit of that plate and order, provisional ones included)."""
        vid, text = req.get("visit"), req.get("plate")
        if vid:
            v = self.visit(str(vid))
            if v is None:
                raise Refusal(f"there is no visit {vid}; list them with visits.list")
            return v
        if text:
            norm = visit_inputs.plate(str(text))
            order = visit_inputs.text(req, "order")
            if order:
                found = self.by_plate_order(norm, order)
                if found is None:
                    raise Refusal(
                        f"plate {norm} has no open visit for order {order};"
                        " record its arrival first"
                    )
                return found
            found_id = self.open_by_plate.get(norm)
            if found_id is None:
                raise Refusal(f"plate {norm} has no open visit; record its arrival first")
            return self.visits[found_id]
        raise Refusal("name the visit with its id (visit) or its plate")

    def by_plate_order(self, plate: str, order: str) -> VisitState | None:
        """The open visit (or provisional one) of a plate and order, if any."""
        for vid in (self.ids.latest.get((plate, order)), pending_id(plate, order)):
            v = self.visits.get(vid or "")
            if v is not None and v.open:
                return v
        return None

    def tare_history(self, plate: str, before: int) -> list[int]:
        """The plate's tares folded before index `before`, oldest first (at most tare_history)."""
        found = [(i, kg) for i, kg in self.archived(plate) if i < before]
        for tares in self.settled_tares.get(plate, {}).values():
            found.extend(tares)
        for v in self.visits.values():
            if v.plate == plate:
                found.extend((w.index, w.weight_kg) for w in v.weighings if w.role == "tare")
        found = sorted(x for x in found if x[0] < before)
        return [kg for _, kg in found[-self.kpi.tare_history :]]

    # --- what the projection calls for by itself ---------------------------------------------

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
            if not visit_checks.fits(v, capture["weight_kg"]):
                continue  # left for the operator
            return [weighed(v, w, visit_checks.next_role(v), capture["weight_kg"])]
        out: list[Command] = []
        for vid in sorted(self.dirty):
            v = self.visits.get(vid)
            if v is not None and v.open and not v.provisional:
                out.extend(visit_checks.checks(v, self.kpi, self.tare_history))
        self.dirty.clear()
        return out


_ALSO_FOLDED = frozenset({Kind.WEIGHING_CAPTURED, Kind.OPERATOR_CORRECTED})


def tares_of(v: VisitState) -> list[tuple[int, int]]:
    """A visit's tares as (index, kg), for its plate's tare history."""
    return [(w.index, w.weight_kg) for w in v.weighings if w.role == "tare"]


def freeze_visit(v: VisitState) -> bytes:
    """A closed visit kept as its events (`marshal` of plain tuples: 0.8 KiB for a truck of
    seven events, where its objects take some 7 KiB), after the few fields that forgetting it
    needs: everything else in it is what those events fold to."""
    head = (v.visit, v.provisional, v.plate, v.order, list(v.merged_from))
    return plain_bytes((head, [(i, *plain_fields(e)) for i, e in v.events]))


def settled_header(frozen: bytes) -> VisitState:
    """A frozen visit's id, plate, order and merged arrivals, without its events."""
    (vid, provisional, plate, order, merged), _ = marshal.loads(frozen)
    return VisitState(vid, plate=plate, order=order, provisional=provisional, merged_from=merged)


def thaw_visit(frozen: bytes) -> VisitState:
    """The visit `freeze_visit` kept, folded again from its events (a new object each time)."""
    (vid, provisional, plate, order, _), rows = marshal.loads(frozen)
    v = VisitState.pending(plate, order) if provisional else VisitState(vid)
    for index, *fields in rows:
        ev = Event.shared(*fields)
        v.events.append((index, ev))
        v.apply(ev, index)
    return v


def relevant(kind: str) -> bool:
    """Whether the projection folds events of this kind."""
    return kind.startswith("visit.") or kind in _ALSO_FOLDED


def rebuild(
    events: Iterable[Event], kpi: KpiConfig | None = None, tz: tzinfo | None = None
) -> Projection:
    """A projection folded from stored events in seq order (plant days in `tz`, default UTC)."""
    p = Projection(kpi, tz=tz)
    for ev in events:
        p.apply(ev)
    return p


def pending_bound(at: str, tz: tzinfo) -> str:
    """When a provisional visit first seen at `at` is dropped if its arrival has not joined it:
    the end of the next plant day (local midnight in `tz`), as a UTC `at`."""
    try:
        day = parse_at(at).astimezone(tz).date()
    except ValueError:
        return at  # not a time (never stored so): drop it with the next event
    end = datetime.combine(day + timedelta(days=PENDING_DAYS + 1), time(0), tzinfo=tz)
    return format_at(end)


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0

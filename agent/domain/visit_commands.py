"""Operator commands on visits: validated against the projection, answered with events to append.

`command(projection, op, request, context)` returns the events a command makes or raises Refusal
with one sentence; it changes nothing itself (the caller appends and folds the events).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.domain import exit_checks
from agent.domain import visit_inputs as inputs
from agent.domain.corrections import CORRECTABLE
from agent.domain.events import Event
from agent.domain.kinds import Kind
from agent.domain.visit import (
    Command,
    VisitState,
    flagged,
    pending_id,
    plate_order,
    weighed,
)
from agent.domain.visit_checks import check_weight, next_role
from agent.domain.visit_inputs import BAG_KG, BAGS, MAX_REASON, PLANNED_KG, Refusal
from agent.domain.visit_projection import Projection


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What validation needs beyond the projection: ids, scales and packers of this terminal.

    `plant` is set when this terminal is one of several: a fact another terminal records may
    not have reached it yet, so a check on such a fact warns (in `warnings`, with `lag`, the
    replica's lag in words) instead of refusing. The terminal's own facts are still refused.
    Each warning is also in `warning_codes` as a stable code with its parameters (the sources
    behind, `lag_sources`, among them), for a UI to say in its own language.
    """

    new_visit_id: str = ""
    scales: tuple[str, ...] = ()
    default_scale: str = ""
    packer_bag_kg: Mapping[str, int] = field(default_factory=dict)
    plant: bool = False
    lag: str = ""
    lag_sources: tuple[Mapping[str, Any], ...] = ()
    # The event a correction names, read from the store with its corrections so far applied,
    # when no visit held in memory has it (an older visit: the projection keeps the latest)
    stored: Event | None = None
    warnings: list[str] = field(default_factory=list)
    warning_codes: list[dict[str, Any]] = field(default_factory=list)

    def warn(self, sentence: str, code: str, **params: Any) -> None:
        """Record a warning, the replica's lag appended (and as `code` with `params`)."""
        self.warnings.append(sentence + (f" ({self.lag})" if self.lag else ""))
        lag = [dict(s) for s in self.lag_sources]
        self.warning_codes.append({"code": code, "params": {**params, "lag": lag}})


# The codes of the warnings (docs/replication.md): each with its parameters besides `lag`.
PENDING_STAGE = "pending_stage"  # plate, order: recorded by plate and order, arrival unknown
NO_GATE_IN = "no_gate_in"  # plate, visit: the visit's gate-in has not reached this terminal


def lag_words(sources: Iterable[Mapping[str, Any]]) -> str:
    """The replica's lag in words for a warning, from the sources behind (as the daemon's
    `lag_sources`: `source`, `state`, and `silent_s` when unreachable, else `lag_s` and
    `events_behind`; `contact` false when never reached); every source up to date when none."""
    out = []
    for s in sources:
        name, state = s.get("source"), s.get("state")
        if s.get("contact") is False:
            out.append(f"{name} {state}, no contact yet")
        elif state == "unreachable":
            out.append(f"{name} unreachable, last contact {s.get('silent_s') or 0:.0f} s ago")
        else:
            out.append(
                f"{name} {s.get('lag_s') or 0:g} s and {s.get('events_behind') or 0} events behind"
            )
    return "lag: " + "; ".join(out) if out else "every source up to date"


# Stages another terminal may record before the visit reaches it: by plate and order.
BY_PLATE_ORDER = frozenset(
    {
        "visit.gate_in",
        "visit.queue",
        "visit.weigh",
        "visit.loading_start",
        "visit.loading_finish",
        "visit.seal",
        "visit.exit",
    }
)


Handler = Callable[[Projection, VisitState, Mapping[str, Any], CommandContext], list[Command]]


def command(p: Projection, op: str, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
    """Validate one operator command against the projection; return the events to append.

    Raises Refusal with one sentence when the command cannot be accepted.
    """
    if op == "visit.arrive":
        return _arrive(p, req, ctx)
    if op == "visit.correct":
        return _correct(p, req, ctx)
    handler = HANDLERS.get(op)
    if handler is None:
        raise Refusal(f"unknown visit command {op!r}")
    v = _find(p, op, req, ctx)
    out = handler(p, v, req, ctx)
    if v.provisional:  # the visit's id is not known here: name it by plate and order
        out = [
            (kind, _by_plate_order(data, v) if data.get("visit") == v.visit else data)
            for kind, data in out
        ]
    return out


def _find(p: Projection, op: str, req: Mapping[str, Any], ctx: CommandContext) -> VisitState:
    """The visit a command names; on a plant, a stage for a plate and order whose arrival has
    not reached this terminal yet goes to a provisional visit (with a warning)."""
    try:
        return p.find(req)
    except Refusal as exc:
        if not ctx.plant or op not in BY_PLATE_ORDER or req.get("visit") or not req.get("plate"):
            raise
        if not req.get("order"):
            raise Refusal(f"{exc}; or give its order to record it by plate and order") from None
    plate = inputs.plate(inputs.text(req, "plate", required=True))
    order = inputs.text(req, "order", required=True)
    ctx.warn(
        f"no arrival of {plate} for order {order} has reached this terminal; recorded by plate"
        " and order, the stage joins the visit when its arrival does",
        PENDING_STAGE,
        plate=plate,
        order=order,
    )
    return VisitState.pending(plate, order)


def _by_plate_order(data: dict[str, Any], v: VisitState) -> dict[str, Any]:
    out = {k: val for k, val in data.items() if k != "visit"}
    return {"plate": v.plate, "order": v.order, **out}


def _arrive(p: Projection, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
    plate = inputs.plate(inputs.text(req, "plate", required=True))
    if plate in p.open_by_plate:
        raise Refusal(
            f"plate {plate} already has an open visit {p.open_by_plate[plate]};"
            " exit or cancel it first"
        )
    data = {
        "visit": ctx.new_visit_id,
        "plate": plate,
        "order": inputs.text(req, "order", required=True),
        "product": inputs.text(req, "product", required=True),
        "load": inputs.load(req.get("load")),
        "planned_kg": inputs.number(req, "planned_kg", *PLANNED_KG, required=True),
    }
    return [(Kind.VISIT_ARRIVED, data)]


def _gate_in(
    p: Projection, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
) -> list[Command]:
    _require_open(v)
    if v.gate_in is not None:
        raise Refusal(f"{v.label} is already through the gate (since {v.gate_in.at})")
    # The gate releases in arrival order; jumping the queue needs a recorded reason.
    ahead = [
        x
        for x in p.open_visits()
        if x.gate_in is None and not x.provisional and x.index < v.index and not v.provisional
    ]
    reason = inputs.text(req, "reason", limit=MAX_REASON)
    if ahead and not reason:
        raise Refusal(
            f"{v.label} is not next at the gate ({ahead[0].plate} arrived earlier);"
            " give a reason to release it out of order"
        )
    data: dict[str, Any] = {"visit": v.visit}
    if ahead:
        data.update(reason=reason, ahead=[x.plate for x in ahead])
    return [(Kind.VISIT_GATE_IN, data)]


def _queue(
    p: Projection, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
) -> list[Command]:
    _require_in(v, ctx)
    scale = inputs.text(req, "scale") or ctx.default_scale
    if ctx.scales and scale not in ctx.scales:
        raise Refusal(f"there is no scale {scale!r}; the scales are {', '.join(ctx.scales)}")
    if v.queued is not None:
        raise Refusal(f"{v.label} is already queued at scale {v.scale or '(default)'}")
    return [(Kind.VISIT_QUEUED_AT_SCALE, {"visit": v.visit, "scale": scale})]


def _weigh(
    p: Projection, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
) -> list[Command]:
    _require_in(v, ctx)
    w = inputs.text(req, "weighing")
    if not w:
        if not p.unassigned:
            raise Refusal("there is no unassigned weighing; wait for the scale to capture one")
        w = next(reversed(p.unassigned))
    capture = p.unassigned.get(w)
    if capture is None:
        owner = p.assigned.get(w)
        if owner is not None:
            raise Refusal(f"weighing {w} is already assigned to {p.visits[owner].label}")
        raise Refusal(f"there is no unassigned weighing {w}; see visits.list for captures")
    role = inputs.role(req.get("role") or next_role(v))
    check_weight(v, role, capture["weight_kg"])
    return [weighed(v, w, role, capture["weight_kg"])]


def _loading_start(
    p: Projection, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
) -> list[Command]:
    _require_in(v, ctx)
    point = inputs.text(req, "point", required=True)
    if v.loading_started is not None and v.loading_finished is None:
        raise Refusal(f"{v.label} is already loading at {v.point}; finish that first")
    if v.loading_finished is not None:
        raise Refusal(f"{v.label} has already been loaded; correct it if that was wrong")
    for other in p.visits.values():
        if (
            other.open
            and other.point == point
            and other.loading_started is not None
            and other.loading_finished is None
        ):
            raise Refusal(f"point {point} is loading {other.label}; finish that first")
    data: dict[str, Any] = {"visit": v.visit, "point": point}
    bagged = v.load == "bagged" or v.provisional  # a provisional visit's load is not known
    if bagged and point in ctx.packer_bag_kg and point in p.loaded:
        data["counter"] = {
            "packer": point,
            "from": p.loaded[point],
            "bag_kg": ctx.packer_bag_kg[point],
        }
    return [(Kind.VISIT_LOADING_STARTED, data)]


def _loading_finish(
    p: Projection, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
) -> list[Command]:
    _require_open(v)
    if v.loading_started is None:
        raise Refusal(f"{v.label} has not started loading; record loading-start first")
    if v.loading_finished is not None:
        raise Refusal(f"{v.label} has already finished loading at {v.point}")
    point = inputs.text(req, "point") or v.point
    if point != v.point:
        raise Refusal(f"{v.label} is loading at {v.point}, not at {point}")
    data: dict[str, Any] = {"visit": v.visit, "point": point}
    if v.load == "bagged" or (v.provisional and (v.counter or req.get("bags") is not None)):
        bags = inputs.number(req, "bags", *BAGS)
        if bags is None:
            counted = v.to_dict(p.loaded)["counted_bags"]
            if not counted:
                raise Refusal(f"give the number of bags loaded on {v.label}")
            bags = counted
        bag_kg = inputs.number(req, "bag_kg", *BAG_KG)
        if bag_kg is None:
            bag_kg = ctx.packer_bag_kg.get(str(point), 50)
        data.update(bags=bags, bag_kg=bag_kg)
    elif req.get("bags") is not None or req.get("bag_kg") is not None:
        raise Refusal(f"{v.label} is a bulk load; it has no bags")
    return [(Kind.VISIT_LOADING_FINISHED, data)]


def _seal(
    p: Projection, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
) -> list[Command]:
    _require_in(v, ctx)
    if v.loading_finished is None:
        raise Refusal(f"{v.label} has not finished loading; seal it after loading")
    if v.sealed is not None:
        raise Refusal(f"{v.label} is already sealed ({', '.join(v.seals)}); correct it if wrong")
    seals = inputs.seals(req.get("seals"))
    return [(Kind.VISIT_SEALED, {"visit": v.visit, "seals": seals})]


def _exit(
    p: Projection, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
) -> list[Command]:
    _require_in(v)
    if v.loading_started is not None and v.loading_finished is None:
        raise Refusal(f"{v.label} is still loading at {v.point}; finish loading first")
    if v.seals and v.load == "bulk" and not req.get("seals_seen"):
        # A sealed bulk truck leaves only after the gate confirms the seal numbers it sees.
        raise Refusal(
            f"{v.label} is sealed; give the seal numbers the gate sees (seals_seen) to let it out"
        )
    if not v.seals and req.get("seals_seen"):
        raise Refusal(f"{v.label} was never sealed; there are no seals to confirm")
    product_seen = inputs.text(req, "product_seen")
    reason = inputs.text(req, "reason", limit=MAX_REASON)
    failed = exit_checks.problems(v, p.kpi, product_seen)
    if failed and not reason:
        raise Refusal(exit_checks.refusal(v, failed))
    out: list[Command] = []
    data: dict[str, Any] = {"visit": v.visit}
    if v.seals and req.get("seals_seen"):
        seen = inputs.seals(req.get("seals_seen"))
        if sorted(seen) != sorted(v.seals):
            missing = [s for s in v.seals if s not in seen]
            extra = [s for s in seen if s not in v.seals]
            detail = f"sealed {' '.join(v.seals)}; the gate saw {' '.join(seen)}"
            if missing:
                detail += f"; missing {' '.join(missing)}"
            if extra:
                detail += f"; unknown {' '.join(extra)}"
            out.append(flagged(v, "seal_mismatch", "", detail))
        data["seals_seen"] = seen
    if product_seen:
        data["product_seen"] = product_seen
    if failed:
        for check, what in failed:
            out.append(flagged(v, f"exit_{check}", "", f"{what}; the gate's reason: {reason}"))
        data.update(reason=reason, exit_checks=[check for check, _ in failed])
    out.append((Kind.VISIT_EXITED, data))
    return out


def _broken_bags(
    p: Projection, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
) -> list[Command]:
    _require_in(v)
    if v.load != "bagged":
        raise Refusal(f"{v.label} is a bulk load; it has no bags")
    if v.loading_started is None:
        raise Refusal(f"{v.label} has not started loading; record loading-start first")
    found = inputs.number(req, "found", 0, BAGS[1]) or 0
    replaced = inputs.number(req, "replaced", 0, BAGS[1]) or 0
    if found == 0 and replaced == 0:
        raise Refusal("give the broken bags found or replaced (at least one)")
    if v.broken_replaced + replaced > v.broken_found + found:
        raise Refusal(
            f"{v.label} would have {v.broken_replaced + replaced} broken bags replaced but only"
            f" {v.broken_found + found} found; record the bags found first"
        )
    return [(Kind.VISIT_BROKEN_BAGS, {"visit": v.visit, "found": found, "replaced": replaced})]


def _cancel(
    p: Projection, v: VisitState, req: Mapping[str, Any], ctx: CommandContext
) -> list[Command]:
    _require_open(v)
    reason = inputs.text(req, "reason", required=True, limit=MAX_REASON)
    return [(Kind.VISIT_CANCELLED, {"visit": v.visit, "reason": reason})]


def _correct(p: Projection, req: Mapping[str, Any], ctx: CommandContext) -> list[Command]:
    target = inputs.text(req, "target_event", required=True, limit=200)
    vid = p.visit_holding(target)
    v: VisitState | None = None
    if vid is not None:
        v = p.visit(vid)
        assert v is not None  # visit_holding found it held
        ev = next(e for _, e in v.events if e.id == target)
    elif ctx.stored is not None and ctx.stored.id == target:
        # a visit the projection no longer holds: the stored event, as corrected so far
        ev = ctx.stored
        named, key = ev.data.get("visit"), plate_order(ev.data)
        # a stage recorded by plate and order names the visit as it was known then
        vid = named if isinstance(named, str) else pending_id(*key) if key else ""
    else:
        raise Refusal(
            f"there is no event {target} in this terminal's database; give an id shown by"
            " tally events"
        )
    allowed = CORRECTABLE.get(ev.kind, ())
    name = inputs.text(req, "field", required=True)
    if name not in allowed:
        if not allowed:
            raise Refusal(f"a {ev.kind} event cannot be corrected")
        raise Refusal(
            f"field {name!r} of a {ev.kind} event cannot be corrected;"
            f" correctable: {', '.join(allowed)}"
        )
    new = inputs.corrected_value(name, req.get("new"))
    if name == "plate" and v is not None and v.open and new != v.plate and new in p.open_by_plate:
        raise Refusal(f"plate {new} already has an open visit; correct that one first")
    old = ev.data.get(name)
    if old == new:
        raise Refusal(f"{name} is already {new!r}; nothing to correct")
    reason = inputs.text(req, "reason", required=True, limit=MAX_REASON)
    operator = inputs.text(req, "operator", required=True)
    return [
        (
            Kind.OPERATOR_CORRECTED,
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


def _require_open(v: VisitState) -> None:
    if v.cancelled is not None:
        raise Refusal(f"{v.label} was cancelled ({v.cancel_reason}); record a new arrival")
    if v.exited is not None:
        raise Refusal(f"{v.label} has already left at {v.exited.at}")


def _require_in(v: VisitState, ctx: CommandContext | None = None) -> None:
    """The visit is open and through the gate. With a plant context the gate-in is another
    terminal's fact: its absence is a warning (it may not have reached this terminal)."""
    _require_open(v)
    if v.gate_in is not None or v.provisional:
        return
    if ctx is None or not ctx.plant:
        raise Refusal(f"{v.label} is not through the gate yet; record gate-in first")
    ctx.warn(
        f"no gate-in of {v.label} has reached this terminal yet; recorded all the same",
        NO_GATE_IN,
        plate=v.plate,
        visit=v.visit,
    )


HANDLERS: dict[str, Handler] = {
    "visit.gate_in": _gate_in,
    "visit.queue": _queue,
    "visit.weigh": _weigh,
    "visit.loading_start": _loading_start,
    "visit.loading_finish": _loading_finish,
    "visit.seal": _seal,
    "visit.exit": _exit,
    "visit.broken_bags": _broken_bags,
    "visit.cancel": _cancel,
}

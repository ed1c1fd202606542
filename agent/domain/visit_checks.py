"""Checks on a visit (tare fluctuation, underload, bagged overweight) and automatic matching.

Pure: the projection asks which `visit.flagged` events a visit needs and which visit a capture
goes to by itself; it appends them as events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from agent.config import KpiConfig
from agent.domain.visit import Command, VisitState, flagged
from agent.domain.visit_inputs import WEIGHT_KG, Refusal


def next_role(v: VisitState) -> str:
    """The role the visit's next weighing takes: tare until it has one, then gross."""
    return "tare" if v.tare_kg is None else "gross"


def check_weight(v: VisitState, role: str, weight: int) -> None:
    """Refuse a weight that cannot be the visit's tare or gross (not a truck, gross ≤ tare)."""
    if not WEIGHT_KG[0] <= weight <= WEIGHT_KG[1]:
        raise Refusal(f"{weight} kg is not a truck weight (1 to {WEIGHT_KG[1]} kg)")
    if role == "gross":
        tare = v.tare_kg
        if tare is None:
            raise Refusal(f"{v.label} has no tare yet; weigh it empty first")
        if weight <= tare:
            raise Refusal(
                f"the gross {weight} kg of {v.label} is not above its tare {tare} kg;"
                " assign it as a tare or pick another weighing"
            )


def fits(v: VisitState, weight: int) -> bool:
    """Whether `weight` can be the visit's next weighing (else it is left for the operator)."""
    try:
        check_weight(v, next_role(v), weight)
    except Refusal:
        return False
    return True


def auto_match(visits: Iterable[VisitState], scale: object, weight: int) -> VisitState | None:
    """The visit a capture on `scale` goes to by itself: the only open visit queued there,
    when the weight fits it."""
    waiting = [v for v in visits if v.open and v.queued and v.scale == scale]
    if len(waiting) == 1 and fits(waiting[0], weight):
        return waiting[0]
    return None


def checks(
    v: VisitState, cfg: KpiConfig, tare_history: Callable[[str, int], list[int]]
) -> list[Command]:
    """`visit.flagged` events this visit needs and has not had yet.

    `tare_history(plate, before)` gives the plate's earlier tares, oldest first.
    """
    out: list[Command] = []
    tare = v.last("tare")
    if tare and ("tare_fluctuation", tare.weighing) not in v.raised:
        history = tare_history(v.plate, tare.index)
        if len(history) >= cfg.tare_min_history:
            ref = _median(history)
            allowed = max(Decimal(cfg.tare_tolerance_kg), _pct(cfg.tare_tolerance_pct) * ref)
            diff = abs(Decimal(tare.weight_kg) - ref)
            if diff > allowed:
                out.append(
                    flagged(
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
                flagged(
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
                flagged(
                    v,
                    "bagged_overweight",
                    gross.weighing,
                    f"net {net} kg exceeds {v.bags} bags × {v.bag_kg} kg = {nominal} kg"
                    f" by more than {cfg.overweight_pct:g} %",
                )
            )
    return out


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

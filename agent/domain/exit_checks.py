"""The gate's checks when a truck leaves (pure): gross weighed, bulk sealed, net within the
order's tolerance, the product of the order, no broken bag left unreplaced.

A failed check refuses the exit with one sentence unless the gate records a reason; the reason
then becomes one `visit.flagged` per failed check (`exit_<check>`) that the ledgers and the KPI
report show.
"""

from __future__ import annotations

from decimal import Decimal

from agent.config import KpiConfig
from agent.domain.visit import VisitState

# check name (flagged as exit_<name>) in the order the sentence names them
CHECKS = ("no_gross", "unsealed", "net_off_order", "product_mismatch", "broken_bags")


def problems(v: VisitState, cfg: KpiConfig, product_seen: str = "") -> list[tuple[str, str]]:
    """(check, what is wrong) for each exit check the visit fails, in CHECKS order.

    `what is wrong` completes a sentence that starts with the visit's label.
    """
    out: list[tuple[str, str]] = []
    net = v.net_kg
    if v.gross_kg is None:
        out.append(("no_gross", "has no gross weighing"))
    if v.load == "bulk" and not v.seals:
        out.append(("unsealed", "is a bulk truck that was never sealed"))
    if net is not None and v.planned_kg > 0:
        allowed = Decimal(str(cfg.exit_tolerance_pct)) / 100 * v.planned_kg
        if abs(Decimal(net - v.planned_kg)) > allowed:
            out.append(
                (
                    "net_off_order",
                    f"has a net of {net} kg, outside the order's {v.planned_kg} kg"
                    f" ± {cfg.exit_tolerance_pct:g} %",
                )
            )
    if product_seen and product_seen != v.product:
        out.append(("product_mismatch", f"carries {product_seen} but its order is for {v.product}"))
    unreplaced = v.broken_found - v.broken_replaced
    if unreplaced > 0:
        out.append(("broken_bags", f"has {unreplaced} broken bags not replaced"))
    return out


def refusal(v: VisitState, found: list[tuple[str, str]]) -> str:
    """The one sentence that refuses the exit for the failed checks `found`."""
    parts = [what for _, what in found]
    said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{v.label} {said}; put it right or give the gate's reason to let it out"

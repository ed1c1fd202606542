"""The day's dispatch plan: the sales office's planned tonnes become a `plan.set` event."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from agent.daemon.api import CommandError
from agent.domain import text_rules
from agent.domain.kinds import Kind

if TYPE_CHECKING:
    from agent.daemon.runtime import Context, Service

MAX_TONNES = Decimal(1_000_000)  # far above any plant's day


def check_plan(request: dict[str, Any]) -> dict[str, str]:
    """The payload of a plan request; raise CommandError with one sentence when it is bad."""
    text = request.get("day")
    try:
        day = date.fromisoformat(str(text))
    except ValueError:
        raise CommandError(f"day {text!r} is not a date like 2026-11-29") from None
    if not text_rules.FIRST_YEAR <= day.year <= text_rules.LAST_YEAR:
        raise CommandError(
            f"day must be between the years {text_rules.FIRST_YEAR} and {text_rules.LAST_YEAR}"
        )
    raw = request.get("tonnes")
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise InvalidOperation
        tonnes = Decimal(str(raw).strip())
    except InvalidOperation:
        raise CommandError(
            f"tonnes {raw!r} is not a number; give the planned tonnes, for example --tonnes 1200"
        ) from None
    if not tonnes.is_finite() or not 0 <= tonnes <= MAX_TONNES:
        raise CommandError(f"tonnes must be between 0 and {MAX_TONNES}, not {raw}")
    if tonnes.as_tuple().exponent < -3:  # type: ignore[operator]
        raise CommandError(f"tonnes {raw} has more than 3 decimals; give whole kilograms")
    product = request.get("product", "")
    if not isinstance(product, str):
        raise CommandError("product must be a product name, for example 'P.O 42.5'")
    operator = request.get("operator", "")
    if not isinstance(operator, str):
        raise CommandError("operator must be a name of at most 64 characters")
    return {
        "day": day.isoformat(),
        "tonnes": str(tonnes.normalize() if tonnes else Decimal(0)),
        "product": product.strip(),
        "operator": operator.strip(),
    }


def build(ctx: Context) -> list[Service]:
    """Register `plan.set {day, tonnes, product?, operator?}` → `{"seq", "at"}`."""

    async def set_plan(request: dict[str, Any]) -> dict[str, Any]:
        ev = await ctx.writer.append(Kind.PLAN_SET, check_plan(request))
        return {"seq": ev.seq, "at": ev.at}

    ctx.api.register("plan.set", set_plan)
    return []

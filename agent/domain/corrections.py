"""Operator corrections: which fields of which visit events may be corrected, and applying them.

Facts are never edited: an `operator.corrected` event names the target event, the field and the
new value, and every fold applies it to the target's data before folding (the last one wins).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from agent.domain.events import Event
from agent.domain.kinds import Kind

# Fields an operator may correct, per event kind.
CORRECTABLE: dict[str, tuple[str, ...]] = {
    Kind.VISIT_ARRIVED: ("plate", "order", "product", "load", "planned_kg"),
    Kind.VISIT_WEIGHED: ("weight_kg", "role"),
    Kind.VISIT_LOADING_STARTED: ("point",),
    Kind.VISIT_LOADING_FINISHED: ("point", "bags", "bag_kg"),
    Kind.VISIT_SEALED: ("seals",),
    Kind.VISIT_CANCELLED: ("reason",),
}

Corrections = Mapping[str, Mapping[str, Any]]  # target event id → {field: new value}


def corrected(ev: Event, corrections: Corrections) -> Event:
    """The event with the operator's corrections of its data fields applied."""
    fix = corrections.get(ev.id)
    if not fix:
        return ev
    return dataclasses.replace(ev, data={**ev.data, **fix})


def collect_corrections(events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """target event id → {field: new value} from `operator.corrected` events (last one wins)."""
    fixes: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev.kind == Kind.OPERATOR_CORRECTED:
            d = ev.data
            target, name = d.get("target_event"), d.get("field")
            if isinstance(target, str) and isinstance(name, str):
                fixes.setdefault(target, {})[name] = d.get("new")
    return fixes

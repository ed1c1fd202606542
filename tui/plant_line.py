"""The plant status line, pure: what needs attention anywhere in the plant, in one line.

Shown on every pane of the operator UI and on the drivers' board (issue 13, item 5). It reads
this terminal's own topics (`alerts`, `devices`, `packer.*`) and the `plant` topic, the other
terminals' alerts, stops and offline devices folded from their replicated events
(agent/domain/plant.py), and lists, most urgent first: stopped packers with their expected
repair, a long queue at the gate, devices offline, sync trouble and sources some terminal cannot
reach, each with its terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tui.i18n import Words
from tui.views import NONE, Cell, packer_names, text

QUEUE_ALERT = "queue_long"
# Alerts that mean a terminal's events are not getting through (sync/sender, sync/replica).
SYNC_ALERT_PREFIXES = ("sync_", "replica_conflict")
UNREACHABLE_PREFIX = "peer_unreachable."  # + the source a terminal cannot reach
# The topics that say anything about the plant: without any of them there is nothing to say yet.
TOPICS = ("alerts", "devices", "plant")


@dataclass(frozen=True, slots=True)
class PlantLine:
    """The line's label and its items (a single "all clear" or "—" item when nothing is wrong)."""

    label: str
    items: tuple[Cell, ...]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _repair(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def plant_line(states: Mapping[str, Any], terminal: str, w: Words, stops: bool = True) -> PlantLine:
    """The plant status line from the live state of this terminal (`terminal`, its id).

    `stops=False` leaves the stopped packers out (the board lists them in large text already).
    """
    here = terminal or w("plant.here")
    plant = _mapping(states.get("plant"))
    local_alerts = _dicts(_mapping(states.get("alerts")).get("active"))
    alerts = [(here, text(a.get("alert"))) for a in local_alerts]
    alerts += [(text(a.get("terminal")), text(a.get("alert"))) for a in _dicts(plant.get("alerts"))]
    items: list[Cell] = []

    if stops:
        stopped: list[tuple[str, str, int | None]] = []
        for name in packer_names(states):
            p = _mapping(states.get(f"packer.{name}"))
            if p.get("running") is False:
                repair = _mapping(p.get("stopped")).get("expected_repair_min")
                stopped.append((here, name, _repair(repair)))
        for s in _dicts(plant.get("stopped")):
            stopped.append(
                (
                    text(s.get("terminal")),
                    text(s.get("packer")),
                    _repair(s.get("expected_repair_min")),
                )
            )
        for where, packer, repair in stopped:
            if repair is None:
                items.append(Cell(w("plant.stopped", where=where, packer=packer), "bad"))
            else:
                items.append(
                    Cell(w("plant.stopped_repair", where=where, packer=packer, n=repair), "bad")
                )

    # Every terminal folds the plant's gate queue, so any of them may raise it: one item.
    if any(alert == QUEUE_ALERT for _, alert in alerts):
        items.append(Cell(w("plant.queue_long"), "warn"))

    offline = [
        (here, str(name))
        for name, d in sorted(_mapping(states.get("devices")).items())
        if _mapping(d).get("online") is False
    ]
    offline += [
        (text(d.get("terminal")), text(d.get("device"))) for d in _dicts(plant.get("offline"))
    ]
    for where, device in dict.fromkeys(offline):
        items.append(Cell(w("plant.offline", where=where, device=device), "bad"))

    troubled = {t for t, alert in alerts if alert.startswith(SYNC_ALERT_PREFIXES)}
    for where in sorted(troubled):
        items.append(Cell(w("plant.sync", where=where), "warn"))
    unreachable = {
        a.removeprefix(UNREACHABLE_PREFIX) for _, a in alerts if a.startswith(UNREACHABLE_PREFIX)
    }
    for source in sorted(unreachable):
        items.append(Cell(w("plant.unreachable", where=source), "warn"))

    if items:
        return PlantLine(w("plant.label"), tuple(items))
    if not any(topic in states for topic in TOPICS):
        return PlantLine(w("plant.label"), (Cell(NONE, "dim"),))
    return PlantLine(w("plant.label"), (Cell(w("plant.clear"), "ok"),))

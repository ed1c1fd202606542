"""Plant-wide attention, pure: other terminals' active alerts, stopped packers with their
expected repair and offline devices, folded from their events (issue 13, item 5)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.domain.events import Event
from agent.domain.kinds import Kind

KINDS = (
    Kind.ALERT_RAISED,
    Kind.ALERT_CLEARED,
    Kind.PACKER_STOPPED,
    Kind.PACKER_STARTED,
    Kind.DEVICE_OFFLINE,
    Kind.DEVICE_ONLINE,
)

# Alerts each terminal derives from the replicated plant timeline (agent/domain/deadlines.py):
# another terminal's copy of one would show the same wait twice.
DERIVED = "late."


class Attention:
    """What needs attention on the other terminals.

    Each key (terminal and alert, packer or device) is only ever written by its own terminal's
    stream, which arrives in seq order, so the fold does not depend on how streams interleave.
    """

    def __init__(self) -> None:
        self.alerts: dict[tuple[str, str], dict[str, Any]] = {}
        self.stopped: dict[tuple[str, str], dict[str, Any]] = {}
        self.offline: dict[tuple[str, str], dict[str, Any]] = {}

    def apply(self, ev: Event) -> bool:
        """Fold one event in; return whether anything shown changed."""
        d, t = ev.data, ev.terminal
        if ev.kind in (Kind.ALERT_RAISED, Kind.ALERT_CLEARED) and str(d.get("alert")).startswith(
            DERIVED
        ):
            return False  # every terminal raises these itself from the plant timeline
        if ev.kind == Kind.ALERT_RAISED:
            self.alerts[(t, str(d.get("alert")))] = {
                "terminal": t,
                "alert": str(d.get("alert")),
                "detail": str(d.get("detail", "")),
                "since": ev.at,
            }
        elif ev.kind == Kind.ALERT_CLEARED:
            return self.alerts.pop((t, str(d.get("alert"))), None) is not None
        elif ev.kind == Kind.PACKER_STOPPED:
            repair = d.get("expected_repair_min")
            self.stopped[(t, str(d.get("packer")))] = {
                "terminal": t,
                "packer": str(d.get("packer")),
                "reason": d.get("reason") if isinstance(d.get("reason"), str) else None,
                "expected_repair_min": repair
                if isinstance(repair, int) and not isinstance(repair, bool)
                else None,
                "since": str(d.get("since") or ev.at),
            }
        elif ev.kind == Kind.PACKER_STARTED:
            return self.stopped.pop((t, str(d.get("packer"))), None) is not None
        elif ev.kind == Kind.DEVICE_OFFLINE:
            self.offline[(t, str(d.get("device")))] = {
                "terminal": t,
                "device": str(d.get("device")),
                "reason": str(d.get("reason", "")),
                "since": ev.at,
            }
        elif ev.kind == Kind.DEVICE_ONLINE:
            return self.offline.pop((t, str(d.get("device"))), None) is not None
        else:
            return False
        return True

    def add(self, events: Iterable[Event]) -> bool:
        """Fold events in; return whether anything shown changed."""
        changed = False
        for ev in events:
            changed = self.apply(ev) or changed
        return changed

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """The `plant` topic: alerts, stopped packers and offline devices, by terminal."""
        return {
            "alerts": [v for _, v in sorted(self.alerts.items())],
            "stopped": [v for _, v in sorted(self.stopped.items())],
            "offline": [v for _, v in sorted(self.offline.items())],
        }

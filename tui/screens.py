"""The five panes of the operator UI; each renders the live state it is given, nothing more."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits, Label, Static

from tui import views
from tui.i18n import Words
from tui.widgets import RowTable, WeightDigits, line, show

PANES = ("weighbridge", "loading", "yard", "today", "health")


def notice_lines(rows: tuple[views.Row, ...], title: str = "") -> Text:
    """Exception notices, one a line: who (red), what was found, what to do (bold)."""
    out = Text(title, style="bold")
    for i, row in enumerate(rows):
        who, what, todo = (c.text for c in row.cells)
        out.append(("\n" if i else "") + f"■ {who}  ", style="bold red")
        out.append(f"{what}  ")
        out.append(todo, style="bold")
    return out


class Pane(Vertical):
    """A pane: `update_view` re-renders it from the states and the time."""

    keys = ""  # i18n key of this pane's key hints

    def __init__(
        self, words: Words, tz: tzinfo, *, id: str, notices: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(id=id, classes="pane")
        self.w = words
        self.tz = tz
        self.notices = notices or {}  # the plant's [board] texts in this language

    def update_view(self, states: Mapping[str, Any], now: datetime) -> None:
        """Render `states` as of `now`."""

    def selected_key(self) -> str | None:
        """The key of the row under the cursor of this pane's main table."""
        tables = self.query(RowTable)
        return tables.first().selected_key() if tables else None


class WeighbridgePane(Pane):
    """Live weight, the truck on the deck, checks raised and the scale queue."""

    keys = "wb.keys"

    def compose(self) -> ComposeResult:
        """Weight and its tags, the deck, the checks, the queue, unassigned weighings."""
        w = self.w
        with Horizontal(id="weight-row"):
            yield WeightDigits("—", id="weight")
            with Vertical(id="weight-info"):
                yield Static("", id="scale-tags")
                yield Static("", id="scale-last")
        yield Static("", id="deck")
        yield Static("", id="flags")
        yield Label("", id="queue-title", classes="section")
        yield RowTable(
            [
                w("col.pos"),
                w("col.plate"),
                w("col.product"),
                w("col.load"),
                w("col.stage"),
                w("col.wait"),
                w("col.flags"),
            ],
            id="scale-queue",
        )
        yield Static("", id="unassigned")

    def update_view(self, states: Mapping[str, Any], now: datetime) -> None:
        """Render everything on the pane."""
        v = views.weighbridge(states, now, self.tz, self.w, self.notices)
        self.update_weight(v)
        show(
            self.query_one("#deck", Static),
            Text.assemble((f"{self.w('deck.title')}: ", "bold"), line(v.deck)),
        )
        flags = self.query_one("#flags", Static)
        show(flags, notice_lines(v.notices, f"{self.w('flags.title')}:\n"))
        flags.display = bool(v.notices)
        show(self.query_one("#queue-title", Label), self.w("wb.queue", target=v.target_min))
        self.query_one("#scale-queue", RowTable).show(v.queue)
        unassigned = self.query_one("#unassigned", Static)
        show(unassigned, Text(v.unassigned, style="bold yellow"))
        unassigned.display = bool(v.unassigned)

    def update_weight(self, v: views.ScaleView | views.WeighbridgeView) -> None:
        """Only the live weight and its tags: this runs up to ten times a second."""
        digits = self.query_one("#weight", Digits)
        if digits.value != v.weight:
            digits.update(v.weight)
        stable = any(c.tone == "ok" and c.text == self.w("scale.stable") for c in v.tags)
        digits.set_class(stable, "stable")
        digits.set_class(v.weight == views.NONE, "absent")
        tags = line(v.tags)
        if v.unit:
            tags = Text.assemble((v.unit, "bold"), "  ", tags)
        show(self.query_one("#scale-tags", Static), tags)
        show(self.query_one("#scale-last", Static), v.last)


class LoadingPane(Pane):
    """Packers against their targets and the trucks at the loading points."""

    keys = "loading.keys"

    def compose(self) -> ComposeResult:
        """The packer table above the loading-point table."""
        w = self.w
        yield RowTable(
            [
                w("col.packer"),
                w("col.state"),
                w("col.bags_h"),
                w("col.t_h"),
                w("col.return"),
                w("col.broken"),
                w("col.reason"),
                w("col.repair"),
            ],
            id="packers",
        )
        yield Label(w("loading.points"), classes="section")
        yield RowTable(
            [
                w("col.point"),
                w("col.plate"),
                w("col.product"),
                w("col.bags"),
                w("col.stage"),
                w("col.elapsed"),
            ],
            id="points",
        )
        yield Label(w("loading.checks"), classes="section")
        yield RowTable(
            [w("col.packer"), w("col.check"), w("col.why"), w("col.due"), w("col.state")],
            id="checks",
        )

    def update_view(self, states: Mapping[str, Any], now: datetime) -> None:
        """Render the three tables."""
        v = views.loading(states, now, self.w, self.tz)
        self.query_one("#packers", RowTable).show(v.packers)
        self.query_one("#points", RowTable).show(v.points)
        self.query_one("#checks", RowTable).show(v.checks)


class YardPane(Pane):
    """Every open visit with its stage and the time in it against its target."""

    keys = "yard.keys"

    def compose(self) -> ComposeResult:
        """A title line and the visit table."""
        w = self.w
        yield Label("", id="yard-title", classes="section")
        yield RowTable(
            [
                w("col.plate"),
                w("col.order"),
                w("col.product"),
                w("col.load"),
                w("col.stage"),
                w("col.elapsed"),
                w("col.flags"),
            ],
            id="yard",
        )

    def update_view(self, states: Mapping[str, Any], now: datetime) -> None:
        """Render the title and the table."""
        v = views.yard(states, now, self.w)
        show(self.query_one("#yard-title", Label), v.title)
        self.query_one("#yard", RowTable).show(v.rows)


class TodayPane(Pane):
    """The day's KPI report against the standard, and the day's plan."""

    keys = "today.keys"

    def compose(self) -> ComposeResult:
        """A title, the plan, the measures and the day's checks."""
        w = self.w
        yield Label("", id="today-title", classes="section")
        yield Static("", id="today-plan")
        yield RowTable([w("col.kpi"), w("col.value"), w("col.target"), w("col.met")], id="kpi")
        yield Static("", id="today-flags")

    def update_view(self, states: Mapping[str, Any], now: datetime) -> None:
        """Render the report."""
        v = views.today(states, self.w)
        show(self.query_one("#today-title", Label), v.title)
        show(self.query_one("#today-plan", Static), v.plan)
        self.query_one("#kpi", RowTable).show(v.rows)
        show(self.query_one("#today-flags", Static), v.flags)


class HealthPane(Pane):
    """Devices, sync and the agent side by side; alerts below."""

    def compose(self) -> ComposeResult:
        """Two tables on top, alerts underneath."""
        w = self.w
        with Horizontal(id="health-top"):
            with Vertical():
                yield Label(w("health.devices"), classes="section")
                yield RowTable(
                    [w("col.device"), w("col.kind"), w("col.state"), w("col.why"), w("col.since")],
                    id="devices",
                )
            with Vertical():
                yield Label(f"{w('health.sync')} / {w('health.agent')}", classes="section")
                yield RowTable([w("col.item"), w("col.value")], id="agent-status")
        yield Label(w("health.alerts"), classes="section")
        yield RowTable([w("col.alert"), w("col.detail"), w("col.since")], id="alerts")

    def update_view(self, states: Mapping[str, Any], now: datetime) -> None:
        """Render the three tables."""
        v = views.health(states, self.tz, self.w)
        self.query_one("#devices", RowTable).show(v.devices)
        self.query_one("#agent-status", RowTable).show(v.status)
        self.query_one("#alerts", RowTable).show(v.alerts)


PANE_CLASSES: dict[str, type[Pane]] = {
    "weighbridge": WeighbridgePane,
    "loading": LoadingPane,
    "yard": YardPane,
    "today": TodayPane,
    "health": HealthPane,
}

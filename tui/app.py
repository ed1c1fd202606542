"""The operators' Textual app: one worker talks to the daemon, the panes render what it hears."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import ContentSwitcher, Static

from agent.daemon.client import AsyncClient, DaemonUnavailable, RequestRefused, split_weights
from tui import views
from tui.i18n import Words
from tui.screens import PANE_CLASSES, PANES, Pane, WeighbridgePane
from tui.widgets import Field, FormScreen, PickScreen

RETRY_S = 1.5  # how often to try the socket again while the daemon is away
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock in UTC (the default clock; tests pass a frozen one)."""
    return datetime.now(UTC)


# --- messages: facts the connection worker observed ------------------------------------------


class StateReceived(Message):
    """The daemon published a topic's new state."""

    def __init__(self, topic: str, state: Any) -> None:
        super().__init__()
        self.topic = topic
        self.state = state


class DaemonFound(Message):
    """A daemon answered on the socket and the subscription started."""


class DaemonLost(Message):
    """No daemon answers (never started, stopped or crashed)."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class CommandAnswered(Message):
    """The daemon accepted an operator command."""

    def __init__(self, op: str, result: Any, what: str) -> None:
        super().__init__()
        self.op = op
        self.result = result
        self.what = what


class CommandRefused(Message):
    """The daemon refused an operator command; `sentence` says why."""

    def __init__(self, op: str, sentence: str) -> None:
        super().__init__()
        self.op = op
        self.sentence = sentence


# (pane, key) → action name; one key does the obvious thing on the pane in view.
PANE_KEYS: dict[tuple[str, str], str] = {
    ("weighbridge", "a"): "arrive",
    ("weighbridge", "t"): "tare",
    ("weighbridge", "g"): "gross",
    ("weighbridge", "q"): "pick_queue",
    ("yard", "a"): "arrive",
    ("yard", "i"): "gate_in",
    ("yard", "q"): "queue",
    ("yard", "l"): "loading_start",
    ("yard", "f"): "loading_finish",
    ("yard", "s"): "seal",
    ("yard", "x"): "exit",
    ("yard", "c"): "cancel",
    ("loading", "r"): "packer_reason",
    ("loading", "b"): "check_bags",
    ("loading", "p"): "check_print",
    **{(pane, "w"): "window" for pane in ("weighbridge", "loading", "yard", "today", "health")},
}
WINDOW_SERVICES = ("plan_order", "payment", "transport_letter", "no_letter")


class LiveApp(App[None]):
    """An app fed by the daemon's live state: the connection worker, the banner, the tick."""

    CSS_PATH = "tally.tcss"
    TITLE = "Tally"
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self,
        socket_path: str,
        language: str = "zh",
        tz: tzinfo = UTC,
        terminal: str = "",
        clock: Clock = utc_now,
        connect: bool = True,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.w = Words(language)
        self.tz = tz
        self.terminal = terminal
        self.clock = clock
        self.connect = connect
        self.states: dict[str, Any] = {}
        self.connected = False
        self.lost_shown = False
        self.client: AsyncClient | None = None

    def on_mount(self) -> None:
        """Draw the empty state, start the connection worker and the one-second tick."""
        self.banner(self.w("link.connecting", path=self.socket_path))
        self.refresh_all()
        self.set_interval(1.0, self.tick)
        if self.connect:
            self.link()

    @work(exclusive=True, group="link", exit_on_error=False)
    async def link(self) -> None:
        """Connect, subscribe, post every state; when the daemon goes away, retry forever."""
        while True:
            client = AsyncClient(self.socket_path)
            try:
                await client.connect()
                await client.request("ping")
                self.client = client
                self.post_message(DaemonFound())
                async for topic, state in client.states():
                    self.post_message(StateReceived(topic, state))
                self.post_message(DaemonLost("closed"))
            except (DaemonUnavailable, OSError) as exc:
                self.post_message(DaemonLost(str(exc)))
            finally:
                self.client = None
                await client.close()
            await asyncio.sleep(RETRY_S)

    def on_state_received(self, msg: StateReceived) -> None:
        """Keep the newest state and redraw what shows it."""
        self.states[msg.topic] = msg.state
        self.state_changed(msg.topic)

    def on_daemon_found(self, _msg: DaemonFound) -> None:
        """The daemon is back: hide the banner."""
        self.connected = True
        self.lost_shown = False
        self.banner("")
        self.refresh_all()

    def on_daemon_lost(self, _msg: DaemonLost) -> None:
        """Say so plainly; forget the live state rather than show stale weights as live."""
        if self.lost_shown:
            return
        self.lost_shown = True
        self.connected = False
        self.states.clear()
        self.banner(self.w("link.banner", path=self.socket_path, every=f"{RETRY_S:g}"))
        self.refresh_all()

    def banner(self, sentence: str) -> None:
        """The connection banner (hidden when empty)."""
        banner = self.query_one("#banner", Static)
        banner.update(sentence)
        banner.display = bool(sentence)

    def tick(self) -> None:
        """Once a second: elapsed times move on."""
        self.refresh_current()

    def state_changed(self, topic: str) -> None:
        """A topic changed: redraw (subclasses redraw less for the weight stream)."""
        self.refresh_current()

    def refresh_current(self) -> None:
        """Redraw what is in view."""
        self.refresh_all()

    def refresh_all(self) -> None:
        """Redraw everything."""


class TallyApp(LiveApp):
    """`tally tui`: the weighbridge, loading, yard, today and health panes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(f"f{i}", f"show('{p}')", show=False) for i, p in enumerate(PANES, 1)),
        *(Binding(str(i), f"show('{p}')", show=False) for i, p in enumerate(PANES, 1)),
        *(Binding(k, f"key('{k}')", show=False) for k in sorted({k for _p, k in PANE_KEYS})),
        Binding("ctrl+q", "quit", show=False, priority=True),
    ]

    def __init__(self, socket_path: str, language: str = "zh", **kwargs: Any) -> None:
        super().__init__(socket_path, language, **kwargs)
        self.current = PANES[0]

    def compose(self) -> ComposeResult:
        """Top bar, connection banner, the panes, the command status and the key hints."""
        yield Static("", id="topbar")
        yield Static("", id="banner")
        with ContentSwitcher(initial=PANES[0], id="panes"):
            for name in PANES:
                yield PANE_CLASSES[name](self.w, self.tz, id=name)
        yield Static("", id="status")
        yield Static("", id="keys")

    def send(self, op: str, what: str, **args: Any) -> None:
        """Send an operator command in a worker; the answer comes back as a message."""
        if not self.connected or self.client is None:
            self.show_status(self.w("cmd.refused", sentence=self.w("cmd.no_daemon")), "bad")
            return
        self.run_worker(
            self._request(self.client, op, what, args), group="ops", exit_on_error=False
        )

    async def _request(self, client: AsyncClient, op: str, what: str, args: dict[str, Any]) -> None:
        try:
            result = await client.request(op, **args)
        except RequestRefused as exc:
            self.post_message(CommandRefused(op, str(exc)))
            return
        except DaemonUnavailable:
            self.post_message(CommandRefused(op, self.w("cmd.no_daemon")))
            return
        self.post_message(CommandAnswered(op, result, what))

    # --- facts in ------------------------------------------------------------------------------

    def state_changed(self, topic: str) -> None:
        """The weight streams at up to ten a second: redraw only the weight for it."""
        if topic.startswith("scale."):
            if self.current == "weighbridge":
                pane = self.query_one("#weighbridge", WeighbridgePane)
                pane.update_weight(views.weighbridge(self.states, self.clock(), self.tz, self.w))
            return
        self.refresh_current()

    def on_command_answered(self, msg: CommandAnswered) -> None:
        """Show what was done."""
        self.show_status(self.w("cmd.ok", what=msg.what), "ok")

    def on_command_refused(self, msg: CommandRefused) -> None:
        """Show the daemon's sentence where the operator is looking."""
        self.show_status(self.w("cmd.refused", sentence=msg.sentence), "bad")

    # --- drawing -------------------------------------------------------------------------------

    def pane(self, name: str | None = None) -> Pane:
        """A pane by name (the visible one by default)."""
        return self.query_one(f"#{name or self.current}", Pane)

    def refresh_current(self) -> None:
        """Re-render the visible pane and the top bar (nothing while the app is closing)."""
        if not self.query("#topbar"):
            return
        self.refresh_top()
        self.pane().update_view(self.states, self.clock())

    def refresh_all(self) -> None:
        """Re-render every pane (on connect, loss and language of the first draw)."""
        self.refresh_top()
        now = self.clock()
        for name in PANES:
            self.pane(name).update_view(self.states, now)

    def refresh_top(self) -> None:
        """Title, pane tabs, link state and local time; key hints of the visible pane."""
        bar = Text()
        bar.append(f" {self.terminal or 'Tally'} ", style="bold")
        for i, name in enumerate(PANES, 1):
            label = f" {i} {self.w(f'pane.{name}')} "
            bar.append(label, style="reverse bold" if name == self.current else "")
        bar.append("  ")
        if self.connected:
            bar.append(f"● {self.w('link.connected')}", style="green")
        else:
            bar.append(f"○ {self.w('link.lost')}", style="bold red")
        bar.append(f"  {self.clock().astimezone(self.tz):%H:%M}")
        self.query_one("#topbar", Static).update(bar)
        hints = self.pane().keys
        keys = (self.w(hints) + "   " if hints else "") + self.w("keys.global")
        self.query_one("#keys", Static).update(keys)

    def show_status(self, message: str, tone: str) -> None:
        """The result of the last command."""
        style = {"ok": "green", "bad": "bold red"}.get(tone, "")
        self.status_text = Text(message, style=style)
        for status in self.query("#status").results(Static):  # none while closing
            status.update(self.status_text)

    # --- keys ----------------------------------------------------------------------------------

    def action_show(self, name: str) -> None:
        """Switch to a pane."""
        if isinstance(self.screen, ModalScreen) or name not in PANES:
            return
        self.current = name
        self.query_one("#panes", ContentSwitcher).current = name
        self.refresh_current()
        tables = self.pane().query("RowTable")
        if tables:
            tables.first().focus()

    def action_key(self, key: str) -> None:
        """A letter key: the action it means on the visible pane, if any."""
        if isinstance(self.screen, ModalScreen):
            return
        action = PANE_KEYS.get((self.current, key))
        if action is None:
            return
        if not self.connected:
            self.show_status(self.w("cmd.refused", sentence=self.w("cmd.no_daemon")), "bad")
            return
        getattr(self, f"do_{action}")()

    def selected_visit(self) -> dict[str, Any] | None:
        """The visit under the cursor of the visible pane, as last published."""
        key = self.pane().selected_key()
        if key is None:
            return None
        for part in ("scale_queue", "open", "queue"):
            for v in views.visits(self.states, part):
                if key in (v.get("visit"), v.get("plate")):
                    return v
        return None

    def _target(self) -> tuple[dict[str, Any], str] | None:
        v = self.selected_visit()
        if v is None:
            self.show_status(self.w("cmd.no_visit"), "bad")
            return None
        name = {"visit": v["visit"]} if v.get("visit") else {"plate": v.get("plate")}
        return name, str(v.get("plate") or v.get("visit"))

    def _visit_op(self, op: str, **extra: Any) -> None:
        target = self._target()
        if target is not None:
            name, plate = target
            self.send(op, f"{op} {plate}", **name, **extra)

    def do_arrive(self) -> None:
        """Register an arrival."""
        w = self.w
        fields = [
            Field("plate", w("form.plate")),
            Field("order", w("form.order")),
            Field("product", w("form.product")),
            Field(
                "load",
                w("form.load"),
                "choice",
                choices=((w("load.bagged"), "bagged"), (w("load.bulk"), "bulk")),
            ),
            Field("planned_kg", w("form.planned_kg"), "int"),
        ]

        def done(values: dict[str, str | int] | None) -> None:
            if values is not None:
                self.send("visit.arrive", f"visit.arrive {values['plate']}", **values)

        self.push_screen(FormScreen(w("form.arrive"), fields, w), done)

    def do_tare(self) -> None:
        """Assign the newest captured weighing to the selected truck as its tare."""
        self._visit_op("visit.weigh", role="tare")

    def do_gross(self) -> None:
        """Assign the newest captured weighing to the selected truck as its gross."""
        self._visit_op("visit.weigh", role="gross")

    def do_pick_queue(self) -> None:
        """Pick a truck in the plant that joins the scale queue."""
        queued = {v.get("visit") for v in views.visits(self.states, "scale_queue")}
        items = [
            (
                str(v.get("visit")),
                f"{views.text(v.get('plate'))}  {views.stage_text(self.w, v.get('stage'))}",
            )
            for v in views.visits(self.states, "open")
            if v.get("visit") and v.get("visit") not in queued
        ]

        def done(visit: str | None) -> None:
            if visit:
                plate = next(
                    (
                        v.get("plate")
                        for v in views.visits(self.states, "open")
                        if v.get("visit") == visit
                    ),
                    visit,
                )
                self.send("visit.queue", f"visit.queue {plate}", visit=visit)

        self.push_screen(
            PickScreen(self.w("form.queue_pick"), items, self.w("form.nothing_to_pick")), done
        )

    def do_queue(self) -> None:
        """The selected truck joins the scale queue."""
        self._visit_op("visit.queue")

    def do_gate_in(self) -> None:
        """The selected truck passes the gate."""
        self._visit_op("visit.gate_in")

    def do_exit(self) -> None:
        """The selected truck leaves; a sealed bulk truck only with the seals the gate sees."""
        v = self.selected_visit()
        if v is None or not (v.get("load") == "bulk" and v.get("seals")):
            self._visit_op("visit.exit")
            return
        self._visit_form(
            "visit.exit",
            "form.exit_seals",
            [Field("seals_seen", self.w("form.seals_seen"))],
            lambda values: {
                "seals_seen": [s for s in re.split(r"[\s,，;；]+", str(values["seals_seen"])) if s]
            },
        )

    def _visit_form(
        self,
        op: str,
        title_key: str,
        fields: list[Field],
        shape: Callable[[dict[str, str | int]], dict[str, Any]],
    ) -> None:
        target = self._target()
        if target is None:
            return
        name, plate = target

        def done(values: dict[str, str | int] | None) -> None:
            if values is not None:
                self.send(op, f"{op} {plate}", **name, **shape(values))

        self.push_screen(FormScreen(self.w(title_key, plate=plate), fields, self.w), done)

    def do_loading_start(self) -> None:
        """Loading starts at a point."""
        points = views.packer_names(self.states)
        self._visit_form(
            "visit.loading_start",
            "form.loading_start",
            [Field("point", self.w("form.point"), default=points[0] if points else "")],
            dict,
        )

    def do_loading_finish(self) -> None:
        """Loading finished (bags for a bagged load)."""
        self._visit_form(
            "visit.loading_finish",
            "form.loading_finish",
            [Field("bags", self.w("form.bags"), "int", required=False)],
            dict,
        )

    def do_seal(self) -> None:
        """Seal numbers for a bulk truck."""
        self._visit_form(
            "visit.seal",
            "form.seal",
            [Field("seals", self.w("form.seals"))],
            lambda v: {"seals": [s for s in re.split(r"[\s,，;；]+", str(v["seals"])) if s]},
        )

    def do_cancel(self) -> None:
        """Cancel the selected visit with a reason."""
        self._visit_form(
            "visit.cancel", "form.cancel_visit", [Field("reason", self.w("form.reason"))], dict
        )

    def do_packer_reason(self) -> None:
        """Record why the selected packer stopped and when it should run again."""
        packer = self.pane().selected_key()
        if packer is None:
            self.show_status(self.w("cmd.no_packer"), "bad")
            return
        fields = [
            Field("reason", self.w("form.reason")),
            Field("expected_repair_min", self.w("form.repair"), "int"),
        ]

        def done(values: dict[str, str | int] | None) -> None:
            if values is not None:
                self.send("packer.reason", f"packer.reason {packer}", packer=packer, **values)

        self.push_screen(
            FormScreen(self.w("form.packer_reason", packer=packer), fields, self.w), done
        )

    def _selected_packer(self) -> str | None:
        packer = self.pane().selected_key()
        if packer is None or packer not in views.packer_names(self.states):
            self.show_status(self.w("cmd.no_packer"), "bad")
            return None
        return packer

    def do_check_bags(self) -> None:
        """Record a bag-weight spot check on the selected packer (weights typed in)."""
        packer = self._selected_packer()
        if packer is None:
            return

        def done(values: dict[str, str | int] | None) -> None:
            if values is not None:
                samples = split_weights(str(values["kg"]))
                self.send(
                    "check.bag_weight",
                    f"check.bag_weight {packer}",
                    packer=packer,
                    samples_kg=samples,
                )

        fields = [Field("kg", self.w("form.bag_weights"))]
        self.push_screen(FormScreen(self.w("form.check_bags", packer=packer), fields, self.w), done)

    def do_check_print(self) -> None:
        """Record a print-code check on the selected packer."""
        packer = self._selected_packer()
        if packer is None:
            return
        w = self.w
        fields = [
            Field(
                "result",
                w("form.result"),
                "choice",
                choices=((w("result.pass"), "pass"), (w("result.fail"), "fail")),
            ),
            Field("note", w("form.note"), required=False),
        ]

        def done(values: dict[str, str | int] | None) -> None:
            if values is not None:
                self.send("check.print_code", f"check.print_code {packer}", packer=packer, **values)

        self.push_screen(FormScreen(w("form.check_print", packer=packer), fields, w), done)

    def do_window(self) -> None:
        """One key for the service windows: serve someone waiting, or register a new arrival."""
        w = self.w
        waiting = [
            t for t in views.list_of(self.states.get("windows"), "open") if isinstance(t, dict)
        ]
        items = [("", w("window.new"))] + [
            (
                str(t.get("ticket")),
                w(
                    "window.waiting",
                    ticket=views.text(t.get("ticket")),
                    window=views.text(t.get("window")),
                    service=w.maybe(f"service.{t.get('service')}", views.text(t.get("service"))),
                    since=views.clock(t.get("arrived_at"), self.tz),
                ),
            )
            for t in waiting
        ]

        def picked(ticket: str | None) -> None:
            if ticket is None:
                return
            if ticket:
                self.send("window.serve", f"window.serve {ticket}", ticket=ticket)
                return
            fields = [
                Field("window", w("form.window"), default="sales"),
                Field(
                    "service",
                    w("form.service"),
                    "choice",
                    choices=tuple((w(f"service.{s}"), s) for s in WINDOW_SERVICES),
                ),
            ]

            def done(values: dict[str, str | int] | None) -> None:
                if values is not None:
                    self.send("window.arrive", f"window.arrive {values['window']}", **values)

            self.push_screen(FormScreen(w("form.window_arrive"), fields, w), done)

        self.push_screen(PickScreen(w("window.title"), items, w("window.new")), picked)

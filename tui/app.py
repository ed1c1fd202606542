"""The operators' Textual app: one worker talks to the daemon, the panes render what it hears."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widgets import ContentSwitcher, Static

from agent.config import BoardConfig
from agent.daemon.client import AsyncClient, DaemonUnavailable, RequestRefused
from tui import forms, i18n, views
from tui.compositor import partial_screen
from tui.i18n import Words
from tui.messages import (
    CommandAnswered,
    CommandRefused,
    DaemonFound,
    DaemonLost,
    StateReceived,
)
from tui.plant_line import plant_line
from tui.screens import PANE_CLASSES, PANES, Pane, WeighbridgePane
from tui.widgets import FormScreen, PickScreen, line, show

RETRY_S = 1.5  # how often to try the socket again while the daemon is away
WARNING_S = 20.0  # a command's warning stays this long: long enough to read it twice
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock in UTC (the default clock; tests pass a frozen one)."""
    return datetime.now(UTC)


class LiveApp(App[None]):
    """An app fed by the daemon's live state: the connection worker, the banner, the tick."""

    CSS_PATH = "tally.tcss"
    TITLE = "Tally"
    ENABLE_COMMAND_PALETTE = False
    PLANT_STOPS = True  # the plant line lists stopped packers (the board shows them apart)

    def __init__(
        self,
        socket_path: str,
        language: str = "zh",
        tz: tzinfo = UTC,
        terminal: str = "",
        clock: Clock = utc_now,
        connect: bool = True,
        board: BoardConfig | None = None,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.w = Words(language)
        self.notices = views.notice_texts(board or BoardConfig(), self.w.language)
        self.tz = tz
        self.terminal = terminal
        self.clock = clock
        self.connect = connect
        self.states: dict[str, Any] = {}
        self.connected = False
        self.lost_shown = False
        self.client: AsyncClient | None = None

    def get_default_screen(self) -> Screen[object]:
        """Textual's default screen, drawing partial updates with a PartialCompositor."""
        return partial_screen(Screen(id="_default"))

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
        with contextlib.suppress(NoMatches):  # closing
            self.refresh_all()

    def on_daemon_lost(self, _msg: DaemonLost) -> None:
        """Say so plainly; forget the live state rather than show stale weights as live."""
        if self.lost_shown:
            return
        self.lost_shown = True
        self.connected = False
        self.states.clear()
        self.banner(self.w("link.banner", path=self.socket_path, every=f"{RETRY_S:g}"))
        with contextlib.suppress(NoMatches):  # closing
            self.refresh_all()

    def banner(self, sentence: str) -> None:
        """The connection banner (hidden when empty)."""
        banner = self.query_one_optional("#banner", Static)
        if banner is None:  # closing
            return
        banner.update(sentence)
        banner.display = bool(sentence)

    def tick(self) -> None:
        """Once a second: elapsed times move on."""
        self.refresh_current()

    def state_changed(self, topic: str) -> None:
        """A topic changed: redraw (subclasses redraw less for the weight stream)."""
        self.refresh_current()

    def refresh_current(self) -> None:
        """Redraw what is in view (nothing while the app is closing or its parts mount)."""
        with contextlib.suppress(NoMatches):
            self.refresh_all()

    def refresh_all(self) -> None:
        """Redraw everything."""

    def refresh_plant(self) -> None:
        """The plant status line: what needs attention on any terminal (tui/plant_line.py)."""
        v = plant_line(self.states, self.terminal, self.w, stops=self.PLANT_STOPS)
        out = Text(f" {v.label} ", style="bold")
        out.append_text(line(v.items))
        widget = self.query_one_optional("#plant", Static)  # none while closing
        if widget is not None:
            show(widget, out)


class TallyApp(LiveApp):
    """`tally tui`: the weighbridge, loading, yard, today and health panes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(f"f{i}", f"show('{p}')", show=False) for i, p in enumerate(PANES, 1)),
        *(Binding(str(i), f"show('{p}')", show=False) for i, p in enumerate(PANES, 1)),
        # One binding per command key; `check_action` lets each work on its own panes only.
        *(
            Binding(key, action, show=False)
            for key, action in dict.fromkeys((key, action) for _pane, key, action in forms.KEYS)
        ),
        Binding("ctrl+q", "quit", show=False, priority=True),
    ]

    def __init__(self, socket_path: str, language: str = "zh", **kwargs: Any) -> None:
        super().__init__(socket_path, language, **kwargs)
        self.current = PANES[0]

    def compose(self) -> ComposeResult:
        """Top bar, connection banner, the panes, the command status and the key hints."""
        yield Static("", id="topbar")
        yield Static("", id="plant")
        yield Static("", id="banner")
        with ContentSwitcher(initial=PANES[0], id="panes"):
            for name in PANES:
                yield PANE_CLASSES[name](self.w, self.tz, id=name, notices=self.notices)
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
                # none under a form or pick list (or while closing): redrawn when it closes
                pane = self.query_one_optional("#weighbridge", WeighbridgePane)
                if pane is not None:
                    with contextlib.suppress(NoMatches):  # its parts not mounted yet
                        pane.update_weight(views.scale_view(self.states, self.tz, self.w))
            return
        self.refresh_current()

    def on_command_answered(self, msg: CommandAnswered) -> None:
        """Show what was done (a ticket's number too)."""
        what = msg.what
        ticket = msg.result.get("ticket") if isinstance(msg.result, dict) else None
        if isinstance(ticket, dict) and ticket.get("number"):
            what += f" {ticket['number']}"
        self.show_status(self.w("cmd.ok", what=what), "ok")
        if isinstance(msg.result, dict):
            # recorded all the same, but a fact of another terminal was missing here
            sentences = msg.result.get("warnings") or []
            codes = msg.result.get("warning_codes") or []
            for n, sentence in enumerate(sentences if isinstance(sentences, list) else []):
                entry = codes[n] if isinstance(codes, list) and n < len(codes) else None
                self.notify(
                    i18n.warning(self.w, entry, str(sentence)),
                    title=self.w("warn.title"),
                    severity="warning",
                    timeout=WARNING_S,
                    markup=False,
                )

    def on_command_refused(self, msg: CommandRefused) -> None:
        """Show the daemon's sentence where the operator is looking."""
        self.show_status(self.w("cmd.refused", sentence=msg.sentence), "bad")

    # --- drawing -------------------------------------------------------------------------------

    def pane(self, name: str | None = None) -> Pane:
        """A pane by name (the visible one by default)."""
        return self.query_one(f"#{name or self.current}", Pane)

    def refresh_current(self) -> None:
        """Re-render the visible pane and the top bar (nothing while the app is closing)."""
        if self.query_one_optional("#topbar", Static) is None:
            return
        with contextlib.suppress(NoMatches):  # a pane whose parts are not mounted yet: next tick
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
        on_duty = self.states.get("operator")
        if isinstance(on_duty, dict) and on_duty.get("operator"):
            post = f" ({on_duty['post']})" if on_duty.get("post") else ""
            bar.append(f"  {self.w('operator.on_duty')}: {on_duty['operator']}{post}", style="bold")
        show(self.query_one("#topbar", Static), bar)
        self.refresh_plant()
        hints = self.pane().keys
        keys = (self.w(hints) + "   " if hints else "") + self.w("keys.global")
        show(self.query_one("#keys", Static), keys)

    def show_status(self, message: str, tone: str) -> None:
        """The result of the last command."""
        style = {"ok": "green", "bad": "bold red"}.get(tone, "")
        self.status_text = Text(message, style=style)
        status = self.query_one_optional("#status", Static)  # none while closing
        if status is not None:
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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A command key works only on the panes that carry it, and not under a form."""
        panes = forms.panes_of(action)
        if not panes:
            return True
        return self.current in panes and not isinstance(self.screen, ModalScreen)

    # --- operator commands: one action per key; tui.forms describes each form ------------------

    def action_arrive(self) -> None:
        """Register an arrival."""
        self.ask(forms.ARRIVE)

    def action_tare(self) -> None:
        """Assign the newest captured weighing to the selected truck as its tare."""
        self.ask(forms.TARE)

    def action_gross(self) -> None:
        """Assign the newest captured weighing to the selected truck as its gross."""
        self.ask(forms.GROSS)

    def action_pick_queue(self) -> None:
        """Pick a truck in the plant that joins the scale queue."""
        if not self.online():
            return
        candidates = forms.queue_candidates(self.states, self.w)
        plates = {visit: plate for visit, plate, _label in candidates}

        def picked(visit: str | None) -> None:
            if visit:
                self.ask(forms.QUEUE, ({"visit": visit}, plates.get(visit, visit)))

        items = [(visit, label) for visit, _plate, label in candidates]
        self.push_screen(
            PickScreen(self.w("form.queue_pick"), items, self.w("form.nothing_to_pick")), picked
        )

    def action_print_ticket(self) -> None:
        """Print the weigh ticket of a truck weighed gross (the last weighed is listed first)."""
        self.pick_weighed(forms.TICKET_PRINT, "ticket.print_pick")

    def action_reprint_ticket(self) -> None:
        """Print a copy (副本) of a truck's printed ticket."""
        self.pick_weighed(forms.TICKET_REPRINT, "ticket.reprint_pick")

    def pick_weighed(self, form: forms.Form, title: str) -> None:
        """Pick a truck weighed gross, then send `form` about it."""
        if not self.online():
            return
        candidates = forms.weighed_candidates(self.states, self.w)
        plates = {visit: plate for visit, plate, _label in candidates}

        def picked(visit: str | None) -> None:
            if visit:
                self.ask(form, ({"visit": visit}, plates.get(visit, visit)))

        items = [(visit, label) for visit, _plate, label in candidates]
        self.push_screen(PickScreen(self.w(title), items, self.w("ticket.none")), picked)

    def action_gate_in(self) -> None:
        """The selected truck passes the gate."""
        self.ask(forms.GATE_IN)

    def action_queue(self) -> None:
        """The selected truck joins the scale queue."""
        self.ask(forms.QUEUE)

    def action_loading_start(self) -> None:
        """Loading starts at a point (the first packer unless the operator types another)."""
        points = views.packer_names(self.states)
        self.ask(forms.LOADING_START, point=points[0] if points else "")

    def action_loading_finish(self) -> None:
        """Loading finished (bags for a bagged load)."""
        self.ask(forms.LOADING_FINISH)

    def action_seal(self) -> None:
        """Seal numbers for a bulk truck."""
        self.ask(forms.SEAL)

    def action_exit(self) -> None:
        """The selected truck leaves; a sealed bulk truck only with the seals the gate sees."""
        v = self.selected_visit() if self.connected else None
        sealed = v is not None and v.get("load") == "bulk" and bool(v.get("seals"))
        self.ask(forms.EXIT_SEALED if sealed else forms.EXIT)

    def action_exit_checked(self) -> None:
        """The selected truck leaves through the gate's checks: seals, product, a reason."""
        self.ask(forms.EXIT_CHECKED)

    def action_broken_bags(self) -> None:
        """Broken bags found or replaced on the selected truck (on the loading pane: the truck
        loading at the selected packer)."""
        if self.current != "loading":
            self.ask(forms.BROKEN_BAGS)
            return
        packer = self.pane().selected_key()
        if packer is None or not self.online():
            return
        v = next(
            (
                v
                for v in views.visits(self.states, "open")
                if v.get("point") == packer and v.get("stage") == "loading"
            ),
            None,
        )
        if v is None:
            self.show_status(self.w("cmd.no_loading", packer=packer), "bad")
            return
        self.ask(forms.BROKEN_BAGS, ({"visit": v["visit"]}, str(v.get("plate") or v["visit"])))

    def action_cancel(self) -> None:
        """Cancel the selected visit with a reason."""
        self.ask(forms.CANCEL)

    def action_packer_reason(self) -> None:
        """Record why the selected packer stopped and when it should run again."""
        self.ask(forms.PACKER_REASON)

    def action_check_bags(self) -> None:
        """Record a bag-weight spot check on the selected packer (weights typed in)."""
        self.ask(forms.CHECK_BAGS)

    def action_check_print(self) -> None:
        """Record a print-code check on the selected packer."""
        self.ask(forms.CHECK_PRINT)

    def action_calibrated(self) -> None:
        """Mark the selected packer calibrated at start-up: its bag-weight check is due."""
        self.ask(forms.CALIBRATED)

    def action_sign_in(self) -> None:
        """Sign in on this terminal with a name or badge number (挂牌上岗)."""
        self.ask(forms.SIGN_IN)

    def action_sign_out(self) -> None:
        """Sign the operator on duty out at the end of the shift."""
        who = str((self.states.get("operator") or {}).get("operator") or "")
        self.ask(forms.SIGN_OUT, ({}, who))

    def action_window(self) -> None:
        """One key for the service windows: serve someone waiting, or register a new arrival."""
        if not self.online():
            return

        def picked(ticket: str | None) -> None:
            if ticket:
                self.ask(forms.WINDOW_SERVE, ({"ticket": ticket}, ticket))
            elif ticket is not None:
                self.ask(forms.WINDOW_ARRIVE)

        items = forms.window_items(self.states, self.w, self.tz)
        self.push_screen(PickScreen(self.w("window.title"), items, self.w("window.new")), picked)

    def action_plan(self) -> None:
        """Enter the day's dispatch plan (the day in view, else today), tonnes and product."""
        day = views.today_day(self.states, self.clock(), self.tz)
        self.ask(forms.PLAN, day=day)

    # --- asking and sending ----------------------------------------------------------------------

    def online(self) -> bool:
        """Whether a daemon is there to send to; if not, say so."""
        if not self.connected:
            self.show_status(self.w("cmd.refused", sentence=self.w("cmd.no_daemon")), "bad")
        return self.connected

    def ask(self, form: forms.Form, subject: forms.Subject | None = None, **defaults: str) -> None:
        """Send `form`'s op about `subject` (else its target), asking for its fields first."""
        if not self.online():
            return
        if subject is None and form.target != "none":
            subject = self.selected(form.target)
            if subject is None:
                return
        args, name = subject or ({}, "")
        if not form.title:
            self.send(form.op, form.what(name), **form.arguments(args, {}))
            return

        def done(values: dict[str, str | int] | None) -> None:
            if values is not None:
                what = form.what(name or str(values[form.names]))
                self.send(form.op, what, **form.arguments(args, values))

        title = self.w(form.title, plate=name, packer=name)
        self.push_screen(FormScreen(title, form.with_defaults(**defaults), self.w), done)

    def selected(self, target: forms.Target) -> forms.Subject | None:
        """The selected visit or packer as the op's arguments and its name; if none, say so."""
        if target == "packer":
            packer = self.pane().selected_key()
            if packer is None or packer not in views.packer_names(self.states):
                self.show_status(self.w("cmd.no_packer"), "bad")
                return None
            return {"packer": packer}, packer
        v = self.selected_visit()
        if v is None:
            self.show_status(self.w("cmd.no_visit"), "bad")
            return None
        args = {"visit": v["visit"]} if v.get("visit") else {"plate": v.get("plate")}
        return args, str(v.get("plate") or v.get("visit"))

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

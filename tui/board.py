"""`tally board`: the drivers' public display of the queues and stopped packers, in large text."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits, Label, Static

from tui import views
from tui.app import LiveApp
from tui.screens import notice_lines
from tui.widgets import RowTable, show


class BoardApp(LiveApp):
    """The queue at the gate and at the weighbridge, expected waits, stopped packers."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", show=False, priority=True),
        Binding("q", "quit", show=False),
    ]
    PLANT_STOPS = False  # listed in large text below

    def compose(self) -> ComposeResult:
        """Title, banner, the two queues side by side, stopped packers underneath."""
        w = self.w
        yield Static("", id="topbar")
        yield Static("", id="plant")
        yield Static("", id="banner")
        with Horizontal(id="board-queues"):
            for part, title in (("gate", "board.gate"), ("scale", "board.scale")):
                with Vertical(classes="board-queue"):
                    with Horizontal(classes="board-head"):
                        yield Label(w(title), classes="board-title")
                        yield Digits("0", id=f"count-{part}", classes="board-count")
                    yield RowTable(
                        [w("col.pos"), w("col.plate"), w("col.queue_wait"), w("col.expected")],
                        id=f"board-{part}",
                    )
        yield Label(w("board.stopped"), classes="board-title")
        yield Static("", id="board-stopped", classes="board-big")
        yield Label(w("board.notices"), id="board-notices-title", classes="board-title")
        yield Static("", id="board-notices", classes="board-big")

    def on_mount(self) -> None:
        """The board is read, not operated: its tables take no focus."""
        for table in self.query(RowTable):
            table.can_focus = False
            table.show_cursor = False
        super().on_mount()

    def refresh_all(self) -> None:
        """Redraw the whole board."""
        now = self.clock()
        v = views.board(self.states, now, self.w, self.notices)
        bar = Text(f" {self.w('board.title')}  ", style="bold")
        if self.connected:
            bar.append(f"● {self.w('link.connected')}", style="green")
        else:
            bar.append(f"○ {self.w('link.lost')}", style="bold red")
        bar.append(f"  {now.astimezone(self.tz):%H:%M}")
        show(self.query_one("#topbar", Static), bar)
        self.refresh_plant()
        for part, rows in (("gate", v.gate), ("scale", v.scale)):
            self.query_one(f"#count-{part}", Digits).update(str(len(rows)))
            self.query_one(f"#board-{part}", RowTable).show(rows)
        stopped: Any
        if v.stopped:
            stopped = Text()
            for row in v.stopped:
                name, reason, repair = (c.text for c in row.cells)
                stopped.append(f"■ {name}  ", style="bold red")
                stopped.append(f"{reason}  ")
                stopped.append(f"{repair}\n", style="bold")
            stopped.rstrip()
        else:
            stopped = Text(self.w("board.all_running"), style="green")
        show(self.query_one("#board-stopped", Static), stopped)
        # the exception board (service standard 第七条): shown while there is something to do
        show(self.query_one("#board-notices", Static), notice_lines(v.notices))
        for part in ("#board-notices-title", "#board-notices"):
            self.query_one(part).display = bool(v.notices)

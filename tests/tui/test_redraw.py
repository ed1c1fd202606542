"""The UI redraws only what changed, and a state that arrives before a pane's parts are mounted
does not stop it: the pane is drawn from the kept states once they are."""

from __future__ import annotations

import functools
from typing import Any

from rich.text import Text
from textual._compositor import ChopsUpdate, Compositor
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Digits, Label, Static

from tests.tui.fixtures import STATES, frozen
from tui.app import TallyApp
from tui.board import BoardApp
from tui.compositor import PartialCompositor
from tui.messages import DaemonFound, StateReceived
from tui.views import Cell, Row
from tui.widgets import RowTable, show


def record_updates(widget: Static) -> list[tuple[object, bool]]:
    """Every `update` of `widget` from now on, as (content, layout), passed on to it."""
    calls: list[tuple[object, bool]] = []
    original = widget.update

    def recording(content: object = "", *, layout: bool = True) -> None:
        calls.append((content, layout))
        original(content, layout=layout)  # type: ignore[arg-type]

    widget.update = recording  # type: ignore[method-assign]
    return calls


async def test_a_weight_before_the_pane_is_drawn_does_not_stop_the_ui() -> None:
    app = TallyApp("tally.sock", "en", terminal="wb1", clock=frozen, connect=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(DaemonFound())
        digits = app.query_one("#weight", Digits)
        parent = digits.parent
        assert isinstance(parent, Widget)
        await digits.remove()  # as while the pane is being composed
        app.post_message(StateReceived("scale.scale1", STATES["scale.scale1"]))
        app.post_message(StateReceived("visits", STATES["visits"]))
        await pilot.pause()
        assert app.is_running
        await parent.mount(Digits("", id="weight"), before=0)
        app.post_message(StateReceived("scale.scale1", {**STATES["scale.scale1"], "weight": 43140}))
        await pilot.pause()
        assert app.query_one("#weight", Digits).value == "43,140"


async def test_a_text_is_put_on_screen_only_when_it_changes() -> None:
    app = TallyApp("tally.sock", "en", terminal="wb1", clock=frozen, connect=False)
    async with app.run_test(size=(80, 24)):
        widget = app.query_one("#scale-last", Static)
        calls = record_updates(widget)
        show(widget, "w-1 43120 kg")
        show(widget, "w-1 43120 kg")
        show(widget, "w-2 15200 kg")
        assert [content for content, _ in calls] == ["w-1 43120 kg", "w-2 15200 kg"]
        assert str(widget.content) == "w-2 15200 kg"


async def test_the_board_keeps_running_when_a_tick_finds_its_parts_gone() -> None:
    # seen under load: the board's once-a-second tick ran while the app was closing
    app = BoardApp("tally.sock", "en", terminal="wb1", clock=frozen, connect=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.post_message(DaemonFound())
        await pilot.pause()
        await app.query_one("#topbar", Static).remove()
        app.tick()
        app.post_message(StateReceived("visits", STATES["visits"]))
        await pilot.pause()
        assert app.is_running


async def test_a_text_of_the_same_size_is_repainted_without_a_layout_and_a_larger_one_gets_room() -> (
    None
):
    # a layout renders every widget on the screen; the top bar's clock asked for one a second
    app = TallyApp("tally.sock", "en", terminal="wb1", clock=frozen, connect=False)
    async with app.run_test(size=(80, 24)) as pilot:
        widget = app.query_one("#scale-last", Static)
        calls = record_updates(widget)
        show(widget, "w-1 43120 kg")
        await pilot.pause()
        assert widget.size.height == 1
        show(widget, "w-2 15200 kg")  # the same lines and width: repainted in place
        await pilot.pause()
        assert app.screen.get_widget_at(*widget.region.offset)[0] is widget
        assert str(widget.content) == "w-2 15200 kg"
        show(widget, "w-3 15200 kg\nsecond line")  # one more line: the screen makes room
        await pilot.pause()
        assert widget.size.height == 2
        show(widget, "w-4 15200 kg")  # one line again: the room is given back
        await pilot.pause()
        assert widget.size.height == 1
        show(widget, "w-5 " + "x" * widget.size.width)  # wider than the widget: it wraps
        await pilot.pause()
        assert widget.size.height == 2
        # the first text replaced the pane's own one-line text: no layout either
        assert [layout for _, layout in calls] == [False, False, True, True, True]


async def test_a_label_as_wide_as_its_text_gets_a_layout_when_its_width_changes() -> None:
    app = TallyApp("tally.sock", "en", terminal="wb1", clock=frozen, connect=False)
    async with app.run_test(size=(80, 24)) as pilot:
        label = app.query_one("#queue-title", Label)
        calls = record_updates(label)
        show(label, "queue")  # narrower than the pane's own title
        await pilot.pause()
        assert label.size.width == len("queue")
        show(label, "QUEUE")  # as wide: repainted in place
        show(label, "queue, 2 trucks waiting")
        await pilot.pause()
        assert label.size.width == len("queue, 2 trucks waiting")
        assert [layout for _, layout in calls] == [True, False, True]


async def test_a_table_whose_rows_stay_changes_its_cells_in_place_and_keeps_the_cursor() -> None:
    app = TallyApp("tally.sock", "en", terminal="wb1", clock=frozen, connect=False)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(RowTable)
        width = len(table.columns)
        rows = tuple(Row(f"v{i}", tuple(Cell(f"{i}-{c}") for c in range(width))) for i in range(3))
        table.show(rows)
        await pilot.pause()
        table.move_cursor(row=1)
        cleared: list[bool] = []
        original = table.clear

        def counting(columns: bool = False) -> RowTable:
            cleared.append(columns)
            original(columns)
            return table

        table.clear = counting  # type: ignore[method-assign]
        # a wait grew by a minute, and to a wider text in another row
        grown = (
            rows[0],
            Row("v1", (Cell("1-0 longer than before", "warn"), *rows[1].cells[1:])),
            rows[2],
        )
        table.show(grown)
        await pilot.pause()
        assert cleared == []
        assert table.get_row_at(1)[0] == Text("1-0 longer than before", style="bold yellow")
        assert table.get_row_at(0)[0].plain == "0-0" and table.cursor_row == 1
        first = table.columns[next(iter(table.columns))]
        assert first.content_width >= len("1-0 longer than before")
        # another row order: the table is filled again, the cursor on the same visit
        table.show((grown[1], grown[0]))
        await pilot.pause()
        assert cleared == [False]
        assert [table.get_row_at(y)[1].plain for y in range(2)] == ["1-1", "0-1"]
        assert table.selected_key() == "v1" and table.cursor_row == 0


async def test_a_partial_update_renders_only_the_widgets_under_it_and_writes_the_same_cells() -> (
    None
):
    app = TallyApp("tally.sock", "en", terminal="wb1", clock=frozen, connect=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.post_message(DaemonFound())
        for topic, state in STATES.items():
            app.post_message(StateReceived(topic, state))
        await pilot.pause()
        comp = app.screen._compositor
        assert isinstance(comp, PartialCompositor)
        digits = app.query_one("#weight", Digits).region
        table = app.query_one("#scale-queue", RowTable).region
        crops = [
            digits,
            table,
            digits.union(app.query_one("#scale-tags", Static).region),
            Region(30, 5, 50, 12),  # across several widgets' edges
            Region(0, 0, 120, 40),
        ]

        def update(renders: Any, crop: Region) -> str:
            comp._get_renders = renders  # type: ignore[method-assign]
            try:
                spans = list(comp._regions_to_spans([crop]))
                chops = comp._render_chops(crop, {y for y, _, _ in spans}.__contains__)
                ends = [cut_set[1:] for cut_set in comp.cuts]
                return ChopsUpdate(chops, spans, ends).render_segments(app.console)
            finally:
                del comp._get_renders

        textual_way = functools.partial(Compositor._get_renders, comp)
        for crop in crops:
            assert update(comp._get_renders, crop) == update(textual_way, crop), crop
        # a new weight renders the digits and what lies under them, not the whole pane
        ours = [r for r, _, _ in comp._get_renders(digits)]
        theirs = [r for r, _, _ in Compositor._get_renders(comp, digits)]
        assert len(ours) < len(theirs) / 2
        assert all(r.overlaps(digits) for r in ours)

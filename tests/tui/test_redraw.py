"""The UI redraws only what changed, and a state that arrives before a pane's parts are mounted
does not stop it: the pane is drawn from the kept states once they are."""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import Digits, Static

from tests.tui.fixtures import STATES, frozen
from tui.app import TallyApp
from tui.board import BoardApp
from tui.messages import DaemonFound, StateReceived
from tui.widgets import show


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
        updates: list[object] = []
        original = widget.update

        def counting(content: object = "", *, layout: bool = True) -> None:
            updates.append(content)
            original(content, layout=layout)  # type: ignore[arg-type]

        widget.update = counting  # type: ignore[method-assign]
        show(widget, "w-1 43120 kg")
        show(widget, "w-1 43120 kg")
        show(widget, "w-2 15200 kg")
        assert updates == ["w-1 43120 kg", "w-2 15200 kg"]
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

"""Each pane and the drivers' board at 80×24 and 120×40, in Chinese and English, fixed data."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from textual.pilot import Pilot

from tests.tui.fixtures import STATES, frozen
from tui.app import LiveApp, TallyApp
from tui.board import BoardApp
from tui.messages import DaemonFound, DaemonLost, StateReceived

SH = ZoneInfo("Asia/Shanghai")
SIZES = [(80, 24), (120, 40)]


def fed(app: LiveApp, keys: tuple[str, ...] = ()) -> Any:
    """A run_before that plays the connection worker's messages, then presses `keys`."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app.post_message(DaemonFound())
        for topic, state in STATES.items():
            app.post_message(StateReceived(topic, state))
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
@pytest.mark.parametrize("pane", ["weighbridge", "loading", "yard", "today", "health"])
def test_pane(snap_compare: Any, pane: str, size: tuple[int, int], language: str) -> None:
    app = TallyApp("tally.sock", language, tz=SH, terminal="wb1", clock=frozen, connect=False)
    key = str(["weighbridge", "loading", "yard", "today", "health"].index(pane) + 1)
    assert snap_compare(app, terminal_size=size, run_before=fed(app, (key,)))


def test_no_daemon(snap_compare: Any) -> None:
    app = TallyApp("tally.sock", "zh", tz=SH, terminal="wb1", clock=frozen, connect=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        app.post_message(DaemonLost("refused"))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize(
    ("language", "size"), [("zh", (80, 24)), ("en", (120, 40))], ids=["zh-80x24", "en-120x40"]
)
def test_board(snap_compare: Any, language: str, size: tuple[int, int]) -> None:
    app = BoardApp("tally.sock", language, tz=SH, clock=frozen, connect=False)
    assert snap_compare(app, terminal_size=size, run_before=fed(app))

"""The plant status line's pure view: every terminal's stops, long queue, offline devices and
sync trouble in one line, in both languages, whatever the state holds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tui.test_views import JUNK
from tui.i18n import Words
from tui.plant_line import PlantLine, plant_line
from tui.views import Cell

EN, ZH = Words("en"), Words("zh")

# wb1's own topics and what the `plant` topic holds of gate1 and pk1
STATES: dict[str, Any] = {
    "packer.line9": {"running": False, "stopped": {"expected_repair_min": 10}},
    "packer.line8": {"running": True, "stopped": None},
    "alerts": {
        "active": [
            {"alert": "sync_unreachable", "detail": "no answer for 300 s"},
            {"alert": "scale_step.scale1", "detail": "stepped"},  # local, not plant-wide
        ]
    },
    "devices": {"scale1": {"online": False}, "scale2": {"online": True}},
    "plant": {
        "alerts": [
            {"terminal": "gate1", "alert": "queue_long", "detail": "more than 10"},
            {"terminal": "gate1", "alert": "peer_unreachable.central", "detail": "5 min"},
            {"terminal": "pk1", "alert": "packer_anomaly.line1", "detail": "x"},
        ],
        "stopped": [
            {
                "terminal": "pk1",
                "packer": "line1",
                "reason": "belt torn",
                "expected_repair_min": 25,
            },
            {"terminal": "pk1", "packer": "line2", "reason": None, "expected_repair_min": None},
        ],
        "offline": [{"terminal": "pk1", "device": "line2", "reason": "refused"}],
    },
}


def test_everything_that_needs_attention_most_urgent_first() -> None:
    assert plant_line(STATES, "wb1", EN) == PlantLine(
        "plant",
        (
            Cell("■ wb1 line9 stopped, repair 10 min", "bad"),
            Cell("■ pk1 line1 stopped, repair 25 min", "bad"),
            Cell("■ pk1 line2 stopped", "bad"),
            Cell("▲ long queue at the gate, tell packing", "warn"),
            Cell("○ wb1 scale1 offline", "bad"),
            Cell("○ pk1 line2 offline", "bad"),
            Cell("⇅ wb1 sync trouble", "warn"),
            Cell("⇅ central unreachable", "warn"),
        ),
    )


def test_in_chinese_and_without_the_stops_the_board_shows_apart() -> None:
    assert plant_line(STATES, "wb1", ZH, stops=False) == PlantLine(
        "全厂",
        (
            Cell("▲ 门外排队过长，请通知包装", "warn"),
            Cell("○ wb1 scale1 离线", "bad"),
            Cell("○ pk1 line2 离线", "bad"),
            Cell("⇅ wb1 同步异常", "warn"),
            Cell("⇅ central 连不上", "warn"),
        ),
    )
    stop = {"packer.line1": {"running": False, "stopped": {"expected_repair_min": 25}}}
    assert plant_line({**stop, "alerts": {"active": []}}, "pk1", ZH).items == (
        Cell("■ pk1 line1 停机 预计 25 分钟修复", "bad"),
    )


def test_a_long_queue_raised_by_several_terminals_and_a_source_lost_by_two_show_once() -> None:
    states = {
        "alerts": {"active": [{"alert": "queue_long"}, {"alert": "peer_unreachable.pk1"}]},
        "plant": {
            "alerts": [
                {"terminal": "gate1", "alert": "queue_long"},
                {"terminal": "gate1", "alert": "peer_unreachable.pk1"},
                {"terminal": "gate1", "alert": "sync_auth"},
            ]
        },
    }
    assert plant_line(states, "", EN).items == (
        Cell("▲ long queue at the gate, tell packing", "warn"),
        Cell("⇅ gate1 sync trouble", "warn"),
        Cell("⇅ pk1 unreachable", "warn"),
    )


def test_all_clear_and_nothing_known_yet() -> None:
    quiet: dict[str, Any] = {"alerts": {"active": []}, "devices": {}, "plant": {}}
    assert plant_line(quiet, "gate1", EN) == PlantLine("plant", (Cell("all clear", "ok"),))
    assert plant_line({}, "gate1", EN) == PlantLine("plant", (Cell("—", "dim"),))


@pytest.mark.parametrize(
    "states",
    [
        *JUNK,
        {"plant": None},
        {"plant": {"alerts": "x", "stopped": [None, 3, {}], "offline": [{"terminal": None}]}},
        {"plant": {"stopped": [{"terminal": "pk1", "packer": "l", "expected_repair_min": True}]}},
    ],
)
def test_bad_state_shows_dashes_never_a_repr(states: dict[str, Any]) -> None:
    line = plant_line(states, "wb1", EN)
    leaked = [c.text for c in line.items if any(r in c.text for r in ("None", "True", "[", "{"))]
    assert leaked == []


async def test_the_line_shows_on_every_pane_and_on_the_board() -> None:
    from textual.widgets import Static

    from tests.tui.fixtures import frozen
    from tui.app import LiveApp, TallyApp
    from tui.board import BoardApp
    from tui.messages import DaemonFound, StateReceived
    from tui.screens import PANES

    def shown(app: LiveApp) -> str:
        line = app.query_one("#plant", Static)
        assert line.display and line.region.height == 1 and line.region.y < app.size.height
        return str(line.content)

    async def feed(app: LiveApp, pilot: Any) -> None:
        app.post_message(DaemonFound())
        for topic, state in STATES.items():
            app.post_message(StateReceived(topic, state))
        await pilot.pause()

    app = TallyApp("tally.sock", "en", terminal="wb1", clock=frozen, connect=False)
    async with app.run_test(size=(80, 24)) as pilot:
        assert shown(app) == " plant —"
        await feed(app, pilot)
        for i, pane in enumerate(PANES, 1):
            await pilot.press(str(i))
            assert app.current == pane
            assert shown(app).startswith(" plant ■ wb1 line9 stopped, repair 10 min  ■ pk1 line1")
        app.post_message(StateReceived("plant", {}))
        app.post_message(StateReceived("alerts", {"active": []}))
        app.post_message(StateReceived("devices", {}))
        app.post_message(StateReceived("packer.line9", {"running": True}))
        await pilot.pause()
        assert shown(app) == " plant all clear"

    board = BoardApp("tally.sock", "en", terminal="wb1", clock=frozen, connect=False)
    async with board.run_test(size=(80, 24)) as pilot:
        await feed(board, pilot)
        assert shown(board).startswith(" plant ▲ long queue at the gate, tell packing  ○ wb1")
        stopped = str(board.query_one("#board-stopped", Static).content)
        assert "pk1 line1  belt torn  25 min" in stopped

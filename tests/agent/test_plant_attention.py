"""Plant-wide attention: other terminals' alerts, packer stops and offline devices."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from agent.domain.events import Event
from agent.domain.plant import Attention
from tests.tui.fixtures import NOW
from tui import views
from tui.i18n import Words
from tui.views import Cell


def ev(terminal: str, seq: int, kind: str, **data: object) -> Event:
    return Event(terminal, "e", seq, kind, f"2026-11-29T01:00:{seq:02d}.000Z", seq, "b", data)


STOP = ev(
    "pk1",
    1,
    "packer.stopped",
    packer="line1",
    reason="jam",
    expected_repair_min=20,
    since="2026-11-29T01:00:01.000Z",
)


def test_stops_alerts_and_offline_devices_are_shown_until_they_end() -> None:
    a = Attention()
    assert a.add(
        [
            STOP,
            ev("gate1", 1, "alert.raised", alert="queue_long", detail="11 queue"),
            ev("wb1", 1, "device.offline", device="scale1", reason="no frames"),
            ev("wb1", 2, "weighing.abandoned", scale="scale1"),
        ]
    )
    assert a.snapshot() == {
        "alerts": [
            {
                "terminal": "gate1",
                "alert": "queue_long",
                "detail": "11 queue",
                "since": "2026-11-29T01:00:01.000Z",
            }
        ],
        "stopped": [
            {
                "terminal": "pk1",
                "packer": "line1",
                "reason": "jam",
                "expected_repair_min": 20,
                "since": "2026-11-29T01:00:01.000Z",
            }
        ],
        "offline": [
            {
                "terminal": "wb1",
                "device": "scale1",
                "reason": "no frames",
                "since": "2026-11-29T01:00:01.000Z",
            }
        ],
    }
    assert a.add(
        [
            ev("pk1", 2, "packer.started", packer="line1"),
            ev("gate1", 2, "alert.cleared", alert="queue_long"),
            ev("wb1", 3, "device.online", device="scale1"),
        ]
    )
    assert a.snapshot() == {"alerts": [], "stopped": [], "offline": []}


def test_the_drivers_board_shows_another_terminals_stop_with_its_repair_time() -> None:
    a = Attention()
    a.add([STOP])
    board = views.board({"plant": a.snapshot()}, NOW, Words("en"))
    assert [r.cells for r in board.stopped] == [
        (Cell("pk1 line1", "bad"), Cell("jam"), Cell(Words("en")("repair.min", n=20)))
    ]
    health = views.health({"plant": a.snapshot()}, ZoneInfo("Asia/Shanghai"), Words("en"))
    assert health.alerts == ()


def test_another_terminals_late_alerts_are_not_shown_twice() -> None:
    """Every terminal raises late.* itself from the plant timeline; a peer's copy is left out."""
    a = Attention()
    assert not a.add(
        [
            ev("gate1", 1, "alert.raised", alert="late.scale_wait.v1", detail="苏A1 waits"),
            ev("gate1", 2, "alert.cleared", alert="late.scale_wait.v1"),
        ]
    )
    assert a.snapshot() == {"alerts": [], "stopped": [], "offline": []}

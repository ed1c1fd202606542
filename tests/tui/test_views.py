"""The pure views: missing or malformed state renders as '—', never raises."""

from __future__ import annotations

import dataclasses
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.tui.fixtures import NOW
from tui import views
from tui.i18n import Words
from tui.views import Cell

SH = ZoneInfo("Asia/Shanghai")
W = Words("en")

JUNK: list[dict[str, Any]] = [
    {},
    {"visits": None, "kpi": [], "sync": "x", "health": 3, "alerts": None, "devices": []},
    {
        "scale.s": [],
        "packer.p": {"last15": 5, "stopped": "x", "running": "yes"},
        "visits": {
            "open": [1, None, {"flags": "x", "stage_since": "not a time"}],
            "scale_queue": "x",
        },
        "kpi": {"weigh_wait": 3, "flags": [], "day": None},
        "devices": {"d": None},
        "alerts": {"active": [None, {"since": 5}]},
        "sync": {"backlog": "many", "oldest_unsent_s": float("nan")},
        "health": {"uptime_s": "x", "clock_offset_ms": None},
        "replicas": {"peers": [None, 3, {"name": None, "lag_s": "x"}]},
    },
]


def texts(view: Any) -> list[str]:
    """Every text a view puts on screen; a cell holding anything but text fails the test."""
    if isinstance(view, Cell):
        assert isinstance(view.text, str) and isinstance(view.tone, str), view
        return [view.text]
    if isinstance(view, str):
        return [view]
    if isinstance(view, tuple):
        return [t for item in view for t in texts(item)]
    if dataclasses.is_dataclass(view):
        return [t for f in dataclasses.fields(view) for t in texts(getattr(view, f.name))]
    return []  # a view's own non-text field (the scale it shows may be None)


@pytest.mark.parametrize("states", JUNK)
def test_every_view_survives_bad_state(states: dict[str, Any]) -> None:
    shown = texts(
        (
            views.weighbridge(states, NOW, SH, W),
            views.loading(states, NOW, W),
            views.yard(states, NOW, W),
            views.today(states, W),
            views.health(states, SH, W),
            views.board(states, NOW, W),
        )
    )
    # malformed values show as '—', never as a Python repr of what was received
    leaked = [t for t in shown if any(r in t for r in ("None", "nan", "[", "{", "Decimal"))]
    assert leaked == []
    assert views.weighbridge(states, NOW, SH, W).weight == "—"


def test_an_offline_scale_shows_no_weight() -> None:
    v = views.weighbridge({"scale.s1": {"online": False, "weight": 41000}}, NOW, SH, W)
    assert (v.weight, v.tags) == ("—", (Cell("s1"), Cell("offline", "bad")))


def test_the_weight_alone_is_what_the_pane_shows_for_it() -> None:
    # a weight message redraws from scale_view only: it must match the whole pane's view
    states = {
        "scale.s1": {"online": True, "weight": 41000, "unit": "kg", "stable": True},
        "visits": {"scale_queue": [{"visit": "v1", "plate": "沪A1"}]},
    }
    whole, alone = views.weighbridge(states, NOW, SH, W), views.scale_view(states, SH, W)
    assert (whole.scale, whole.weight, whole.unit, whole.tags, whole.last) == (
        alone.scale,
        alone.weight,
        alone.unit,
        alone.tags,
        alone.last,
    )
    assert alone.weight == "41,000" and Cell("stable", "ok") in alone.tags


def test_waits_are_coloured_against_the_target() -> None:
    cells = [views.wait_cell(views.Decimal(m), views.Decimal(10)) for m in (3, 8, 11)]
    assert cells == [Cell("3/10", "ok"), Cell("8/10", "warn"), Cell("11/10", "bad")]


def test_a_running_wait_shows_the_time_left_or_over_its_target() -> None:
    w = Words("en")
    cells = [views.wait_cell(views.Decimal(m), views.Decimal(10), w) for m in (3, 8, 10, 11)]
    assert cells == [
        Cell("3/10 7 left", "ok"),
        Cell("8/10 2 left", "warn"),
        Cell("10/10 0 left", "warn"),
        Cell("11/10 1 over", "bad"),
    ]
    zh = Words("zh")
    assert views.wait_cell(views.Decimal(12), views.Decimal(10), zh) == Cell("12/10 超2", "bad")
    assert views.wait_cell(None, views.Decimal(10), w) == Cell("—", "dim")


def test_running_waits_turn_to_a_warning_at_the_configured_share() -> None:
    """The panes colour a wait from the daemon's warn_share on (its late.* warnings' share):
    at 0.5 of a 10-minute target, 4 minutes is ok and 5 a warning; without it, 80 %."""
    from datetime import timedelta

    def waiting(minutes: int) -> dict[str, Any]:
        since = (NOW - timedelta(minutes=minutes, seconds=30)).isoformat()
        return {
            "visit": f"v{minutes}",
            "plate": f"A{minutes}",
            "stage": "scale_queue",
            "stage_since": since,
        }

    queue = [waiting(m) for m in (4, 5, 7, 8)]
    for kpi, tones in [
        ({"weigh_wait": {"target_min": 10}, "warn_share": 0.5}, ["ok", "warn", "warn", "warn"]),
        ({"weigh_wait": {"target_min": 10}}, ["ok", "ok", "ok", "warn"]),
        ({"weigh_wait": {"target_min": 10}, "warn_share": "x"}, ["ok", "ok", "ok", "warn"]),
    ]:
        states = {"kpi": kpi, "visits": {"scale_queue": queue, "open": queue}}
        pane = views.weighbridge(states, NOW, SH, W).queue
        yard = views.yard(states, NOW, W).rows
        assert [r.cells[5].tone for r in pane] == tones
        assert [r.cells[5].tone for r in yard] == tones
    assert views.wait_cell(views.Decimal(5), views.Decimal(10), W, views.Decimal("0.5")) == Cell(
        "5/10 5 left", "warn"
    )


def test_formatters() -> None:
    assert [views.kg(43120), views.kg(None), views.pct(0.0125), views.fixed("x")] == [
        "43,120",
        "—",
        "1.3 %",
        "—",
    ]


def test_bag_scales_stay_off_the_weighbridge_and_their_progress_shows_on_loading() -> None:
    from tests.tui.fixtures import STATES

    assert views.scale_names(STATES) == ["scale1"]
    assert views.weighbridge(STATES, NOW, SH, W).scale == "scale1"
    rows = views.loading(STATES, NOW, W, SH).checks
    assert [r.key for r in rows] == ["line1:bag_weight", "line2:print_code", "line1:collecting"]
    assert rows[-1].cells == (
        Cell("line1"),
        Cell("bag weight"),
        Cell("scale bags1"),
        Cell("3/10"),
        Cell("weighing 50.31 kg", "warn"),
    )
    junk = {"checks": {"collecting": {"p": {"samples": 2, "samples_kg": "x"}, "q": None}}}
    assert [r.cells[3] for r in views.loading(junk, NOW, W).checks] == [Cell("2/—")]


def test_the_health_pane_shows_each_plant_source() -> None:
    peers = [
        {
            "name": "central",
            "state": "up to date",
            "lag_s": 0.2,
            "events_behind": 0,
            "last_contact": "2026-11-29T01:00:00.000Z",
        },
        {
            "name": "gate1",
            "state": "unreachable",
            "lag_s": 310.0,
            "events_behind": 4,
            "last_contact": None,
        },
    ]
    rows = [
        r
        for r in views.health({"replicas": {"peers": peers}}, SH, W).status
        if r.key.startswith("replica.")
    ]
    assert [r.cells for r in rows] == [
        (
            Cell("plant source central"),
            Cell("up to date, lag 0 s, 0 events behind, last contact 09:00"),
        ),
        (
            Cell("plant source gate1"),
            Cell("unreachable, lag 310 s, 4 events behind, last contact —", "bad"),
        ),
    ]


def test_the_today_pane_says_the_plan_or_that_none_was_entered() -> None:
    planned = {
        "basis": "plan",
        "planned_t": 80.0,
        "completed_t": 50.0,
        "value": 0.625,
        "by_product": {"P.O 42.5": {"planned_t": 60.0, "completed_t": 50.0}},
    }
    assert views.plan_text(planned, W) == "plan 80.0 t (P.O 42.5 50.0/60.0 t), loaded 50.0 t (63 %)"
    fallback = {"basis": "arrivals", "planned_t": 30.0, "completed_t": 0.5, "value": 0.0167}
    assert views.plan_text(fallback, Words("zh")) == (
        "今日未录入日计划：暂以袋装来车计划量 30.0 吨代替（按 p 录入）"
    )


def test_the_exception_board_tells_drivers_what_to_do_in_the_plants_words() -> None:
    from agent.config import BoardConfig

    board = BoardConfig(tare_fluctuation_zh="请到一号地磅房复核皮重。")
    states = {
        "scale.scale1": {"online": False},
        "alerts": {"active": [{"alert": "printer_offline", "detail": "gate is off"}]},
        "visits": {
            "open": [
                {"visit": "v1", "plate": "苏A12345", "flags": [{"check": "tare_fluctuation"}]},
                {"visit": "v2", "plate": "京B88888", "flags": [{"check": "new_check"}]},
                {"visit": "v3", "plate": "粤C1", "flags": []},
            ]
        },
    }

    def shown(language: str) -> list[list[str]]:
        w = Words(language)
        rows = views.exceptions(states, views.notice_texts(board, language), w)
        assert views.board(states, NOW, w, views.notice_texts(board, language)).notices == rows
        return [[c.text for c in r.cells] for r in rows]

    assert shown("zh") == [
        ["scale1", "地磅离线", board.scale_offline_zh],
        ["打印机", "磅单打印机离线", board.printer_offline_zh],
        ["苏A12345", "皮重波动", "请到一号地磅房复核皮重。"],
        ["京B88888", "new_check", "请到地磅房咨询"],
    ]
    assert shown("en")[2] == ["苏A12345", "tare fluctuation", board.tare_fluctuation_en]
    assert views.exceptions({}, views.notice_texts(board, "en"), Words("en")) == ()

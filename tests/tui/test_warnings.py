"""An accepted command's warnings (a stage recorded at a terminal that lacks another terminal's
fact) shown to the operator as warning notifications, in Chinese and in English."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets._toast import Toast

from agent.domain.events import Event
from agent.domain.visit_commands import CommandContext, command, lag_words
from agent.domain.visit_projection import Projection
from tests.tui.conftest import Plant, until
from tests.tui.fixtures import V4
from tests.tui.test_actions import fill, make, ready, status
from tui.i18n import Words, lag_text, warning

LAG = (
    {"source": "gate1", "state": "unreachable", "silent_s": 95},
    {"source": "central", "state": "catching up", "lag_s": 2.5, "events_behind": 14},
)


def pk1_answer() -> dict[str, Any]:
    """What pk1's daemon answers to a loading start of V4's truck, whose arrival reached it
    but not its gate-in: the real command, its warning in words and as a code."""
    p = Projection(own="pk1")
    arrived = {"visit": V4["visit"], "plate": V4["plate"], "order": V4["order"]}
    p.apply(Event("gate1", "e", 1, "visit.arrived", "2026-11-29T02:00:00.000Z", 1, "b", arrived))
    ctx = CommandContext(plant=True, lag=lag_words(LAG), lag_sources=LAG)
    assert command(p, "visit.loading_start", {"visit": V4["visit"], "point": "line2"}, ctx)
    return {
        "visit": V4["visit"],
        "warnings": ctx.warnings,
        "warning_codes": ctx.warning_codes,
    }


def toasts(app: Any) -> list[tuple[bool, str]]:
    """The notifications on screen: (shown as a warning, text)."""
    return [(t.has_class("-warning"), str(t.render())) for t in app.screen.query(Toast)]


EN = (
    "Recorded, but\nno gate-in of 皖D22222 (visit 0190a000-0000-7000-8000-000000000004) has"
    " reached this terminal yet; recorded all the same (lag: gate1 unreachable, last contact"
    " 95 s ago; central 2.5 s and 14 events behind)"
)
ZH = (
    "提醒：已记录\n皖D22222（车次 0190a000-0000-7000-8000-000000000004）的进厂放行尚未传到本机；"
    "已照常记录（数据延迟：gate1 连不上，最近联系在 95 秒前；central 落后 2.5 秒、14 条事件）"
)


@pytest.mark.parametrize(("language", "shown"), [("en", EN), ("zh", ZH)])
async def test_a_warning_of_the_answer_is_notified(plant: Plant, language: str, shown: str) -> None:
    answer = pk1_answer()
    # `tally ctl` prints the sentence; the English notification says exactly the same.
    assert answer["warnings"] == [EN.split("\n", 1)[1]]
    plant.answers["visit.loading_start"] = answer
    app = make(plant, language)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "ctrl+home", "down", "down", "down", "l")
        await fill(app, pilot, {"point": "line2"})
        await until(pilot, lambda: bool(toasts(app)))
        assert plant.requests == [("visit.loading_start", {"visit": V4["visit"], "point": "line2"})]
        assert status(app).startswith("✓")
        assert toasts(app) == [(True, shown)]


async def test_an_answer_without_warnings_notifies_nothing(plant: Plant) -> None:
    app = make(plant)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "ctrl+home", "down", "down", "down", "l")
        await fill(app, pilot, {"point": "line2"})
        await until(pilot, lambda: status(app).startswith("✓"))
        await pilot.pause()
        assert toasts(app) == []


def test_each_warning_code_in_both_languages() -> None:
    zh, en = Words("zh"), Words("en")
    p = Projection(own="pk1")
    ctx = CommandContext(plant=True, lag=lag_words(()))
    req = {"plate": "苏A12345", "order": "SO7", "point": "line1"}
    command(p, "visit.loading_start", req, ctx)
    (code,) = ctx.warning_codes
    assert code == {
        "code": "pending_stage",
        "params": {"plate": "苏A12345", "order": "SO7", "lag": []},
    }
    assert (
        warning(en, code, "?")
        == ctx.warnings[0]
        == (
            "no arrival of 苏A12345 for order SO7 has reached this terminal; recorded by plate and"
            " order, the stage joins the visit when its arrival does (every source up to date)"
        )
    )
    assert warning(zh, code, "?") == (
        "苏A12345 订单 SO7 的到厂登记尚未传到本机；已按车牌和订单记录，到厂登记传到后自动归入该车次"
        "（各数据源均已同步）"
    )
    # A source never reached, in both languages as in `lag_words`.
    never = [{"source": "wb1", "state": "starting", "contact": False}]
    assert f"lag: {lag_text(en, never).removeprefix('lag: ')}" == lag_words(never)
    assert lag_text(zh, never) == "数据延迟：wb1 启动中，尚未联系上"
    assert lag_text(en, list(LAG)) == lag_words(LAG)
    # A code this UI does not know (a newer daemon), or none: the daemon's sentence.
    assert warning(zh, {"code": "newer", "params": {}}, "the sentence") == "the sentence"
    assert warning(zh, None, "the sentence") == "the sentence"
    assert warning(zh, {"code": "no_gate_in", "params": {"plate": "x"}}, "s") == "s"

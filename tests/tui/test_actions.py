"""Every operator action through the real local API, refusals, and a daemon that comes and goes."""

from __future__ import annotations

import copy
from typing import Any
from zoneinfo import ZoneInfo

from textual.widgets import Input, OptionList, Static

from tests.tui.conftest import Plant, until
from tests.tui.fixtures import STATES, V1, V2, V3, V4, frozen
from tui.app import TallyApp

SH = ZoneInfo("Asia/Shanghai")


def make(plant: Plant, language: str = "en") -> TallyApp:
    return TallyApp(plant.socket, language, tz=SH, terminal="wb1", clock=frozen)


def status(app: TallyApp) -> str:
    return str(app.query_one("#status", Static).content)


async def ready(app: TallyApp, pilot: Any) -> None:
    await until(
        pilot, lambda: app.connected and "visits" in app.states and "packer.line2" in app.states
    )
    await pilot.pause()


async def fill(app: TallyApp, pilot: Any, values: dict[str, str]) -> None:
    await until(pilot, lambda: bool(app.screen.query("#form")))
    for name, value in values.items():
        app.screen.query_one(f"#f-{name}", Input).value = value
    await pilot.click("#form-ok")


async def test_register_an_arrival(plant: Plant) -> None:
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("a")
        await fill(
            app,
            pilot,
            {"plate": "苏A54321", "order": "SO9", "product": "P.O 42.5", "planned_kg": "32000"},
        )
        await until(pilot, lambda: plant.requests)
        assert plant.requests == [
            (
                "visit.arrive",
                {
                    "plate": "苏A54321",
                    "order": "SO9",
                    "product": "P.O 42.5",
                    "load": "bagged",
                    "planned_kg": 32000,
                },
            )
        ]
        await until(pilot, lambda: status(app) == "✓ visit.arrive 苏A54321")


async def test_a_form_with_a_missing_field_sends_nothing(plant: Plant) -> None:
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("a")
        await fill(app, pilot, {"plate": "苏A54321"})
        problem = app.screen.query_one("#form-problem", Static)
        assert str(problem.content) == "Please fill in: order"
        await pilot.press("escape")
        await pilot.pause()
        assert plant.requests == []


async def test_tare_and_gross_go_to_the_selected_truck(plant: Plant) -> None:
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("t")
        await until(pilot, lambda: len(plant.requests) == 1)
        await pilot.press("down", "g")
        await until(pilot, lambda: len(plant.requests) == 2)
        assert plant.requests == [
            ("visit.weigh", {"visit": V1["visit"], "role": "tare"}),
            ("visit.weigh", {"visit": V2["visit"], "role": "gross"}),
        ]


async def test_mark_the_scale_queue_from_the_weighbridge(plant: Plant) -> None:
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("q")
        await until(pilot, lambda: bool(app.screen.query(OptionList)))
        options = app.screen.query_one(OptionList)
        assert [options.get_option_at_index(i).id for i in range(options.option_count)] == [
            V3["visit"],
            V4["visit"],
        ]
        await pilot.press("down", "enter")
        await until(pilot, lambda: plant.requests)
        assert plant.requests == [("visit.queue", {"visit": V4["visit"]})]


YARD = [
    # (key, rows down, form values, expected request)
    ("i", 3, None, ("visit.gate_in", {"visit": V4["visit"]})),
    ("q", 3, None, ("visit.queue", {"visit": V4["visit"]})),
    ("l", 3, {"point": "line2"}, ("visit.loading_start", {"visit": V4["visit"], "point": "line2"})),
    ("f", 2, {"bags": "600"}, ("visit.loading_finish", {"visit": V3["visit"], "bags": 600})),
    ("f", 1, {}, ("visit.loading_finish", {"visit": V2["visit"]})),
    ("s", 1, {"seals": "S1, S2"}, ("visit.seal", {"visit": V2["visit"], "seals": ["S1", "S2"]})),
    ("x", 1, None, ("visit.exit", {"visit": V2["visit"]})),
    (
        "c",
        0,
        {"reason": "wrong order"},
        ("visit.cancel", {"visit": V1["visit"], "reason": "wrong order"}),
    ),
]


async def test_yard_actions(plant: Plant) -> None:
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3")
        for n, (key, down, form, expected) in enumerate(YARD, 1):
            await pilot.press("ctrl+home", *["down"] * down, key)
            if form is not None:
                await fill(app, pilot, form)
            await until(pilot, lambda n=n: len(plant.requests) == n)
            assert plant.requests[-1] == expected, key


async def test_a_sealed_bulk_truck_leaves_with_the_seals_the_gate_sees(plant: Plant) -> None:
    visits = copy.deepcopy(STATES["visits"])
    for v in visits["open"]:
        if v["visit"] == V2["visit"]:
            v["seals"] = ["S1", "S2"]
    plant.hub.publish("visits", visits)
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("3", "ctrl+home", "down", "x")
        await fill(app, pilot, {"seals_seen": "S2 S1"})
        await until(pilot, lambda: plant.requests)
        assert plant.requests == [
            ("visit.exit", {"visit": V2["visit"], "seals_seen": ["S2", "S1"]})
        ]


async def test_packer_stop_reason(plant: Plant) -> None:
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("f2", "down", "r")
        await fill(app, pilot, {"reason": "belt torn", "expected_repair_min": "45"})
        await until(pilot, lambda: plant.requests)
        assert plant.requests == [
            ("packer.reason", {"packer": "line2", "reason": "belt torn", "expected_repair_min": 45})
        ]


async def test_spot_checks_from_the_loading_pane(plant: Plant) -> None:
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("f2", "down", "b")
        await fill(app, pilot, {"kg": "50.1, 49.9 50.0"})
        await until(pilot, lambda: plant.requests)
        await pilot.press("p")
        await fill(app, pilot, {"note": "clear"})
        await until(pilot, lambda: len(plant.requests) == 2)
        assert plant.requests == [
            (
                "check.bag_weight",
                {"packer": "line2", "samples_kg": [50.1, 49.9, 50.0], "by": "crew"},
            ),
            (
                "check.print_code",
                {"packer": "line2", "result": "pass", "note": "clear", "by": "crew"},
            ),
        ]


async def test_the_window_key_serves_a_ticket_or_registers_an_arrival(plant: Plant) -> None:
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("w")
        await until(pilot, lambda: bool(app.screen.query(OptionList)))
        options = app.screen.query_one(OptionList)
        assert [options.get_option_at_index(i).id for i in range(options.option_count)] == [
            "",
            "sales-0007",
        ]
        await pilot.press("down", "enter")
        await until(pilot, lambda: plant.requests)
        await pilot.press("w")
        await until(pilot, lambda: bool(app.screen.query(OptionList)))
        await pilot.press("enter")
        await fill(app, pilot, {"window": "finance"})
        await until(pilot, lambda: len(plant.requests) == 2)
        assert plant.requests == [
            ("window.serve", {"ticket": "sales-0007"}),
            ("window.arrive", {"window": "finance", "service": "plan_order"}),
        ]


async def test_a_refusal_shows_the_daemons_sentence(plant: Plant) -> None:
    plant.refuse["visit.weigh"] = "no captured weighing is waiting; weigh the truck first"
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        await pilot.press("t")
        await until(pilot, lambda: status(app).startswith("✗"))
        assert status(app) == "✗ no captured weighing is waiting; weigh the truck first"


async def test_the_daemon_goes_away_and_comes_back(plant: Plant) -> None:
    app = make(plant)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        assert app.query_one("#banner").display is False
        await plant.stop()
        await until(pilot, lambda: not app.connected)
        banner = app.query_one("#banner", Static)
        assert banner.display is True
        assert (
            str(banner.content)
            == f"The Tally daemon is not running ({plant.socket}); retrying every 1.5 s."
        )
        assert app.states == {}
        assert app.query_one("#weight").value == "—"  # type: ignore[attr-defined]
        await pilot.press("t")
        assert status(app) == "✗ The daemon is not running; nothing was sent."
        assert plant.requests == []
        await plant.start()
        await ready(app, pilot)
        assert banner.display is False
        await pilot.press("t")
        await until(pilot, lambda: plant.requests)
        assert plant.requests == [("visit.weigh", {"visit": V1["visit"], "role": "tare"})]


async def test_without_a_daemon_it_says_so(tmp_path: Any) -> None:
    app = TallyApp(str(tmp_path / "none.sock"), "zh", tz=SH, clock=frozen)
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.query_one("#banner", Static)
        await until(pilot, lambda: "未运行" in str(banner.content))
        assert banner.display is True

"""Every operator form of the TUI against the real daemon, read back through `tally ctl`/`events`.

The Pilot drives `TallyApp` connected to `tally run`'s socket; the weighbridge is an indicator
on a pseudo-terminal whose weight the test puts on and takes off, the packer a pymodbus server
on loopback. Nothing is scripted on the daemon's side: a field renamed between a form and the
daemon's operation fails here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static

from drivers.scale import encode
from tests.daemon import Daemon, tally, write_config
from tests.drivers.fake_escpos import FakeEscposPrinter
from tests.drivers.modbus_server import ThreadedServer
from tests.e2e.test_packer_restart import BAGS, RUNNING, packer_toml
from tui import forms
from tui.app import TallyApp
from tui.widgets import RowTable

DEADLINE_S = 30.0  # generous: the machine may be loaded; nothing here measures speed
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")
AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Like:
    """Equal to any string matching `pattern` (ids and times the daemon makes)."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(self.pattern.fullmatch(other))

    def __repr__(self) -> str:
        return f"Like({self.pattern.pattern!r})"


class Minutes:
    """Equal to any duration in minutes the daemon measured (a number, not negative)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int | float) and not isinstance(other, bool) and other >= 0

    def __repr__(self) -> str:
        return "Minutes()"


ID, STAMP, MIN = Like(UUID), Like(AT), Minutes()
WAITS = ("tare_wait", "gross_wait", "bag_load_wait", "loading", "seal_lag", "turnaround")


class Indicator:
    """A weighbridge indicator on a pseudo-terminal showing `kg`, which the test sets.

    It sends a frame every 1/rate s whether or not the daemon reads, as a real indicator does:
    a daemon kept waiting by a loaded machine reads what the port kept meanwhile all at once.
    When the port's buffer is full the frame is lost, as in a serial port's overrun.
    """

    def __init__(self, rate: float = 20.0) -> None:
        self.kg = 0
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, args=(1 / rate,), daemon=True)
        self._thread.start()

    def _send(self, every: float) -> None:
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            with contextlib.suppress(BlockingIOError):
                os.write(self.master, encode("xk3190", Decimal(self.kg)))
            due = max(due + every, time.monotonic() - 1.0)

    def close(self) -> None:
        """Stop sending and close the pseudo-terminal."""
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)


@dataclass
class Plant:
    """The real daemon with a weighbridge the test loads by hand and a stopped packer."""

    config: Path
    daemon: Daemon
    scale: Indicator
    printer: FakeEscposPrinter

    def ctl(self, *args: str) -> Any:
        """`tally ctl --config F --json ARGS` (must succeed)."""
        r = tally("ctl", "--config", str(self.config), "--json", *args)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def visit(self, visit: str) -> dict[str, Any]:
        """One visit as `tally ctl visits --visit ID` shows it."""
        return dict(self.ctl("visits", "--visit", visit))

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The payloads of the stored events of `kind`, as `tally events` lists them."""
        r = tally("events", "--config", str(self.config), "--kind", kind, "--json")
        assert r.returncode == 0, r.stderr
        return [json.loads(line)["data"] for line in r.stdout.splitlines()]


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    """One daemon for every test here: each test works on its own trucks, windows or packer."""
    folder = tmp_path_factory.mktemp("tui-actions")
    scale = Indicator()
    printer = FakeEscposPrinter()
    printer.start()
    server = ThreadedServer().start()
    server.set(1, RUNNING, False)
    server.set(1, BAGS, 100)
    packer = packer_toml(server.server.port).replace(
        "tally_s = 1", "tally_s = 60\nstop_after_s = 1"
    )
    config = write_config(
        folder,
        f'[[scale]]\nname = "scale1"\nport = "{scale.path}"\nprotocol = "xk3190"\n'
        "hold_s = 0.5\nmin_samples = 3\nclear_s = 0.3\n" + packer + "\n"
        '[tickets]\nprinter = "gate"\nauto_print = false\nretry_s = 0.5\n\n'
        f'[[printer]]\nname = "gate"\nkind = "escpos"\ndevice = "{printer.device}"\n'
        # a stop is never a handover stop here, whatever the time of day
        "\n[checks]\nhandover_window_min = 0\n",
    )
    try:
        with Daemon(config) as d:
            yield Plant(config, d, scale, printer)
    finally:
        printer.stop()
        server.close()
        scale.close()


# --- driving the app -----------------------------------------------------------------------------


def make(plant: Plant) -> TallyApp:
    return TallyApp(plant.daemon.socket, "en", tz=ZoneInfo("Asia/Shanghai"), terminal="wb1")


async def until(
    pilot: Pilot[Any],
    predicate: Callable[[], Any],
    what: str,
    detail: Callable[[], str] = lambda: "",
) -> Any:
    """Let the app run until `predicate()` is truthy; fail naming `what` (and `detail()`, what
    was seen instead) after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not (value := predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}\n{detail()}".rstrip())
        await pilot.pause(0.05)
    return value


def status(app: TallyApp) -> str:
    return str(app.query_one("#status", Static).content)


async def ready(app: TallyApp, pilot: Pilot[Any]) -> None:
    await until(pilot, lambda: app.connected and "visits" in app.states, "connected")
    await pilot.pause()


async def answered(app: TallyApp, pilot: Pilot[Any], what: str) -> None:
    """The daemon accepted the command: the status line says so (a refusal fails at once)."""
    await until(pilot, lambda: status(app).startswith(("✓", "✗")), f"an answer to {what}")
    assert status(app) == f"✓ {what}"
    app.query_one("#status", Static).update("")  # the next answer is told from this one


async def fill(app: TallyApp, pilot: Pilot[Any], values: dict[str, str]) -> None:
    """Type into the open form and press OK."""
    await until(pilot, lambda: bool(app.screen.query("#form-ok")), "the form")
    for name, value in values.items():
        app.screen.query_one(f"#f-{name}", Input).value = value
    await pilot.click("#form-ok")


async def pick(app: TallyApp, pilot: Pilot[Any], key: str) -> None:
    """Choose the item `key` of the open pick list."""
    await until(pilot, lambda: bool(app.screen.query(OptionList)), "the pick list")
    options = app.screen.query_one(OptionList)
    ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
    assert key in ids, ids
    await pilot.press(*["down"] * ids.index(key), "enter")


async def select(app: TallyApp, pilot: Pilot[Any], pane: str, key: str) -> None:
    """Show `pane` and put the cursor of its main table on the row `key`."""
    await pilot.press(str(("weighbridge", "loading", "yard", "today", "health").index(pane) + 1))
    rows = app.pane(pane).query(RowTable).first()

    def keys() -> list[str | None]:
        return [r.key for r in rows._shown or ()]

    await until(pilot, lambda: key in keys(), f"{key} on the {pane} pane")
    await pilot.press("ctrl+home", *["down"] * keys().index(key))
    assert rows.selected_key() == key


async def arrive(
    app: TallyApp, pilot: Pilot[Any], plate: str, order: str, load: str, planned_kg: int
) -> str:
    """Register an arrival through the form; return the new visit's id (from the live state)."""
    await pilot.press("3", "a")
    await until(pilot, lambda: bool(app.screen.query("#f-load")), "the arrival form")
    if load == "bulk":
        await pilot.click("#f-load")
        await pilot.press("down", "enter")
    await fill(
        app,
        pilot,
        {"plate": plate, "order": order, "product": "P.O 42.5", "planned_kg": str(planned_kg)},
    )
    await answered(app, pilot, f"visit.arrive {plate}")
    return str(
        await until(
            pilot,
            lambda: next(
                (v["visit"] for v in app.states["visits"]["queue"] if v["plate"] == plate), None
            ),
            f"{plate} at the gate",
        )
    )


async def weighing(app: TallyApp, pilot: Pilot[Any], plant: Plant, kg: int) -> str:
    """A truck of `kg` drives on and off the scale; return the weighing it left unassigned."""
    seen = {w["weighing"] for w in app.states["visits"]["unassigned"]}
    plant.scale.kg = kg

    def captured() -> str | None:
        return next(
            (
                w["weighing"]
                for w in app.states["visits"]["unassigned"]
                if w["weighing"] not in seen and w["weight_kg"] == kg
            ),
            None,
        )

    def seen_instead() -> str:
        # Tells a stale screen from a weighing the daemon matched by itself or never folded:
        # the daemon's own projection, and the stored captures and matches (the daemon's log
        # comes with every failed test, tests/conftest.py).
        held = plant.daemon.request("visits.list")
        queued = [(v["plate"], v["stage"]) for v in held.get("scale_queue", [])]
        return (
            f"the scale: {app.states.get('scale.scale1')}\n"
            f"unassigned on screen: {app.states['visits']['unassigned']}\n"
            f"unassigned in the daemon: {held.get('unassigned')}; scale queue: {queued}\n"
            f"stored captures: {plant.events('weighing.captured')[-2:]}\n"
            f"stored matches: {plant.events('visit.weighed')[-2:]}"
        )

    w = str(await until(pilot, captured, f"a weighing of {kg} kg", seen_instead))
    plant.scale.kg = 0
    await until(
        pilot, lambda: app.states["scale.scale1"]["state"] == "armed", "the deck empty again"
    )
    return w


# --- the tests -----------------------------------------------------------------------------------


def visit_value(**fields: Any) -> dict[str, Any]:
    """A closed visit as `tally ctl visits --visit` shows it: defaults, then `fields`."""
    return {
        "visit": ID,
        "order": "SO1",
        "product": "P.O 42.5",
        "load": "bagged",
        "planned_kg": 30000,
        "stage_since": STAMP,
        "arrived_at": STAMP,
        "gate_in_at": STAMP,
        "queued_at": None,
        "scale": None,
        "tare_kg": None,
        "gross_kg": None,
        "net_kg": None,
        "bags": None,
        "bag_kg": None,
        "point": None,
        "seals": [],
        "broken_bags": {"found": 0, "replaced": 0},
        "exit_reason": "",
        "cancel_reason": None,
        "flags": [],
        "counter": None,
        "counted_bags": None,
        "finish_suggested": False,
        "hint": None,
        **fields,
    }


async def test_a_bagged_truck_through_every_visit_form(plant: Plant) -> None:
    """Arrive, gate-in, queue, tare, loading start and finish, queue by pick, gross, seal, exit."""
    plate = "苏A12345"
    app = make(plant)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        vid = await arrive(app, pilot, plate, "SO1", "bagged", 30000)

        await select(app, pilot, "yard", vid)
        await pilot.press("i")
        await answered(app, pilot, f"visit.gate_in {plate}")

        tare_w = await weighing(app, pilot, plant, 15000)  # nobody queued: left unassigned
        await select(app, pilot, "yard", vid)
        await pilot.press("q")
        await answered(app, pilot, f"visit.queue {plate}")
        await select(app, pilot, "weighbridge", vid)
        await pilot.press("t")
        await answered(app, pilot, f"visit.weigh {plate}")

        await select(app, pilot, "yard", vid)
        await pilot.press("l")
        await fill(app, pilot, {})  # the first packer is the default point
        await answered(app, pilot, f"visit.loading_start {plate}")
        await select(app, pilot, "loading", "line1")  # the crew: the truck at their packer
        await pilot.press("d")
        await fill(app, pilot, {"found": "2", "replaced": "2"})
        await answered(app, pilot, f"visit.broken_bags {plate}")
        await select(app, pilot, "yard", vid)
        await pilot.press("f")
        await fill(app, pilot, {"bags": "600"})
        await answered(app, pilot, f"visit.loading_finish {plate}")

        gross_w = await weighing(app, pilot, plant, 45000)
        await pilot.press("1", "q")
        await pick(app, pilot, vid)
        await answered(app, pilot, f"visit.queue {plate}")
        await select(app, pilot, "weighbridge", vid)
        await pilot.press("g")
        await answered(app, pilot, f"visit.weigh {plate}")

        await select(app, pilot, "yard", vid)
        await pilot.press("s")
        await fill(app, pilot, {"seals": "S1, S2"})
        await answered(app, pilot, f"visit.seal {plate}")
        await pilot.press("x")  # a bagged truck leaves without showing its seals
        await answered(app, pilot, f"visit.exit {plate}")

    assert plant.visit(vid) == visit_value(
        visit=vid,
        plate=plate,
        stage="exited",
        tare_kg=15000,
        gross_kg=45000,
        net_kg=30000,
        bags=600,
        bag_kg=50,
        point="line1",
        seals=["S1", "S2"],
        broken_bags={"found": 2, "replaced": 2},
        waits={f"{name}_min": MIN for name in WAITS},
        counter={"packer": "line1", "from": 0, "planned_bags": 600},
    )
    weighed = [w for w in plant.events("visit.weighed") if w["visit"] == vid]
    assert weighed == [
        {"visit": vid, "weighing": tare_w, "role": "tare", "weight_kg": 15000},
        {"visit": vid, "weighing": gross_w, "role": "gross", "weight_kg": 45000},
    ]


async def test_a_bulk_truck_sealed_and_let_out_and_a_cancelled_one(plant: Plant) -> None:
    """The load choice, a typed loading point, loading without bags, seals seen at the exit."""
    app = make(plant)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        bulk = await arrive(app, pilot, "京B88888", "SO2", "bulk", 33000)
        other = await arrive(app, pilot, "粤BD12345", "SO3", "bagged", 20000)

        await select(app, pilot, "yard", other)
        await pilot.press("c")
        await fill(app, pilot, {"reason": "wrong order"})
        await answered(app, pilot, "visit.cancel 粤BD12345")

        await select(app, pilot, "yard", bulk)
        await pilot.press("i")
        await answered(app, pilot, "visit.gate_in 京B88888")
        await pilot.press("l")
        await fill(app, pilot, {"point": "bulk1"})
        await answered(app, pilot, "visit.loading_start 京B88888")
        await pilot.press("f")
        await fill(app, pilot, {})
        await answered(app, pilot, "visit.loading_finish 京B88888")
        await pilot.press("s")
        await fill(app, pilot, {"seals": "A1，A2"})
        await answered(app, pilot, "visit.seal 京B88888")
        await until(pilot, lambda: (app.selected_visit() or {}).get("seals"), "the seals in view")
        await pilot.press("x")
        await fill(app, pilot, {"seals_seen": "A2 A1"})
        await until(pilot, lambda: status(app).startswith("✗"), "the exit refused")
        assert status(app) == (
            f"✗ 京B88888 (visit {bulk}) has no gross weighing;"
            " put it right or give the gate's reason to let it out"
        )
        app.query_one("#status", Static).update("")  # the next answer is told from this one
        await pilot.press("X")  # the gate's checks: the seals it sees and its reason
        await fill(app, pilot, {"seals_seen": "A2 A1", "reason": "weighbridge closed"})
        await answered(app, pilot, "visit.exit 京B88888")

    assert plant.visit(bulk) == visit_value(
        visit=bulk,
        plate="京B88888",
        order="SO2",
        load="bulk",
        planned_kg=33000,
        stage="exited",
        point="bulk1",
        seals=["A1", "A2"],
        exit_reason="weighbridge closed",
        flags=[
            {
                "check": "exit_no_gross",
                "detail": "has no gross weighing; the gate's reason: weighbridge closed",
            }
        ],
        waits={
            "tare_wait_min": None,
            "gross_wait_min": None,
            "bag_load_wait_min": MIN,
            "loading_min": MIN,
            "seal_lag_min": MIN,
            "turnaround_min": MIN,
        },
    )
    assert plant.visit(other) == visit_value(
        visit=other,
        plate="粤BD12345",
        order="SO3",
        planned_kg=20000,
        stage="cancelled",
        gate_in_at=None,
        cancel_reason="wrong order",
        waits={f"{name}_min": None for name in WAITS},
    )
    exited = [e for e in plant.events("visit.exited") if e["visit"] == bulk]
    assert exited == [
        {
            "visit": bulk,
            "seals_seen": ["A2", "A1"],
            "reason": "weighbridge closed",
            "exit_checks": ["no_gross"],
        }
    ]


async def test_the_window_key_registers_and_serves(plant: Plant) -> None:
    """Someone new at a window (the service chosen from the list), then served by ticket."""
    app = make(plant)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("5", "w")
        await pick(app, pilot, "")
        await until(pilot, lambda: bool(app.screen.query("#f-service")), "the window form")
        await pilot.click("#f-service")
        await pilot.press("down", "down", "enter")  # the third service: transport letter
        await fill(app, pilot, {"window": "finance"})
        await answered(app, pilot, "window.arrive finance")
        await until(pilot, lambda: app.states.get("windows", {}).get("open"), "a ticket waiting")
        await pilot.press("w")
        await pick(app, pilot, "finance-0001")
        await answered(app, pilot, "window.serve finance-0001")

    assert plant.events("window") == [
        {"window": "finance", "service": "transport_letter", "ticket": "finance-0001"},
        {"window": "finance", "service": "transport_letter", "ticket": "finance-0001"},
    ]


async def test_the_loading_pane_forms_on_a_stopped_packer(plant: Plant) -> None:
    """Sign in, then the stop reason, a typed bag-weight check and the quality office's
    print-code check with a note, each carrying the operator signed in; then sign out."""
    app = make(plant)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await pilot.press("o")
        await fill(app, pilot, {"name": "0173", "post": "packing"})
        await answered(app, pilot, "operator.sign_in 0173")
        await until(
            pilot, lambda: app.states.get("operator", {}).get("operator") == "0173", "on duty"
        )
        await until(
            pilot,
            lambda: app.states.get("packer.line1", {}).get("stopped"),
            "line1 stopped",
        )
        await select(app, pilot, "loading", "line1")
        await pilot.press("r")
        await fill(app, pilot, {"reason": "belt torn", "expected_repair_min": "45"})
        await answered(app, pilot, "packer.reason line1")
        await pilot.press("b")
        await fill(app, pilot, {"kg": "50.1, 49.9；50.0 50.2 49.8 50.1 50.0 49.9 50.0 50.3"})
        await answered(app, pilot, "check.bag_weight line1")
        await pilot.press("p")
        await until(pilot, lambda: bool(app.screen.query("#f-result")), "the print-code form")
        await pilot.click("#f-result")
        await pilot.press("down", "enter")  # fail
        await pilot.click("#f-by")
        await pilot.press("down", "enter")  # the quality office
        await fill(app, pilot, {"note": "code smudged"})
        await answered(app, pilot, "check.print_code line1")
        await pilot.press("u")
        await answered(app, pilot, "operator.sign_out 0173")

    assert plant.events("packer.stopped") == [
        {"packer": "line1", "reason": None, "expected_repair_min": None, "since": STAMP},
        {
            "packer": "line1",
            "reason": "belt torn",
            "expected_repair_min": 45,
            "since": STAMP,
            "operator": "0173",
        },
    ]
    samples = [50.1, 49.9, 50.0, 50.2, 49.8, 50.1, 50.0, 49.9, 50.0, 50.3]
    assert plant.events("check") == [
        {
            "packer": "line1",
            "samples_kg": samples,
            "mean_kg": 50.03,
            "bag_kg": 50,
            "result": "pass",
            "under": [],
            "over": [],
            "operator": "0173",
            "source": "typed",
            "by": "crew",
        },
        {
            "packer": "line1",
            "result": "fail",
            "note": "code smudged",
            "operator": "0173",
            "by": "qc",
        },
    ]
    signs = plant.events("operator.signed_in") + plant.events("operator.signed_out")
    assert signs == [{"operator": "0173", "post": "packing"}] * 2


async def test_the_days_plan_entered_on_the_today_pane(plant: Plant) -> None:
    """The plan form (the day in view by default), read back as the stored event and the report."""
    app = make(plant)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        day = await until(pilot, lambda: app.states.get("kpi", {}).get("day"), "a KPI report")
        await pilot.press("4", "p")
        await fill(app, pilot, {"tonnes": "120.5", "product": "P.O 42.5"})
        await answered(app, pilot, f"plan.set {day}")
        shown = app.query_one("#today-plan", Static)
        await until(pilot, lambda: "120.5 t" in str(shown.content), "the plan on the Today pane")
        assert str(shown.content).startswith("plan 120.5 t (P.O 42.5 ")

    assert [p for p in plant.events("plan.set") if p["day"] == day] == [
        {"day": day, "tonnes": "120.5", "product": "P.O 42.5", "operator": ""}
    ]
    report = json.loads(tally("kpi", "--config", str(plant.config), "--day", day, "--json").stdout)[
        "daily_completion"
    ]
    assert (report["basis"], report["planned_t"]) == ("plan", 120.5)


async def test_the_ticket_printed_and_reprinted_after_the_gross_weighing(plant: Plant) -> None:
    """p prints the ticket of the truck weighed last (first in the list), r a copy (副本)."""
    plate = "浙C54321"
    vid = plant.daemon.request(
        "visit.arrive", plate=plate, order="SO9", product="P.O 42.5", load="bulk", planned_kg=20000
    )["visit"]
    plant.daemon.request("visit.gate_in", visit=vid)
    app = make(plant)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        for role, kg in (("tare", 14000), ("gross", 34000)):
            w = await weighing(app, pilot, plant, kg)
            plant.daemon.request("visit.weigh", visit=vid, role=role, weighing=w)
        await until(
            pilot,
            lambda: [c[0] for c in forms.weighed_candidates(app.states, app.w)][:1] == [vid],
            f"{plate} weighed last",
        )
        await pilot.press("1", "p", "enter")  # the truck weighed last is the first choice
        await until(pilot, lambda: status(app).startswith(("✓", "✗")), "the print answer")
        number = status(app).split()[-1]
        assert status(app) == f"✓ ticket.print {plate} {number}"
        app.query_one("#status", Static).update("")
        await until(pilot, lambda: plant.events("ticket.printed"), "the ticket printed")
        await pilot.press("r", "enter")
        await answered(app, pilot, f"ticket.reprint {plate} {number}")

    r = tally("ticket", "--config", str(plant.config), "--json", "show", number)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert (shown["ticket"]["visit"], shown["ticket"]["net_kg"], shown["copies"]) == (vid, 20000, 1)
    printed = [(e["number"], e["copy"]) for e in plant.events("ticket.printed")]
    assert printed[0] == (number, 0)
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while len(plant.printer.jobs) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    assert len(plant.printer.jobs) == 2
    assert "副本".encode("gb18030") in plant.printer.jobs[1]
    assert "副本".encode("gb18030") not in plant.printer.jobs[0]

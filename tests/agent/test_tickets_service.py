"""The tickets service in process on a real store with a loopback ESC/POS printer: a ticket is
issued when the net is known, waits while the printer is off or out of paper, prints once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.config import (
    Config,
    KpiConfig,
    PrinterConfig,
    ScaleConfig,
    TerminalConfig,
    TicketsConfig,
)
from agent.daemon.alerts import Alerts
from agent.daemon.api import ApiServer, CommandError
from agent.daemon.hub import Hub
from agent.daemon.runtime import Context
from agent.daemon.services.tickets import TicketsService
from agent.daemon.services.visits import VisitsService
from agent.daemon.store import Store, Writer
from agent.domain.events import Event
from tests.drivers.fake_escpos import FakeEscposPrinter


@dataclass
class Rig:
    ctx: Context
    tickets: TicketsService
    printer: FakeEscposPrinter

    async def op(self, name: str, **req: Any) -> Any:
        return await self.ctx.api.ops[name](req)

    def events(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        return [(e.kind, e.data) for e in self.ctx.store.iter_events(prefix)]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    printer = FakeEscposPrinter()
    config = Config(
        terminal=TerminalConfig(id="wb1", database=str(tmp_path / "t.db"), socket="unused"),
        scales=(ScaleConfig(name="scale1", port="loop://"),),
        kpi=KpiConfig(),
        tickets=TicketsConfig(printer="gate", retry_s=0.5, company="示例水泥"),
        printers=(PrinterConfig(name="gate", kind="escpos", device=printer.device, columns=32),),
    )
    loop = asyncio.get_running_loop()
    writer = Writer(config.terminal.database, "wb1")
    store = Store(config.terminal.database)
    hub = Hub()

    def on_commit(events: list[Event]) -> None:
        loop.call_soon_threadsafe(hub.on_events, events)

    writer.listeners.append(on_commit)
    ctx = Context(
        config,
        writer,
        store,
        hub,
        ApiServer("unused", hub),
        Alerts(writer, hub, store),
        asyncio.Event(),
    )
    services = [VisitsService(ctx), TicketsService(ctx)]
    tasks = [asyncio.create_task(s.run()) for s in services]
    try:
        yield Rig(ctx, services[1], printer)  # type: ignore[arg-type]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        printer.stop()
        writer.close()
        store.close()


async def until(predicate: Any, timeout: float = 10) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := predicate()):
            await asyncio.sleep(0.02)
    return value


async def weigh(rig: Rig, plate: str, weighing: str, kg: int) -> None:
    """The scale captures `kg` while `plate` waits in the scale queue (matched by itself)."""
    await rig.op("visit.queue", plate=plate)
    await rig.ctx.writer.append(
        "weighing.captured", {"weighing": weighing, "scale": "scale1", "weight_kg": kg}
    )
    await until(lambda: weighing in rig.tickets.proj.assigned)


async def test_ticket_waits_for_the_printer_and_prints_once(rig: Rig) -> None:
    a = await rig.op(
        "visit.arrive",
        plate="苏A12345",
        order="SO1",
        product="P.O 42.5",
        load="bulk",
        planned_kg=40000,
    )
    await rig.op("visit.gate_in", plate="苏A12345")
    await weigh(rig, "苏A12345", "w-tare", 15000)
    await weigh(rig, "苏A12345", "w-gross", 45000)  # net 30000 < 90 % of 40000: flagged

    issued = await until(lambda: rig.events("ticket.issued"))
    number = issued[0][1]["number"]
    assert number.startswith("wb1-") and number.endswith("-0001")
    assert {
        k: issued[0][1][k]
        for k in ("visit", "weighing", "tare_kg", "gross_kg", "net_kg", "flags", "print")
    } == {
        "visit": a["visit"],
        "weighing": "w-gross",
        "tare_kg": 15000,
        "gross_kg": 45000,
        "net_kg": 30000,
        "flags": ["underloaded"],
        "print": True,
    }
    # The printer is off: an alert, nothing printed, the ticket waits.
    alert = await until(lambda: rig.ctx.alerts.active.get("printer_offline"))
    assert "the printer gate at tcp://127.0.0.1:" in alert["detail"]
    assert rig.events("ticket.printed") == []
    with pytest.raises(CommandError, match="has not printed yet"):
        await rig.op("ticket.reprint", number=number)

    # Switched on but out of paper: still waiting, the alert says so.
    rig.printer.paper_out = True
    rig.printer.start()
    await until(lambda: "out of paper" in rig.ctx.alerts.active["printer_offline"]["detail"])
    assert rig.printer.jobs == [] and rig.events("ticket.printed") == []

    rig.printer.paper_out = False
    await until(lambda: rig.events("ticket.printed"))
    await until(lambda: "printer_offline" not in rig.ctx.alerts.active)
    await asyncio.sleep(1.5)  # three retry intervals: nothing prints twice
    assert len(rig.printer.jobs) == 1
    assert "苏A12345".encode("gb18030") in rig.printer.jobs[0]
    assert "低于验证量90%".encode("gb18030") in rig.printer.jobs[0]
    assert "副本".encode("gb18030") not in rig.printer.jobs[0]
    assert [d["number"] for _, d in rig.events("ticket.printed")] == [number]

    # Printing it again is refused; a reprint is a copy marked 副本.
    with pytest.raises(
        CommandError, match=f"ticket {number} has been printed; `tally ticket reprint"
    ):
        await rig.op("ticket.print", visit=a["visit"])
    status = await rig.op("ticket.reprint", visit=a["visit"], operator="李")
    assert (status["ticket"]["number"], status["copies"]) == (number, 1)
    await until(lambda: len(rig.printer.jobs) == 2)
    assert "【副本】".encode("gb18030") in rig.printer.jobs[1]
    assert [(d["number"], d["copy"], d["operator"]) for _, d in rig.events("ticket.reprinted")] == [
        (number, 1, "李")
    ]


async def test_numbers_count_per_day_and_a_single_weighing_prints_on_demand(rig: Rig) -> None:
    # The printer stays off until the repeated request is checked: once it prints, asking again
    # is refused (a reprint is a copy), which the first test covers.
    for w, kg in (("w1", 16000), ("w2", 17000), ("w3", 18000)):
        await rig.ctx.writer.append(
            "weighing.captured", {"weighing": w, "scale": "scale1", "weight_kg": kg}
        )
    await until(lambda: "w3" in rig.tickets.proj.unassigned)
    assert rig.events("ticket.issued") == []  # no visit, no net: nothing by itself
    numbers = [(await rig.op("ticket.print", weighing=w))["ticket"]["number"] for w in ("w2", "w1")]
    again = await rig.op("ticket.print", weighing="w2")
    assert again["ticket"]["number"] == numbers[0]  # asked again before printing: the same one
    assert [n[-4:] for n in numbers] == ["0001", "0002"]
    assert len(rig.events("ticket.issued")) == 2  # asking again issued nothing more
    assert rig.events("ticket.print_requested") == []
    rig.printer.start()
    await until(lambda: len(rig.events("ticket.printed")) == 2)
    assert len(rig.printer.jobs) == 2
    shown = await rig.op("ticket.show")
    assert [
        (s["ticket"]["weighing"], s["ticket"]["weight_kg"], len(s["prints"]))
        for s in shown["tickets"]
    ] == [
        ("w2", 17000, 1),
        ("w1", 16000, 1),
    ]
    with pytest.raises(CommandError, match=r"there is no weighing nope; see visits\.list"):
        await rig.op("ticket.print", weighing="nope")
    with pytest.raises(
        CommandError, match="there is no ticket wb1-1; `tally ticket show` lists them"
    ):
        await rig.op("ticket.show", number="wb1-1")


async def test_ticket_ledger(rig: Rig) -> None:
    from datetime import date
    from zoneinfo import ZoneInfo

    from agent.domain import ledgers

    rig.printer.start()
    await rig.ctx.writer.append(
        "weighing.captured", {"weighing": "w1", "scale": "scale1", "weight_kg": 16000}
    )
    await until(lambda: "w1" in rig.tickets.proj.unassigned)
    status = await rig.op("ticket.print", weighing="w1", operator="王")
    await until(lambda: rig.events("ticket.printed"))
    await rig.op("ticket.reprint", number=status["ticket"]["number"])
    await until(lambda: len(rig.events("ticket.printed")) == 2)
    t = status["ticket"]
    rows = ledgers.build(
        "tickets",
        rig.ctx.store.iter_events(),
        date.fromisoformat(t["day"]),
        ZoneInfo("Asia/Shanghai"),
    )
    issued = ledgers._local_at(t["issued_at"], ZoneInfo("Asia/Shanghai"))
    assert ledgers.table("tickets", rows, "zh") == (
        list(ledgers.HEADINGS["tickets"]["zh"].values()),
        [[t["number"], issued, "", "", "", "", "", "", 16000, "", 2, 1, "王"]],
    )


async def test_a_ticket_the_book_forgot_is_read_back_and_never_issued_again(rig: Rig) -> None:
    # The book holds 2 tickets (KEEP_TICKETS in a plant); older ones stay in the store only.
    rig.tickets.book.keep = 2
    rig.printer.start()
    a = await rig.op(
        "visit.arrive", plate="苏A12345", order="SO1", product="P.O 42.5", load="bulk",
        planned_kg=30000,
    )  # fmt: skip
    await rig.op("visit.gate_in", plate="苏A12345")
    await weigh(rig, "苏A12345", "w-tare", 15000)
    await weigh(rig, "苏A12345", "w-gross", 45000)
    first = (await until(lambda: rig.events("ticket.issued")))[0][1]["number"]
    await until(lambda: len(rig.events("ticket.printed")) == 1)
    for n, kg in enumerate((16000, 17000, 18000), 1):
        await rig.ctx.writer.append(
            "weighing.captured", {"weighing": f"w{n}", "scale": "scale1", "weight_kg": kg}
        )
        await until(lambda n=n: f"w{n}" in rig.tickets.proj.unassigned)
        await rig.op("ticket.print", weighing=f"w{n}")
    await until(lambda: len(rig.events("ticket.printed")) == 4)
    await until(
        lambda: first not in rig.tickets.book.tickets and len(rig.tickets.book.tickets) == 2
    )

    # Asked for again, the forgotten tickets are found, not issued anew (the visit still open).
    with pytest.raises(CommandError, match=f"ticket {first} has been printed"):
        await rig.op("ticket.print", visit=a["visit"])
    w1 = rig.events("ticket.issued")[1][1]["number"]
    with pytest.raises(CommandError, match=f"ticket {w1} has been printed"):
        await rig.op("ticket.print", weighing="w1")
    assert len(rig.events("ticket.issued")) == 4
    shown = await rig.op("ticket.show", number=w1)
    assert (shown["ticket"]["weight_kg"], len(shown["prints"]), shown["copies"]) == (16000, 1, 0)
    # A copy of the visit's ticket is numbered as if it had never been forgotten.
    status = await rig.op("ticket.reprint", visit=a["visit"])
    assert (status["ticket"]["number"], status["copies"]) == (first, 1)
    await until(lambda: len(rig.printer.jobs) == 5)
    assert "【副本】".encode("gb18030") in rig.printer.jobs[4]
    # A later visit event wakes the issuing: the forgotten ticket's visit gets no second one.
    await rig.op("visit.exit", plate="苏A12345", reason="test: no seal")
    await asyncio.sleep(0.5)
    assert len(rig.events("ticket.issued")) == 4
    day = await rig.op("ticket.show")
    assert [s["ticket"]["serial"] for s in day["tickets"]] == [1, 2, 3, 4]
    assert [len(s["prints"]) for s in day["tickets"]] == [2, 1, 1, 1]


async def test_a_visit_the_service_no_longer_holds_finds_its_ticket(rig: Rig) -> None:
    # The service keeps few closed visits (KEEP_CLOSED_VISITS); a request naming an older one by
    # its id finds the visit's ticket in the book or the store instead of "there is no visit".
    rig.tickets.proj.keep_closed = 1
    rig.printer.start()
    visits = []
    for plate in ("苏A11111", "苏A22222", "苏A33333"):
        v = await rig.op(
            "visit.arrive", plate=plate, order="SO1", product="P.O 42.5", load="bulk",
            planned_kg=30000,
        )  # fmt: skip
        visits.append(v["visit"])
        await rig.op("visit.gate_in", plate=plate)
        await weigh(rig, plate, f"t-{plate}", 15000)
        await weigh(rig, plate, f"g-{plate}", 45000)
        await rig.op("visit.exit", plate=plate, reason="test: no seal")
    await until(lambda: len(rig.events("ticket.printed")) == 3)
    await until(lambda: visits[0] not in rig.tickets.proj.visits)
    first = rig.events("ticket.issued")[0][1]["number"]
    with pytest.raises(CommandError, match=f"ticket {first} has been printed"):
        await rig.op("ticket.print", visit=visits[0])
    # and once the book has forgotten it too, from the store
    rig.tickets.book.keep = 1
    await rig.op("ticket.reprint", visit=visits[2])
    await until(lambda: first not in rig.tickets.book.tickets)
    with pytest.raises(CommandError, match=f"ticket {first} has been printed"):
        await rig.op("ticket.print", visit=visits[0])
    status = await rig.op("ticket.reprint", visit=visits[0])
    assert (status["ticket"]["number"], status["copies"]) == (first, 1)
    with pytest.raises(CommandError, match="there is no visit nope"):
        await rig.op("ticket.print", visit="nope")
    assert len(rig.events("ticket.issued")) == 3

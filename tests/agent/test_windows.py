"""Service windows: pure KPI and validation, and an end-to-end run through `tally ctl`."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.config import KpiConfig
from agent.domain.events import Event
from agent.domain.kpis import compute
from agent.domain.window_services import WindowBook, WindowError
from tests.daemon import Daemon, tally

TZ = ZoneInfo("Asia/Shanghai")


def ev(seq: int, kind: str, at: str, mono_s: float, data: dict[str, object], **kw: str) -> Event:
    return Event(
        kw.get("terminal", "win1"),
        kw.get("epoch", "e1"),
        seq,
        kind,
        at,
        int(mono_s * 1e9),
        kw.get("boot", "b1"),
        data,
    )


def arrive(seq: int, at: str, mono: float, ticket: str, service: str, **kw: str) -> Event:
    return ev(
        seq,
        "window.arrived",
        at,
        mono,
        {"window": "sales", "service": service, "ticket": ticket},
        **kw,
    )


def served(seq: int, at: str, mono: float, ticket: str, service: str, **kw: str) -> Event:
    return ev(
        seq,
        "window.served",
        at,
        mono,
        {"window": "sales", "service": service, "ticket": ticket},
        **kw,
    )


def test_window_wait_per_service_on_the_plant_local_day() -> None:
    events = [
        # 4 min plan order, within 5 min
        arrive(1, "2026-11-29T01:00:00.000Z", 0, "t1", "plan_order"),
        served(2, "2026-11-29T01:04:00.000Z", 240, "t1", "plan_order"),
        # 7 min plan order: late
        arrive(3, "2026-11-29T02:00:00.000Z", 3600, "t2", "plan_order"),
        served(4, "2026-11-29T02:07:00.000Z", 4020, "t2", "plan_order"),
        # wall clock stepped +1 h between the two; monotonic says 9 min: within 10
        arrive(5, "2026-11-29T03:00:00.000Z", 7200, "t3", "transport_letter"),
        served(6, "2026-11-29T04:09:00.000Z", 7740, "t3", "transport_letter"),
        # served the next local day (Shanghai is UTC+8): not counted for 11-29
        arrive(7, "2026-11-29T15:50:00.000Z", 9000, "t4", "payment"),
        served(8, "2026-11-29T16:01:00.000Z", 9660, "t4", "payment"),
        # never served
        arrive(9, "2026-11-29T05:00:00.000Z", 10000, "t5", "no_letter"),
    ]
    assert compute(events, date(2026, 11, 29), TZ, KpiConfig())["window_wait"] == {
        "plan_order": {
            "count": 2,
            "within_target": 1,
            "share": 0.5,
            "max_min": 7.0,
            "target_min": 5.0,
            "met": False,
            "open": 0,
            "cancelled": 0,
        },
        "payment": {
            "count": 0,
            "within_target": 0,
            "share": None,
            "max_min": None,
            "target_min": 5.0,
            "met": None,
            "open": 0,
            "cancelled": 0,
        },
        "transport_letter": {
            "count": 1,
            "within_target": 1,
            "share": 1.0,
            "max_min": 9.0,
            "target_min": 10.0,
            "met": True,
            "open": 0,
            "cancelled": 0,
        },
        "no_letter": {
            "count": 0,
            "within_target": 0,
            "share": None,
            "max_min": None,
            "target_min": 10.0,
            "met": None,
            "open": 0,
            "cancelled": 0,
        },
    }


def test_tickets_from_two_terminals_do_not_mix_and_use_wall_time_across_boots() -> None:
    events = [
        arrive(1, "2026-11-29T01:00:00.000Z", 0, "t1", "payment", terminal="a"),
        arrive(1, "2026-11-29T01:01:00.000Z", 0, "t1", "payment", terminal="b"),
        served(2, "2026-11-29T01:03:00.000Z", 180, "t1", "payment", terminal="b"),
        served(2, "2026-11-29T01:10:00.000Z", 5, "t1", "payment", terminal="a", boot="b2"),
    ]
    report = compute(events, date(2026, 11, 29), TZ, KpiConfig())["window_wait"]
    assert report["payment"] == {
        "count": 2,
        "within_target": 1,
        "share": 0.5,
        "max_min": 10.0,
        "target_min": 5.0,
        "met": False,
        "open": 0,
        "cancelled": 0,
    }


def test_window_book_validates_commands() -> None:
    book = WindowBook()
    assert book.arrive("sales", "payment") == {
        "window": "sales",
        "service": "payment",
        "ticket": "sales-0001",
    }
    with pytest.raises(WindowError, match="is not a window service; use one of plan_order"):
        book.arrive("sales", "coffee")
    with pytest.raises(WindowError, match="is not a window name"):
        book.arrive("Sales Desk!", "payment")
    with pytest.raises(WindowError, match="nobody is waiting"):
        book.serve(window="sales")
    with pytest.raises(WindowError, match="is not waiting at any window"):
        book.serve(ticket="x")


def test_windows_end_to_end_through_ctl(daemon: Daemon, config_path: Path) -> None:
    c = str(config_path)
    r = tally("ctl", "--config", c, "window-arrive", "--window", "sales", "--service", "plan_order")
    assert r.returncode == 0, r.stderr
    ticket = json.loads(r.stdout)["ticket"]
    assert ticket == "sales-0001"
    r = tally(
        "ctl",
        "--config",
        c,
        "window-arrive",
        "--window",
        "sales",
        "--service",
        "plan_order",
        "--ticket",
        ticket,
    )
    assert (r.returncode, r.stderr) == (
        2,
        "tally: ticket sales-0001 is already waiting at the sales window\n",
    )
    r = tally("ctl", "--config", c, "window-serve", "--window", "sales")
    assert r.returncode == 0 and json.loads(r.stdout)["ticket"] == ticket
    r = tally("ctl", "--config", c, "window-serve", "--ticket", ticket)
    assert (r.returncode, r.stderr) == (
        2,
        "tally: ticket 'sales-0001' is not waiting at any window\n",
    )
    r = tally("events", "--config", c, "--kind", "window", "--json")
    kinds = [(json.loads(x)["kind"], json.loads(x)["data"]) for x in r.stdout.splitlines()]
    assert kinds == [
        ("window.arrived", {"window": "sales", "service": "plan_order", "ticket": ticket}),
        ("window.served", {"window": "sales", "service": "plan_order", "ticket": ticket}),
    ]


async def test_other_terminals_window_waits_raise_and_clear_late_alerts_here(
    tmp_path: Path,
) -> None:
    """The window service folds the other terminals' window events (held at start, replicated
    later) and the deadlines service raises and clears their late.* alerts on this terminal."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from agent.config import Config, TerminalConfig
    from agent.daemon.alerts import Alerts
    from agent.daemon.api import ApiServer
    from agent.daemon.foreign import ingest
    from agent.daemon.hub import Hub
    from agent.daemon.runtime import Context
    from agent.daemon.services.deadlines import Deadlines
    from agent.daemon.services.window_services import Windows
    from agent.daemon.store import Store, Writer

    t0 = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
    at = t0.isoformat().replace("+00:00", "Z")

    def sales(seq: int, kind: str, minutes: float, ticket: str) -> Event:
        when = (t0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", ".000Z")
        data: dict[str, object] = {"window": "sales", "service": "payment", "ticket": ticket}
        return ev(seq, kind, when, 60 * minutes, data, terminal="w2", epoch="e7")

    config = Config(terminal=TerminalConfig(id="wb1", database=str(tmp_path / "t.db"), socket="-"))
    writer = Writer(config.terminal.database, "wb1")
    own = (writer.terminal, writer.epoch)
    writer.call(ingest([sales(1, "window.arrived", 0, "s-1")], {}, own, "w2", at)).result()
    store, hub = Store(config.terminal.database), Hub()
    now = [t0 + timedelta(minutes=4)]
    ctx = Context(
        config, writer, store, hub, ApiServer("-", hub), Alerts(writer, hub, store), asyncio.Event()
    )
    try:
        Windows(ctx)
        late = Deadlines(ctx, lambda: [], clock=lambda: now[0])
        await late.evaluate()
        assert {k: v["level"] for k, v in ctx.alerts.active.items()} == {
            "late.window.w2.sales.s-1": "warning"
        }
        hub.on_foreign([sales(2, "window.arrived", 4, "s-2"), sales(3, "window.served", 4, "s-1")])
        now[0] = t0 + timedelta(minutes=9, milliseconds=1)  # just past s-2's 5 min target
        await late.evaluate()
        assert {k: v["level"] for k, v in ctx.alerts.active.items()} == {
            "late.window.w2.sales.s-2": "overdue"
        }
        cleared = [e.data for e in store.iter_events("alert.cleared")]
        assert cleared == [
            {"alert": "late.window.w2.sales.s-1", "detail": "ticket s-1 of w2: served"}
        ]
    finally:
        writer.close()
        store.close()

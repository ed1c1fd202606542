"""The visits service in process on a real store: matching, the loading counter, the queue alert."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import (
    Config,
    KpiConfig,
    PackerConfig,
    PeerConfig,
    ScaleConfig,
    TerminalConfig,
)
from agent.daemon.alerts import Alerts
from agent.daemon.api import ApiServer, CommandError
from agent.daemon.hub import Hub
from agent.daemon.runtime import Context
from agent.daemon.services.visits import VisitsService, rebuild_from
from agent.daemon.store import Store, Writer
from agent.domain.corrections import collect_corrections
from agent.domain.events import Event
from agent.domain.visit import fold_visits
from agent.domain.visit_projection import Projection


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[VisitsService]:
    config = Config(
        terminal=TerminalConfig(id="wb1", database=str(tmp_path / "t.db"), socket="unused"),
        scales=(ScaleConfig(name="scale1", port="loop://"),),
        packers=(PackerConfig(name="line1", bag_kg=50),),
        kpi=KpiConfig(queue_alert=1),
    )
    loop = asyncio.get_running_loop()
    writer = Writer(config.terminal.database, "wb1")
    store = Store(config.terminal.database)
    hub = Hub()

    def on_commit(events: list[Event]) -> None:
        loop.call_soon_threadsafe(hub.on_events, events)

    writer.listeners.append(on_commit)
    api = ApiServer("unused", hub)
    ctx = Context(config, writer, store, hub, api, Alerts(writer, hub, store), asyncio.Event())
    svc = VisitsService(ctx)
    task = asyncio.create_task(svc.run())
    try:
        yield svc
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        writer.close()
        store.close()


def context_on(config: Config, writer: Writer) -> Context:
    """A daemon's context on `writer`'s database, with a store and a hub of its own."""
    store = Store(config.terminal.database)
    hub = Hub()
    alerts = Alerts(writer, hub, store)
    return Context(config, writer, store, hub, ApiServer("unused", hub), alerts, asyncio.Event())


async def op(svc: VisitsService, name: str, **req: Any) -> Any:
    return await svc.ctx.api.ops[name](req)


async def until(predicate: Any, timeout: float = 5) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := predicate()):
            await asyncio.sleep(0.01)
    return value


def kinds(svc: VisitsService, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, e.data) for e in svc.ctx.store.iter_events(prefix)]


async def test_capture_matched_counter_and_alert(service: VisitsService) -> None:
    svc = service
    a = await op(
        svc,
        "visit.arrive",
        plate="苏A12345",
        order="SO1",
        product="P",
        load="bagged",
        planned_kg=1000,
    )
    await op(
        svc,
        "visit.arrive",
        plate="苏B12345",
        order="SO2",
        product="P",
        load="bulk",
        planned_kg=1000,
    )
    # Two at the gate: more than queue_alert = 1.
    await until(lambda: "queue_long" in svc.ctx.alerts.active)
    await op(svc, "visit.gate_in", visit=a["visit"])
    await until(lambda: "queue_long" not in svc.ctx.alerts.active)
    assert [k for k, _ in kinds(svc, "alert")] == ["alert.raised", "alert.cleared"]

    await op(svc, "visit.queue", plate="苏A12345")
    # The scale service appends a capture: the only queued visit gets it as its tare.
    await svc.ctx.writer.append(
        "weighing.captured",
        {"weighing": "w1", "scale": "scale1", "weight_kg": 15000, "mode": "gross"},
    )
    await until(lambda: svc.proj.visits[a["visit"]].tare_kg == 15000)
    assert svc.ctx.hub.get("visits")["open"][0]["tare_kg"] == 15000

    svc.ctx.hub.publish("packer.line1", {"name": "line1", "loaded": 500})
    v = await op(svc, "visit.loading_start", plate="苏A12345", point="line1")
    assert v["counter"] == {"packer": "line1", "from": 500, "planned_bags": 20}
    svc.ctx.hub.publish("packer.line1", {"name": "line1", "loaded": 520})
    published = svc.ctx.hub.get("visits")["open"][0]
    assert (published["counted_bags"], published["finish_suggested"], published["hint"]) == (
        20,
        True,
        "20 of 20 planned bags loaded on 苏A12345; finish loading",
    )
    v = await op(svc, "visit.loading_finish", plate="苏A12345")
    assert (v["bags"], v["bag_kg"], v["finish_suggested"]) == (20, 50, False)

    with pytest.raises(CommandError) as info:
        await op(svc, "visit.loading_finish", plate="苏A12345")
    assert str(info.value) == (
        f"苏A12345 (visit {a['visit']}) has already finished loading at line1"
    )
    result = await op(svc, "visits.rebuild")
    assert (result["matched"], result["visits"]) == (True, svc.proj.snapshot(live=False))
    fresh = rebuild_from(svc.ctx.store, svc.ctx.config)
    assert fresh.snapshot(live=False) == svc.proj.snapshot(live=False)
    report = await op(svc, "kpi.report")
    assert report["bag_load_wait"]["count"] == 1
    await until(
        lambda: (svc.ctx.hub.get("kpi") or {}).get("bag_load_wait") == report["bag_load_wait"]
    )


async def test_on_a_plant_a_stage_for_an_unknown_truck_is_recorded_with_the_lag(
    tmp_path: Path,
) -> None:
    """With [[peer]] sources, the service answers a stage by plate and order with a warning
    naming each source's lag, taken from the replicas topic."""
    config = Config(
        terminal=TerminalConfig(id="pk1", database=str(tmp_path / "t.db"), socket="unused"),
        peers=(
            PeerConfig(name="gate1", url="http://127.0.0.1:9", token_file="t"),
            PeerConfig(name="central", url="http://127.0.0.1:9", token_file="t"),
        ),
    )
    writer = Writer(config.terminal.database, "pk1")
    store = Store(config.terminal.database)
    hub = Hub()
    hub.publish(
        "replicas",
        {
            "peers": [
                {"name": "gate1", "state": "catching up", "last_contact": "2026-11-29T01:00:00.000Z",
                 "lag_s": 12.5, "events_behind": 40},
                {"name": "central", "state": "starting", "last_contact": None},
            ]
        },
    )  # fmt: skip
    api = ApiServer("unused", hub)
    svc = VisitsService(
        Context(config, writer, store, hub, api, Alerts(writer, hub, store), asyncio.Event())
    )
    try:
        answer = await op(svc, "visit.loading_start", plate="苏A12345", order="SO7", point="bulk1")
        lag = "lag: gate1 12.5 s and 40 events behind; central starting, no contact yet"
        assert (answer["visit"], answer["stage"], answer["warnings"]) == (
            "pending:苏A12345/SO7",
            "loading",
            [
                "no arrival of 苏A12345 for order SO7 has reached this terminal; recorded by"
                f" plate and order, the stage joins the visit when its arrival does ({lag})"
            ],
        )
        # The same warning as a code and its parameters, for the TUI to say in its language.
        assert answer["warning_codes"] == [
            {
                "code": "pending_stage",
                "params": {
                    "plate": "苏A12345",
                    "order": "SO7",
                    "lag": [
                        {"source": "gate1", "state": "catching up", "lag_s": 12.5,
                         "events_behind": 40},
                        {"source": "central", "state": "starting", "contact": False},
                    ],
                },
            }
        ]  # fmt: skip
        (ev,) = [e for e in store.iter_events() if e.kind == "visit.loading_started"]
        assert ev.data == {"plate": "苏A12345", "order": "SO7", "point": "bulk1"}
    finally:
        writer.close()
        store.close()


async def test_a_new_plant_day_drops_settled_visits_from_the_kpi_events(
    service: VisitsService,
) -> None:
    """The KPI events of a visit closed before yesterday leave memory when the plant day
    changes, not only at the hourly look (a soak, or a daemon started at 23:30, would keep
    them an hour into the new day)."""
    import dataclasses
    import time
    from datetime import UTC, datetime, timedelta

    from agent.daemon.services.visits import today
    from agent.domain.events import format_at
    from agent.domain.kinds import Kind

    svc = service
    v = await op(svc, "visit.arrive", plate="苏A12345", order="SO1", product="P.O 42.5",
                 load="bulk", planned_kg=30000)  # fmt: skip
    arrived = await until(
        lambda: next(
            (e for e in svc.kpi_events.values() if e.data.get("visit") == v["visit"]), None
        )
    )
    long_ago = format_at(datetime.now(UTC) - timedelta(days=3))
    # a truck that came and went three days ago (its visit is not open)
    mine = [
        dataclasses.replace(
            arrived, seq=arrived.seq + 1000 + i, kind=kind, at=long_ago,
            data={**arrived.data, "visit": "came-and-went"},
        )
        for i, kind in enumerate((Kind.VISIT_ARRIVED, Kind.VISIT_CANCELLED))
    ]  # fmt: skip
    for ev in mine:
        svc.kpi_events[ev.id] = ev
    svc.kpi_day = today(svc.tz) - timedelta(days=1)  # the report last made was yesterday's
    svc.pruned_at = time.monotonic()  # and the hourly look has just been
    await svc._refresh_kpi()
    assert not {ev.id for ev in mine} & set(svc.kpi_events)
    assert arrived.id in svc.kpi_events  # an open visit's events stay


async def test_an_event_of_a_visit_no_longer_in_memory_is_corrected_from_the_store(
    service: VisitsService,
) -> None:
    # the projection keeps the latest closed visits (KEEP_CLOSED); an older visit's events are
    # still in the store, and a correction of one is checked and recorded from there
    svc = service
    make = svc.timeline.make

    def keeping_one() -> Projection:
        p = make()
        p.keep_closed = 1
        return p

    svc.timeline.make = keeping_one
    svc.timeline.refold([])  # nothing is stored yet: start over keeping one closed visit
    trucks = {"苏A12345": "SO1", "苏B12345": "SO2"}
    visits = [
        (await op(svc, "visit.arrive", plate=p, order=o, product="P", load="bagged",
                  planned_kg=30_000))["visit"]
        for p, o in trucks.items()
    ]  # fmt: skip
    for v in visits:
        await op(svc, "visit.cancel", visit=v, reason="wrong gate")
    assert visits[0] not in svc.proj.visits and visits[1] in svc.proj.visits
    with pytest.raises(CommandError, match=r"in memory \(the daemon holds the open visits and"):
        await op(svc, "visits.list", visit=visits[0])
    assert (await op(svc, "visits.list", visit=visits[1]))["visit"] == visits[1]
    [arrival] = [
        e for e in svc.ctx.store.iter_events("visit.arrived") if e.data["visit"] == visits[0]
    ]
    req = {"target_event": arrival.id, "field": "planned_kg", "reason": "order amended"}
    req |= {"operator": "li"}
    recorded = {"target_event": arrival.id, "visit": visits[0], "field": "planned_kg"}
    recorded |= {"reason": "order amended", "operator": "li"}
    assert await op(svc, "visit.correct", **req, new=25_000) == {
        **recorded, "old": 30_000, "new": 25_000,
    }  # fmt: skip
    # the next correction starts from the last one, as every fold applies them
    assert await op(svc, "visit.correct", **req, new=24_000) == {
        **recorded, "old": 25_000, "new": 24_000,
    }  # fmt: skip
    with pytest.raises(CommandError, match=r"^planned_kg is already 24000; nothing to correct$"):
        await op(svc, "visit.correct", **req, new=24_000)
    events = list(svc.ctx.store.iter_events())
    assert fold_visits(events, collect_corrections(events))[visits[0]].planned_kg == 24_000
    # what is not stored, or not a visit event, is refused and nothing is appended
    before = svc.ctx.store.last_seq()
    with pytest.raises(CommandError, match=r"^there is no event wb1:x:99 in this terminal's"):
        await op(svc, "visit.correct", **{**req, "target_event": "wb1:x:99"}, new=1)
    captured = await svc.ctx.writer.append(
        "weighing.captured", {"weighing": "w1", "scale": "scale1", "weight_kg": 9, "mode": "gross"}
    )
    with pytest.raises(CommandError, match=r"^a weighing.captured event cannot be corrected$"):
        await op(svc, "visit.correct", **{**req, "target_event": captured.id}, new=1)
    assert svc.ctx.store.last_seq() == before + 1  # the capture alone


async def test_a_restart_reads_the_kpi_window_as_the_hourly_look_would_leave_it(
    tmp_path: Path,
) -> None:
    """At start the service reads the KPI events since today began, then the older ones of
    the window, keeping what `kpi_window` keeps for today's report: the same events as reading
    the whole window and pruning it, without holding the rest. `kpi.report` reads today's and
    yesterday's reports the same way, and an older day's from every stored event: each equals
    the report of every stored event."""
    from datetime import UTC, datetime, timedelta

    from agent.daemon.foreign import ingest
    from agent.daemon.services.visits import (
        KPI_WINDOW_DAYS,
        kpi_window,
        load_events,
        recent_since,
    )
    from agent.domain import kpis
    from agent.domain.events import Stamp, format_at

    db = str(tmp_path / "t.db")
    writer = Writer(db, "wb1")
    now = datetime.now(UTC)

    def days_ago(d: float) -> datetime:
        return now - timedelta(days=d)

    truck = {"product": "P.O 42.5", "load": "bulk", "planned_kg": 30_000}
    own = [
        (20, "visit.arrived", {"visit": "old", "plate": "苏A1", "order": "SO1", **truck}),
        (20, "visit.exited", {"visit": "old"}),
        (5, "visit.arrived", {"visit": "done", "plate": "苏A2", "order": "SO2", **truck}),
        (5, "visit.exited", {"visit": "done"}),
        (5, "visit.arrived", {"visit": "late", "plate": "苏A3", "order": "SO3", **truck}),
        (1.1, "visit.arrived", {"visit": "yday", "plate": "苏A5", "order": "SO7", **truck}),
        (1.0, "visit.exited", {"visit": "yday"}),  # yesterday: for yesterday's report alone
        (10, "visit.arrived", {"visit": "open", "plate": "苏A4", "order": "SO4", **truck}),
        (16, "weighing.captured", {"weighing": "w0", "scale": "scale1", "weight_kg": 1}),
        (10, "weighing.captured", {"weighing": "w1", "scale": "scale1", "weight_kg": 1}),
        (3, "packer.tally", {"packer": "line1", "bags": 10}),
        (1, "packer.tally", {"packer": "line1", "bags": 20}),
        (3, "visit.weighed", {"visit": "peer1", "weighing": "w2", "role": "tare",
                              "weight_kg": 15_000}),
        (2.9, "visit.exited", {"visit": "peer1"}),
        (0.01, "visit.exited", {"visit": "late"}),
        (0.01, "visit.exited", {"visit": "peer2"}),
    ]  # fmt: skip
    for n, (d, kind, data) in enumerate(sorted(own, key=lambda x: -x[0])):
        writer.append_sync(kind, data, stamp=Stamp(days_ago(d), n))
    gate = [
        Event("gate", "g", 1, "visit.arrived", format_at(days_ago(3)), 1, "b",
              {"visit": "peer1", "plate": "苏B1", "order": "SO5", **truck}),
        Event("gate", "g", 2, "visit.arrived", format_at(days_ago(2)), 2, "b",
              {"visit": "peer2", "plate": "苏B2", "order": "SO6", **truck}),
    ]  # fmt: skip
    writer.call(ingest(gate, {}, (writer.terminal, writer.epoch), "gate", "x")).result()
    config = Config(
        terminal=TerminalConfig(id="wb1", database=db, socket="unused"),
        packers=(PackerConfig(name="line1", bag_kg=50),),
    )
    ctx = context_on(config, writer)
    store = ctx.store
    try:
        svc = VisitsService(ctx)
        kept = {e.data.get("visit") or e.data.get("weighing") or e.data.get("bags")
                for e in svc.kpi_events.values()}  # fmt: skip
        # "late" and "peer2" left 15 minutes ago: today, unless today began since
        left_today = format_at(days_ago(0.01)) >= recent_since(now, svc.tz, days=0)
        assert kept == {"open", "w1", 20} | ({"late", "peer2"} if left_today else set())
        every = {e.id: e for e in load_events(store, kpi=True)}
        horizon = format_at(now - timedelta(days=KPI_WINDOW_DAYS))
        window = {key: e for key, e in every.items() if e.at >= horizon}
        assert list(svc.kpi_events) == list(kpi_window(window, {"open"}, now, svc.tz, days=0))
        local = datetime.now(UTC).astimezone(svc.tz).date()
        for back in (0, 1, 2, 3, 5):
            day = local - timedelta(days=back)
            report = await op(svc, "kpi.report", day=day.isoformat())
            as_of = datetime.now(UTC)
            assert report == kpis.compute(every.values(), day, svc.tz, config.kpi, as_of=as_of)
    finally:
        writer.close()
        store.close()


async def test_a_days_report_reads_the_window_for_today_and_yesterday_and_everything_before(
    tmp_path: Path,
) -> None:
    """`kpi.report` for today or yesterday reads only the KPI window from the store; for an
    older day, every stored event. Each report equals that of every stored event."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from agent.daemon.services.visits import load_events
    from agent.domain import kpis
    from agent.domain.events import Stamp

    db = str(tmp_path / "t.db")
    writer = Writer(db, "wb1")
    config = Config(terminal=TerminalConfig(id="wb1", database=db, socket="unused"))
    tz = ZoneInfo(config.terminal.timezone)
    local = datetime.now(UTC).astimezone(tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz)
    starts = {0: midnight, 1: midnight - timedelta(hours=12), 3: midnight - timedelta(days=3)}
    truck = {"product": "P.O 42.5", "load": "bulk", "planned_kg": 30_000}
    n = 0
    for back, start in sorted(starts.items(), reverse=True):
        for s, kind in ((0, "visit.arrived"), (1, "visit.gate_in"), (2, "visit.exited")):
            n += 1
            data = {"visit": f"v{back}", **({"plate": f"苏A{back}", "order": "SO", **truck}
                                           if kind == "visit.arrived" else {})}  # fmt: skip
            writer.append_sync(kind, data, stamp=Stamp(start + timedelta(seconds=s), n))
    ctx = context_on(config, writer)
    store = ctx.store
    try:
        svc = VisitsService(ctx)
        every = list(load_events(store, kpi=True))
        for back in (0, 1, 3):
            day = (local - timedelta(days=back)).date()
            report = await op(svc, "kpi.report", day=day.isoformat())
            whole = kpis.compute(every, day, tz, config.kpi, as_of=datetime.now(UTC))
            assert report == whole and report["bulk_turnaround"]["count"] == 1
    finally:
        writer.close()
        store.close()

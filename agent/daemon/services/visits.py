"""The visits service: the live visit projection, operator commands, the queue alert and KPIs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import Config
from agent.daemon.api import CommandError
from agent.daemon.runtime import Context, Service
from agent.daemon.services.deadlines import Deadlines
from agent.daemon.store import Store
from agent.domain import kpis
from agent.domain.corrections import collect_corrections, corrected
from agent.domain.events import Event, format_at, parse_at, uuid7
from agent.domain.kinds import Kind
from agent.domain.timeline import Timeline, order_key
from agent.domain.visit_commands import CommandContext, command, lag_words
from agent.domain.visit_inputs import Refusal
from agent.domain.visit_projection import Projection, relevant

log = logging.getLogger("tally.visits")

KPI_REFRESH_S = 3.0  # the kpi topic is recomputed at most this often
KPI_STALE_S = 60.0  # and at least this often (open waits cross their targets)
KPI_WINDOW_DAYS = 14  # visit events kept in memory for today's report
TALLY_WINDOW_DAYS = 2  # packer tallies kept in memory for today's report
QUEUE_ALERT = "queue_long"

COMMAND_OPS = (
    "visit.arrive",
    "visit.gate_in",
    "visit.queue",
    "visit.weigh",
    "visit.loading_start",
    "visit.loading_finish",
    "visit.seal",
    "visit.exit",
    "visit.broken_bags",
    "visit.cancel",
    "visit.correct",
)

# (kind prefixes, kinds) of the events the projection and the KPI engine fold
_PROJECTION_KINDS = (("visit",), ("weighing.captured", "operator.corrected"))
_KPI_KINDS = (
    ("visit", "window"),
    ("operator.corrected", "packer.tally", "weighing.captured", "plan.set"),
)


def kpi_relevant(kind: str) -> bool:
    """Whether the KPI engine uses events of this kind."""
    return kind.startswith(("visit.", "window.")) or kind in _KPI_KINDS[1]


def kpi_window(
    events: dict[str, Event], open_visits: set[str], now: datetime, tz: ZoneInfo, days: int = 1
) -> dict[str, Event]:
    """The KPI events of `events` (by id) that today's and yesterday's reports can still use
    at `now` (`days` = 0: today's alone).

    A wait belongs to the day it ended or crossed its target, never later than its visit's
    last event: a visit that is closed and had no event since the start of yesterday (plant
    time; of today with `days` = 0) cannot count, so its events go. An open visit, or one seen
    since then, keeps its events (back to `KPI_WINDOW_DAYS`); so does an event that names no
    visit (a stage recorded by plate and order, a weighing, a window ticket, a plan). Packer
    tallies are kept for `TALLY_WINDOW_DAYS`.
    """
    since = recent_since(now, tz, days)
    seen = {v for ev in events.values() if ev.at >= since and (v := visit_named(ev)) is not None}
    keeps = kpi_keeps(seen | open_visits, now)
    return {key: ev for key, ev in events.items() if keeps(ev)}


def recent_since(now: datetime, tz: ZoneInfo, days: int = 1) -> str:
    """The start of yesterday (plant time) at `now`, as a stored UTC time: a visit with an
    event since then may still count today or yesterday (`days` = 0: the start of today)."""
    local = now.astimezone(tz)
    start = datetime(local.year, local.month, local.day, tzinfo=tz) - timedelta(days=days)
    return format_at(start.astimezone(UTC))


def visit_named(ev: Event) -> str | None:
    """The visit id a visit event names, if it names one."""
    vid = ev.data.get("visit") if ev.kind.startswith("visit.") else None
    return vid if isinstance(vid, str) else None


def kpi_keeps(live: set[str], now: datetime) -> Callable[[Event], bool]:
    """Whether `kpi_window` keeps an event at `now`, given the visits that are open or had an
    event since `recent_since` (`live`)."""
    tallies = format_at(now - timedelta(days=TALLY_WINDOW_DAYS))
    oldest = format_at(now - timedelta(days=KPI_WINDOW_DAYS))

    def keeps(ev: Event) -> bool:
        if ev.kind == "packer.tally":
            return ev.at >= tallies
        vid = visit_named(ev)
        return ev.at >= oldest and (vid is None or vid in live)

    return keeps


def read_kpi_window(
    store: Store,
    tz: ZoneInfo,
    now: datetime,
    open_visits: set[str],
    held: dict[str, Event],
    days: int = 1,
) -> dict[str, Event]:
    """The KPI events `kpi_window` keeps at `now` (with `days`), read from the store without
    holding the events it would drop (two busy weeks read whole cost a restart 10 MiB of its
    heap for good); an event in `held` (by id) is taken from there instead.

    Read since yesterday (today) first, which tells which visits are live (with
    `open_visits`); then the older ones, kept by the same rule.
    """
    prefixes, kinds = _KPI_KINDS
    since = recent_since(now, tz, days)
    recent = {
        ev.id: held.get(ev.id, ev)
        for ev in store.timeline_events(prefixes=prefixes, kinds=kinds, since_at=since)
    }
    live = set(open_visits)
    live.update(v for ev in recent.values() if (v := visit_named(ev)) is not None)
    keeps = kpi_keeps(live, now)
    oldest = format_at(now - timedelta(days=KPI_WINDOW_DAYS))
    older = store.timeline_events(prefixes=prefixes, kinds=kinds, since_at=oldest)
    window = {
        ev.id: held.get(ev.id, ev)
        for ev in itertools.takewhile(lambda e: e.at < since, older)
        if keeps(ev)
    }
    return {**window, **{key: ev for key, ev in recent.items() if keeps(ev)}}


def load_events(
    store: Store, *, kpi: bool = False, upto: int | None = None, foreign: bool = True
) -> Iterator[Event]:
    """The stored events the projection (or, with `kpi`, the KPI engine) uses: this terminal's
    (up to seq `upto`) and, with `foreign`, the other terminals' held here, in timeline order,
    read a page at a time."""
    prefixes, kinds = _KPI_KINDS if kpi else _PROJECTION_KINDS
    return store.timeline_events(prefixes=prefixes, kinds=kinds, upto=upto, foreign=foreign)


def stored_target(store: Store, event_id: str) -> Event | None:
    """The stored event `event_id` with the corrections stored for it applied in timeline
    order (the fold's "last one wins"), or None when it is not stored here."""
    ev = store.event(event_id)
    if ev is None:
        return None
    fixes = store.events_naming(Kind.OPERATOR_CORRECTED, "target_event", event_id)
    return corrected(ev, collect_corrections(sorted(fixes, key=order_key)))


def plant_projection(config: Config, own: str | None = None) -> Projection:
    """An empty projection of the plant timeline as terminal `own` keeps it (plant days in
    the terminal's time zone)."""
    return Projection(config.kpi, own=own, tz=ZoneInfo(config.terminal.timezone))


def rebuild_from(store: Store, config: Config, upto: int | None = None) -> Projection:
    """The visit projection of the plant timeline folded from the store: this terminal's events
    (up to seq `upto`, else all) and the other terminals' events held here, in timeline order."""
    p = plant_projection(config, config.terminal.id)
    for ev in load_events(store, upto=upto):
        p.apply(ev)  # in timeline order, each once: what `fold` would sort them into
    p.last_seq = max(p.last_seq, upto if upto is not None else store.last_seq())
    return p


def summary(p: Projection) -> dict[str, Any]:
    """Counts describing a projection, as `tally rebuild` prints them."""
    snap = p.snapshot(live=False)
    return {
        "last_seq": p.last_seq,
        "events": p.count,
        "visits": len(p.visits) + len(p.settled),
        "open": len(snap["open"]),
        "queue": len(snap["queue"]),
        "scale_queue": len(snap["scale_queue"]),
        "unassigned": len(snap["unassigned"]),
        "flags": sum(len(v.flags) for v in p.held()),
    }


def today(tz: ZoneInfo, now: datetime | None = None) -> date:
    """The plant-local date now."""
    return (now or datetime.now(UTC)).astimezone(tz).date()


class VisitsService:
    """Keeps the projection live, serves the visit ops and publishes `visits` and `kpi`."""

    name = "visits"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        cfg = ctx.config
        self.tz = ZoneInfo(cfg.terminal.timezone)
        self.scales = tuple(s.name for s in cfg.scales if s.role == "truck")  # not bag scales
        self.default_scale = cfg.terminal.scale_queue or (self.scales[0] if self.scales else "")
        self.packer_bag_kg = {p.name: p.bag_kg for p in cfg.packers}
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.wake.set()  # react once at start: a crash may have left a match or check undone
        own = cfg.terminal.id
        self.timeline = Timeline(lambda: plant_projection(cfg, own))
        self.own_last = ctx.store.last_seq()
        self.timeline.refold(load_events(ctx.store, upto=self.own_last))
        self.kpi_events = self._load_kpi_window()
        self.kpi_dirty = True
        self.kpi_at = 0.0
        self.kpi_day: date | None = None
        self.pruned_at = time.monotonic()
        ctx.hub.event_listeners.append(self._on_events)
        ctx.hub.foreign_listeners.append(self._on_foreign)
        ctx.hub.watchers.append(self._on_publish)
        for topic, value in list(ctx.hub.topics.items()):
            self._on_publish(topic, value)  # packers may have published before we listened
        for op in COMMAND_OPS:
            ctx.api.register(op, self._handler(op))
        ctx.api.register("visits.list", self._list)
        ctx.api.register("visits.rebuild", self._rebuild)
        ctx.api.register("kpi.report", self._kpi_report)
        self._publish()

    # --- keeping the projection live -----------------------------------------------------------

    @property
    def proj(self) -> Projection:
        """The projection of the plant timeline."""
        return self.timeline.proj

    def _refold(self) -> None:
        """Fold the whole stored timeline again (an event sorted before the snapshot)."""
        log.info("folding the plant timeline again from the store")
        self.timeline.refold(load_events(self.ctx.store, upto=self.own_last))

    def _sync(self) -> None:
        """Fold in whatever the store has beyond the projection (the listener may lag)."""
        last = self.ctx.store.last_seq()
        if last > self.own_last:
            prefixes, kinds = _PROJECTION_KINDS
            events = self.ctx.store.events_between(
                self.own_last, last, prefixes=prefixes, kinds=kinds, limit=1_000_000
            )
            self.own_last = last
            self.timeline.add(events)
        if self.timeline.stale:
            self._refold()

    def _feed(self, events: list[Event]) -> bool:
        """Fold in committed own events in seq order; return whether the projection changed."""
        fresh = []
        for ev in events:
            if ev.seq <= self.own_last:
                continue
            if ev.seq > self.own_last + 1:
                self._sync()  # a gap: read it from the store
                return True
            self.own_last = ev.seq
            if relevant(ev.kind):
                fresh.append(ev)
        changed = self.timeline.add(fresh)
        if self.timeline.stale:
            self._refold()
        return changed

    def _on_events(self, events: list[Event]) -> None:
        dirty = False
        for ev in events:
            if kpi_relevant(ev.kind) and ev.id not in self.kpi_events:
                self.kpi_events[ev.id] = ev  # keyed by id: a command's events come twice
                self.kpi_dirty = dirty = True
        changed = self._feed(events)
        if changed:
            self._publish()
        if changed or dirty:  # a held-back kpi refresh is due KPI_REFRESH_S after the last
            self.wake.set()

    def _on_foreign(self, events: list[Event]) -> None:
        """Other terminals' events, just stored here: fold them into the plant timeline."""
        dirty = False
        for ev in events:
            if kpi_relevant(ev.kind):
                self.kpi_events[ev.id] = ev
                self.kpi_dirty = dirty = True
        changed = self.timeline.add([ev for ev in events if relevant(ev.kind)])
        if self.timeline.stale:
            self._refold()
            changed = True
        if changed:
            self._publish()
        if changed or dirty:
            self.wake.set()

    def _on_publish(self, topic: str, value: Any) -> None:
        if not topic.startswith("packer.") or not isinstance(value, dict):
            return
        loaded = value.get("loaded")
        packer = topic.removeprefix("packer.")
        if not isinstance(loaded, int) or self.proj.loaded.get(packer) == loaded:
            return
        self.proj.loaded[packer] = loaded
        if any(
            v.counter and v.counter.get("packer") == packer and v.loading_finished is None
            for v in self.proj.open_visits()
        ):
            self._publish()

    def _publish(self) -> None:
        self.ctx.hub.publish("visits", self.proj.snapshot())

    async def _append(self, commands: list[tuple[str, dict[str, Any]]]) -> None:
        events = [await self.ctx.writer.append(kind, data) for kind, data in commands]
        self._on_events(events)

    async def _react(self) -> None:
        """Append automatic matches and checks until the projection asks for nothing more."""
        for _ in range(100):
            out = self.proj.reactions()
            if not out:
                return
            await self._append(out)

    # --- operator commands ---------------------------------------------------------------------

    def _handler(self, op: str) -> Any:
        async def handle(req: dict[str, Any]) -> Any:
            return await self._command(op, req)

        return handle

    async def _command(self, op: str, req: dict[str, Any]) -> Any:
        async with self.lock:  # validation and append are one step
            self._sync()
            lag = self._lag_sources()
            target = req.get("target_event")
            stored = None
            if (
                op == "visit.correct"
                and isinstance(target, str)
                and target
                and self.proj.visit_holding(target) is None
            ):
                # an older visit than the projection holds: its event from the store
                stored = await asyncio.to_thread(stored_target, self.ctx.store, target)
            cctx = CommandContext(
                new_visit_id=uuid7(),
                scales=self.scales,
                default_scale=self.default_scale,
                packer_bag_kg=self.packer_bag_kg,
                plant=bool(self.ctx.config.peers),
                lag=lag_words(lag),
                lag_sources=lag,
                stored=stored,
            )
            try:
                commands = command(self.proj, op, req, cctx)
            except Refusal as exc:
                raise CommandError(str(exc) + self._lag_note()) from None
            await self._append(commands)
            await self._react()
        self.wake.set()
        first = commands[0][1]
        if op == "visit.arrive":
            return {"visit": first["visit"], "plate": first["plate"]}
        v = self.proj.visit(str(first.get("visit")))
        if v is None and "visit" not in first:  # recorded by plate and order
            v = self.proj.by_plate_order(str(first.get("plate")), str(first.get("order")))
        answer = v.to_dict(self.proj.loaded) if v else None
        if answer is None and op == "visit.correct":
            answer = dict(first)  # a visit no longer in memory: what was recorded
        if cctx.warnings:
            answer = {
                **(answer or {}),
                "warnings": list(cctx.warnings),
                "warning_codes": list(cctx.warning_codes),
            }
        return answer

    def _lag_sources(self) -> tuple[dict[str, Any], ...]:
        """The sources this terminal's replica lags behind, for a warning: how far and since
        when (`lag_words` says it in English); none when every source is up to date."""
        now = datetime.now(UTC)
        out: list[dict[str, Any]] = []
        for p in (self.ctx.hub.get("replicas") or {}).get("peers", []):
            if not isinstance(p, dict) or p.get("state") == "up to date":
                continue
            contact, name, state = p.get("last_contact"), p.get("name"), p.get("state")
            if not contact:
                out.append({"source": name, "state": state, "contact": False})
            elif state == "unreachable":
                silent = (now - parse_at(str(contact))).total_seconds()
                out.append({"source": name, "state": state, "silent_s": round(silent)})
            else:
                out.append(
                    {
                        "source": name,
                        "state": state,
                        "lag_s": p.get("lag_s") or 0,
                        "events_behind": p.get("events_behind") or 0,
                    }
                )
        return tuple(out)

    def _lag_note(self) -> str:
        """Why this terminal may not know a fact yet: the sources it lags behind, if any."""
        behind = [
            f"{p.get('name')} ({p.get('state')}, last contact {p.get('last_contact') or 'never'})"
            for p in (self.ctx.hub.get("replicas") or {}).get("peers", [])
            if isinstance(p, dict) and p.get("state") != "up to date"
        ]
        if not behind:
            return ""
        return "; this terminal may not have the other terminals' latest events: " + ", ".join(
            behind
        )

    async def _list(self, req: dict[str, Any]) -> Any:
        async with self.lock:
            self._sync()
            if req.get("visit"):
                v = self.proj.visit(str(req["visit"]))
                if v is None:
                    raise CommandError(
                        f"there is no visit {req['visit']} in memory (the daemon holds the open"
                        f" visits and the latest {self.proj.keep_closed} closed ones); tally"
                        " events shows every stored event"
                    )
                return v.to_dict(self.proj.loaded)
            return self.proj.snapshot(live=req.get("live", True) is not False)

    async def _rebuild(self, req: dict[str, Any]) -> Any:
        async with self.lock:
            self._sync()
            fresh = await asyncio.to_thread(
                rebuild_from, self.ctx.store, self.ctx.config, self.own_last
            )
            matched = fresh.snapshot(live=False) == self.proj.snapshot(live=False)
            if not matched:
                log.warning("the live visit projection differed from a rebuild; using the rebuild")
                self._refold()
                self.proj.dirty.clear()
                self._publish()
            return {
                "source": "daemon",
                "matched": matched,
                "summary": summary(fresh),
                "visits": fresh.snapshot(live=False),
            }

    async def _kpi_report(self, req: dict[str, Any]) -> Any:
        day_text = req.get("day")
        if day_text:
            try:
                day = date.fromisoformat(str(day_text))
            except ValueError:
                raise CommandError(f"day {day_text!r} is not a date like 2026-11-29") from None
        else:
            day = today(self.tz)
        store, cfg, tz = self.ctx.store, self.ctx.config.kpi, self.tz
        now = datetime.now(UTC)
        if day >= today(tz) - timedelta(days=1):
            # today's and yesterday's reports need only the window's events (`kpi_window`):
            # every stored KPI event, read whole, is a peak the daemon would keep for good
            live = {v.visit for v in self.proj.open_visits()}
            return await asyncio.to_thread(
                lambda: kpis.compute(
                    read_kpi_window(store, tz, now, live, {}).values(), day, tz, cfg, as_of=now
                )
            )
        return await asyncio.to_thread(
            lambda: kpis.compute(load_events(store, kpi=True), day, tz, cfg, as_of=now)
        )

    # --- the service loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """React to changes: matches and checks, the queue alert, the kpi topic."""
        while True:
            # not wait_for: on 3.11 it can swallow a cancellation that races a wake-up
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._until_refresh()):
                    await self.wake.wait()
            self.wake.clear()
            async with self.lock:
                self._sync()
                await self._react()
            await self._queue_alert()
            await self._refresh_kpi()

    async def _queue_alert(self) -> None:
        limit = self.ctx.config.kpi.queue_alert
        n = self.proj.queue_length()
        active = QUEUE_ALERT in self.ctx.alerts.active
        if n > limit and not active:
            await self.ctx.alerts.raise_(
                QUEUE_ALERT,
                f"more than {limit} vehicles are queueing at the gate; tell the packing section",
            )
        elif n <= limit and active:
            await self.ctx.alerts.clear(QUEUE_ALERT, f"{n} vehicles queue at the gate")

    def _until_refresh(self) -> float:
        """Seconds until the kpi topic is due: a held-back change at KPI_REFRESH_S after the
        last report, else the minute's refresh (which also finds a new plant day)."""
        due = self.kpi_at + (KPI_REFRESH_S if self.kpi_dirty else KPI_STALE_S)
        return max(0.0, due - time.monotonic()) + 0.005

    async def _refresh_kpi(self) -> None:
        now, wall = time.monotonic(), datetime.now(UTC)
        day = today(self.tz, wall)  # the same instant as the report is made at
        # Open waits cross their targets as time passes: refresh at least once a minute.
        fresh = not self.kpi_dirty and now - self.kpi_at < KPI_STALE_S
        if day == self.kpi_day and (fresh or now - self.kpi_at < KPI_REFRESH_S):
            return
        if day != self.kpi_day or now - self.pruned_at > 3600:
            # a new plant day is when yesterday's closed visits leave the window
            self._prune()
            self.pruned_at = now
        self.kpi_dirty, self.kpi_at, self.kpi_day = False, now, day
        # the events held are today's (`kpi_window` with `days` = 0: at start, each hour and at
        # each new plant day), so each refresh folds the visits that can still count today
        events, cfg, tz = list(self.kpi_events.values()), self.ctx.config.kpi, self.tz
        report = await asyncio.to_thread(kpis.compute, events, day, tz, cfg, wall)
        # The TUI colours running waits from the same share as the late.* warnings.
        self.ctx.hub.publish("kpi", {**report, "warn_share": cfg.warn_share})

    def _load_kpi_window(self) -> dict[str, Event]:
        """The KPI events today's report can use (`kpi_window` with `days` = 0), read from the
        store (`read_kpi_window`); the events the live projection holds are taken from it, not
        read a second time (2 MiB for two busy days; live events are shared). Yesterday's
        report (`kpi.report`) reads its own from the store."""
        held = {ev.id: ev for v in self.proj.visits.values() for _, ev in v.events}
        live = {v.visit for v in self.proj.open_visits()}
        return read_kpi_window(self.ctx.store, self.tz, datetime.now(UTC), live, held, days=0)

    def _prune(self) -> None:
        open_visits = {v.visit for v in self.proj.open_visits()}
        self.kpi_events = kpi_window(
            self.kpi_events, open_visits, datetime.now(UTC), self.tz, days=0
        )


def build(ctx: Context) -> list[Service]:
    """The visits service of this terminal and its live warnings."""
    service = VisitsService(ctx)
    return [service, Deadlines(ctx, lambda: service.proj.open_visits())]

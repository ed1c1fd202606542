"""Pure packer arithmetic: counter deltas across wraps and resets, tallies, stops and rates."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from agent.config import PackerConfig, PointConfig
from agent.domain.events import format_at, parse_at

# returned_over: of the returns, the overweight ones, where the line's PLC counts them apart
COUNTER_ROLES = ("bags", "returned", "returned_over", "broken", "loaded", "spout")
TALLIED = ("bags", "returned", "broken")
# A counter that went down wrapped only when the previous value sat in the top quarter of its
# range and the new one in the bottom quarter; any other fall is a reset (power cycle, operator).
NEAR_FRACTION = 0.25
WINDOW_S = 900  # the "last 15 minutes" of the live rates

Value = int | float | bool


# --- counter deltas ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Discontinuity:
    """A counter that went down: it wrapped past its modulus or was reset."""

    point: str
    previous: int
    current: int
    cause: Literal["wrap", "reset"]


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A delta larger than the machine can physically do in the elapsed time; not counted."""

    point: str
    previous: int
    current: int
    delta: int
    limit: int


@dataclass(frozen=True, slots=True)
class Delta:
    """What one new reading of a counter adds (never negative)."""

    delta: int
    discontinuity: Discontinuity | None = None
    anomaly: Anomaly | None = None


def counter_delta(
    point: str,
    previous: int | None,
    current: int,
    modulus: int,
    elapsed_s: float,
    max_per_s: float,
) -> Delta:
    """The counts between two raw readings of a counter with the given modulus.

    `previous` None is the first reading ever: the baseline, zero counts. A rise is the
    difference; a fall is a wrap (previous in the top quarter of the range and current in the
    bottom quarter: current + modulus - previous) or else a reset (current); a fall that looks
    like a wrap but could only be a reset in the elapsed time is a reset. A delta above
    `max_per_s` times the elapsed seconds (at least one second) is returned as an anomaly with
    delta 0.
    """
    if previous is None:
        return Delta(0)
    disc: Discontinuity | None = None
    limit = math.floor(max_per_s * max(elapsed_s, 1.0))
    if current >= previous:
        delta = current - previous
    else:
        band = modulus * NEAR_FRACTION
        wrapped = current + modulus - previous
        # Near the top a fall looks like a wrap, unless only a reset fits the elapsed time
        # (a power cycle just before the wrap).
        if previous >= modulus - band and current < band and (wrapped <= limit or current > limit):
            disc = Discontinuity(point, previous, current, "wrap")
            delta = wrapped
        else:
            disc = Discontinuity(point, previous, current, "reset")
            delta = current
    if delta > limit:
        return Delta(0, disc, Anomaly(point, previous, current, delta, limit))
    return Delta(delta, disc)


def point_modulus(point: PointConfig) -> int:
    """The modulus of a counter point: its configured one, else its register width."""
    if point.modulus:
        return point.modulus
    return 2**32 if point.type in ("uint32", "int32") else 2**16


def point_key(point: PointConfig, index: int) -> str:
    """The name a point's value goes by: its name, else its role (spouts get their index)."""
    if point.name:
        return point.name
    return f"spout{index}" if point.role == "spout" else point.role


# --- the tally accumulator and the packer's state -----------------------------------------------


@dataclass(frozen=True, slots=True)
class CounterPoint:
    """How the core treats one configured point."""

    key: str
    role: str
    modulus: int
    scale: float


@dataclass(frozen=True, slots=True)
class Settings:
    """The packer configuration the pure core needs."""

    name: str
    bag_kg: int
    tally_s: int
    stop_after_s: float
    max_bags_per_s: float
    idle_s: float
    max_gap_s: float
    points: tuple[CounterPoint, ...]
    has_running: bool
    has_returned_over: bool = False

    @staticmethod
    def from_config(p: PackerConfig) -> Settings:
        """Derive the settings from a `[[packer]]` table."""
        points = tuple(
            CounterPoint(point_key(pt, i), pt.role, point_modulus(pt), pt.scale)
            for i, pt in enumerate(p.points)
        )
        return Settings(
            name=p.name,
            bag_kg=p.bag_kg,
            tally_s=p.tally_s,
            stop_after_s=p.stop_after_s,
            max_bags_per_s=p.max_bags_per_s,
            idle_s=p.idle_s,
            # A gap longer than this between readings (device offline) earns no running time.
            max_gap_s=max(5.0, 3 * p.poll_s),
            points=points,
            has_running=any(pt.role == "running" for pt in p.points),
            has_returned_over=any(pt.role == "returned_over" for pt in p.points),
        )


@dataclass(frozen=True, slots=True)
class Tally:
    """One closed tally interval: the payload of `packer.tally`."""

    packer: str
    start: datetime
    end: datetime
    bags: int
    returned: int
    broken: int
    running_ms: int
    bag_kg: int
    returned_over: int | None = None  # None: the packer has no returned_over point

    def data(self) -> dict[str, Any]:
        """The event payload [packer, from, to, bags, returned, broken, running_s, bag_kg]."""
        over = {} if self.returned_over is None else {"returned_over": self.returned_over}
        return {
            "packer": self.packer,
            "from": format_at(self.start),
            "to": format_at(self.end),
            "bags": self.bags,
            "returned": self.returned,
            "broken": self.broken,
            "running_s": self.running_ms / 1000,
            "bag_kg": self.bag_kg,
            **over,
        }


@dataclass(frozen=True, slots=True)
class Progress:
    """What one reading added (feeds the live rates)."""

    at: datetime
    bags: int
    returned: int
    broken: int
    running_ms: int


@dataclass(frozen=True, slots=True)
class Stopped:
    """The packer has not run for longer than stop_after_s (or the operator gave a reason)."""

    since: datetime
    reason: str | None
    expected_repair_min: int | None


@dataclass(frozen=True, slots=True)
class Started:
    """A stopped packer runs again."""

    at: datetime


Output = Discontinuity | Anomaly | Tally | Progress | Stopped | Started


@dataclass(frozen=True, slots=True)
class PackerState:
    """Everything the core remembers between readings; stored as JSON with each event."""

    last: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    raw: dict[str, Value] = field(default_factory=dict)
    loaded: int = 0
    start: datetime | None = None
    bags: int = 0
    returned: int = 0
    broken: int = 0
    running_ms: int = 0
    seen: bool = False
    returned_over: int = 0
    prev_at: datetime | None = None
    running: bool = False
    first_at: datetime | None = None
    last_run_at: datetime | None = None
    last_bag_at: datetime | None = None
    stopped: bool = False
    stop_since: datetime | None = None
    reason: str | None = None
    repair_min: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO strings)."""

        def t(x: datetime | None) -> str | None:
            return None if x is None else format_at(x)

        return {
            "last": {k: [v, format_at(at)] for k, (v, at) in self.last.items()},
            "raw": dict(self.raw),
            "loaded": self.loaded,
            "start": t(self.start),
            "bags": self.bags,
            "returned": self.returned,
            "broken": self.broken,
            "running_ms": self.running_ms,
            "seen": self.seen,
            "returned_over": self.returned_over,
            "prev_at": t(self.prev_at),
            "running": self.running,
            "first_at": t(self.first_at),
            "last_run_at": t(self.last_run_at),
            "last_bag_at": t(self.last_bag_at),
            "stopped": self.stopped,
            "stop_since": t(self.stop_since),
            "reason": self.reason,
            "repair_min": self.repair_min,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> PackerState:
        """The inverse of `to_json`."""

        def t(x: Any) -> datetime | None:
            return None if x is None else parse_at(str(x))

        return PackerState(
            last={k: (int(v[0]), parse_at(v[1])) for k, v in d.get("last", {}).items()},
            raw=dict(d.get("raw", {})),
            loaded=int(d.get("loaded", 0)),
            start=t(d.get("start")),
            bags=int(d.get("bags", 0)),
            returned=int(d.get("returned", 0)),
            broken=int(d.get("broken", 0)),
            running_ms=int(d.get("running_ms", 0)),
            seen=bool(d.get("seen", False)),
            returned_over=int(d.get("returned_over", 0)),
            prev_at=t(d.get("prev_at")),
            running=bool(d.get("running", False)),
            first_at=t(d.get("first_at")),
            last_run_at=t(d.get("last_run_at")),
            last_bag_at=t(d.get("last_bag_at")),
            stopped=bool(d.get("stopped", False)),
            stop_since=t(d.get("stop_since")),
            reason=d.get("reason"),
            repair_min=d.get("repair_min"),
        )


def interval_end(start: datetime, tally_s: int) -> datetime:
    """The end of the tally interval that contains `start` (intervals align to the epoch)."""
    epoch_s = start.timestamp()
    return datetime.fromtimestamp((math.floor(epoch_s / tally_s) + 1) * tally_s, UTC)


def _aligned_start(at: datetime, tally_s: int) -> datetime:
    return datetime.fromtimestamp(math.floor(at.timestamp() / tally_s) * tally_s, UTC)


def _ms(a: datetime, b: datetime) -> int:
    return round((b - a).total_seconds() * 1000)


def _close(s: Settings, state: PackerState, end: datetime) -> tuple[PackerState, Tally | None]:
    """Close the open interval at `end`; a tally only when the interval saw a reading."""
    tally = None
    if (
        state.running
        and state.prev_at is not None
        and state.start is not None
        and (end - state.prev_at).total_seconds() <= s.max_gap_s
    ):
        # The packer ran from the last reading up to the boundary: that time belongs here.
        pending = max(0, _ms(max(state.prev_at, state.start), end))
        state = replace(state, running_ms=state.running_ms + pending)
    if state.start is not None and state.seen:
        tally = Tally(
            s.name,
            state.start,
            end,
            state.bags,
            state.returned,
            state.broken,
            state.running_ms,
            s.bag_kg,
            state.returned_over if s.has_returned_over else None,
        )
    return (
        replace(
            state,
            start=end,
            bags=0,
            returned=0,
            returned_over=0,
            broken=0,
            running_ms=0,
            seen=False,
        ),
        tally,
    )


def tick(s: Settings, state: PackerState, at: datetime) -> tuple[PackerState, list[Output]]:
    """Close the open interval when `at` has reached its end; start the next aligned one."""
    if state.start is None:
        # The very first interval starts with the first reading; later ones are aligned.
        return replace(state, start=at), []
    end = interval_end(state.start, s.tally_s)
    if at < end:
        return state, []
    state, tally = _close(s, state, end)
    state = replace(state, start=max(end, _aligned_start(at, s.tally_s)))
    return state, [tally] if tally else []


def close(s: Settings, state: PackerState, at: datetime) -> tuple[PackerState, Tally | None]:
    """Close the open interval early at `at` (a clean stop of the daemon)."""
    if state.start is not None and at < state.start:
        at = state.start
    return _close(s, state, at)


def observe(
    s: Settings, state: PackerState, values: Mapping[str, Value], at: datetime
) -> tuple[PackerState, list[Output]]:
    """Take one reading of a packer's points (raw values by point key) made at `at`."""
    state, outputs = tick(s, state, at)
    last = dict(state.last)
    raw = {**state.raw, **values}
    added = {"bags": 0, "returned": 0, "returned_over": 0, "broken": 0, "loaded": 0}
    for cp in s.points:
        if cp.role not in COUNTER_ROLES or cp.key not in values:
            continue
        current = int(values[cp.key]) % cp.modulus
        prev = last.get(cp.key)
        elapsed = (at - prev[1]).total_seconds() if prev else 0.0
        d = counter_delta(
            cp.key, prev[0] if prev else None, current, cp.modulus, elapsed, s.max_bags_per_s
        )
        last[cp.key] = (current, at)
        if d.discontinuity:
            outputs.append(d.discontinuity)
        if d.anomaly:
            outputs.append(d.anomaly)
        if cp.role in added:
            added[cp.role] += round(d.delta * cp.scale)
    last_bag_at = state.last_bag_at
    if added["bags"] > 0:
        last_bag_at = at
    if s.has_running:
        running_key = next(cp.key for cp in s.points if cp.role == "running")
        running = bool(values[running_key]) if running_key in values else state.running
        # Sample and hold: the state read last time held until this reading.
        credit_running = state.running
    else:
        running = last_bag_at is not None and (at - last_bag_at).total_seconds() <= s.idle_s
        # Bags counted now mean the packer ran since the previous reading.
        credit_running = running
    running_ms = 0
    if credit_running and state.prev_at is not None and state.prev_at < at:
        gap = (at - state.prev_at).total_seconds()
        if gap <= s.max_gap_s:
            assert state.start is not None
            # A reading stamped just before the interval that is now open earns nothing.
            running_ms = max(0, _ms(max(state.prev_at, state.start), at))
    first_at = state.first_at or at
    last_run_at = at if running else state.last_run_at
    state = replace(
        state,
        last=last,
        raw=raw,
        loaded=state.loaded + added["loaded"],
        bags=state.bags + added["bags"],
        returned=state.returned + added["returned"],
        returned_over=state.returned_over + added["returned_over"],
        broken=state.broken + added["broken"],
        running_ms=state.running_ms + running_ms,
        seen=True,
        prev_at=at,
        running=running,
        first_at=first_at,
        last_run_at=last_run_at,
        last_bag_at=last_bag_at,
    )
    if running and state.stopped:
        state = replace(state, stopped=False, stop_since=None, reason=None, repair_min=None)
        outputs.append(Started(at))
    elif not running and not state.stopped:
        since = state.last_run_at or first_at
        if (at - since).total_seconds() > s.stop_after_s:
            state = replace(state, stopped=True, stop_since=since)
            outputs.append(Stopped(since, None, None))
    outputs.append(Progress(at, added["bags"], added["returned"], added["broken"], running_ms))
    return state, outputs


def give_reason(
    state: PackerState, reason: str, repair_min: int, at: datetime
) -> tuple[PackerState, Stopped]:
    """The operator's reason for a stop; a packer not yet marked stopped is stopped from now.

    Raises ValueError when the packer is running.
    """
    if state.running:
        raise ValueError("running")
    since = state.stop_since or state.last_run_at or at
    state = replace(state, stopped=True, stop_since=since, reason=reason, repair_min=repair_min)
    return state, Stopped(since, reason, repair_min)


# --- live rates --------------------------------------------------------------------------------


_Sums = tuple[int, int, int, int]  # bags, returned, broken, running ms


@dataclass(frozen=True, slots=True)
class Rates:
    """Progress over the last 15 minutes and the plant-local day.

    The window's samples are kept in time order with their sums, so a reading adds its own
    sample and takes away those that left the window, rather than summing the window again:
    a packer read once a second holds some 900 samples, and each reading used to walk them
    all five times.
    """

    tz: str
    samples: tuple[Progress, ...] = ()  # by time (a sample from a clock set back goes in its place)
    window: _Sums = (0, 0, 0, 0)  # the sums of `samples`
    day: date | None = None
    day_bags: int = 0
    day_returned: int = 0
    day_broken: int = 0
    day_running_ms: int = 0

    def add(self, p: Progress) -> Rates:
        """Add one reading's progress (samples older than the window are dropped)."""
        local_day = p.at.astimezone(ZoneInfo(self.tz)).date()
        r = self
        if r.day != local_day:
            r = replace(
                r, day=local_day, day_bags=0, day_returned=0, day_broken=0, day_running_ms=0
            )
        first, (bags, returned, broken, ms) = _recent(
            r.samples, r.window, p.at - timedelta(seconds=WINDOW_S)
        )
        kept = r.samples[first:] if first else r.samples
        if p.bags or p.returned or p.broken or p.running_ms:
            if not kept or kept[-1].at <= p.at:
                kept = (*kept, p)
            else:
                i = bisect.bisect_right(kept, p.at, key=lambda x: x.at)
                kept = (*kept[:i], p, *kept[i:])
            bags, returned = bags + p.bags, returned + p.returned
            broken, ms = broken + p.broken, ms + p.running_ms
        # (built directly: `replace` looks up the fields each time, a third of a reading's cost)
        return Rates(
            r.tz,
            kept,
            (bags, returned, broken, ms),
            r.day,
            r.day_bags + p.bags,
            r.day_returned + p.returned,
            r.day_broken + p.broken,
            r.day_running_ms + p.running_ms,
        )

    def view(self, now: datetime, bag_kg: int) -> dict[str, Any]:
        """The `last15` and `day` parts of the `packer.<name>` topic at `now`."""
        _, (w_bags, w_ret, w_brk, w_ms) = _recent(
            self.samples, self.window, now - timedelta(seconds=WINDOW_S)
        )
        today = now.astimezone(ZoneInfo(self.tz)).date()
        same_day = self.day == today
        d_bags = self.day_bags if same_day else 0
        d_ret = self.day_returned if same_day else 0
        d_brk = self.day_broken if same_day else 0
        d_ms = self.day_running_ms if same_day else 0
        last15 = {
            "bags_h": _per_hour(w_bags, w_ms),
            "t_h": _tonnes_h(w_bags, bag_kg, w_ms),
            "return_rate": _ratio(w_ret, w_bags),
            "broken_rate": _ratio(w_brk, w_bags),
        }
        day = {
            "bags": d_bags,
            "returned": d_ret,
            "broken": d_brk,
            "running_h": round(d_ms / 3_600_000, 3),
            "t_h": _tonnes_h(d_bags, bag_kg, d_ms),
            "return_rate": _ratio(d_ret, d_bags),
            "broken_rate": _ratio(d_brk, d_bags),
        }
        return {"last15": last15, "day": day}


def _recent(samples: tuple[Progress, ...], sums: _Sums, cutoff: datetime) -> tuple[int, _Sums]:
    """Where the samples after `cutoff` begin in time-ordered `samples`, and their sums, from
    those of `samples`: the oldest are taken away one by one (a reading a second drops about
    one). `view` needs only the sums, so no slice is made here."""
    bags, returned, broken, ms = sums
    i = 0
    while i < len(samples) and samples[i].at <= cutoff:
        x = samples[i]
        bags, returned, broken, ms = (
            bags - x.bags, returned - x.returned, broken - x.broken, ms - x.running_ms
        )  # fmt: skip
        i += 1
    return i, (bags, returned, broken, ms)


def _per_hour(bags: int, running_ms: int) -> float | None:
    """Bags per running hour; None without running time."""
    if running_ms <= 0:
        return None
    return round(bags * 3_600_000 / running_ms, 1)


def _tonnes_h(bags: int, bag_kg: int, running_ms: int) -> float | None:
    """Tonnes per running hour (bags x integer kg, divided once); None without running time."""
    if running_ms <= 0:
        return None
    return round(bags * bag_kg * 3_600 / running_ms, 2)


def _ratio(part: int, whole: int) -> float | None:
    """part / whole rounded to 4 places; None when nothing was filled."""
    if whole <= 0:
        return None
    return round(part / whole, 4)

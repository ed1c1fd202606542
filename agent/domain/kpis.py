"""The service-standard KPIs of plant-local days and months (issues 5 and 14), pure and shared.

The daemon's `kpi` topic, `tally kpi` and the receiver's KPI endpoint all call `compute` (one
day) or `compute_month`; the definitions, their targets and the articles of the standard they
come from are tabled in docs/visits-and-kpis.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import KpiConfig
from agent.domain import window_services as windows
from agent.domain.corrections import collect_corrections, corrected
from agent.domain.events import Event, parse_at
from agent.domain.kinds import Kind
from agent.domain.marks import Mark, duration_ms
from agent.domain.timeline import order_key
from agent.domain.visit import VisitState, fold_visits

CHECKS = ("tare_fluctuation", "underloaded", "bagged_overweight")
# what a truck does just before it waits for the scale: the implied start of that wait
_ANCHORS = (Kind.VISIT_GATE_IN, Kind.VISIT_LOADING_FINISHED, Kind.VISIT_SEALED)
ALL_PRODUCTS = ""  # the product of a plan entered for the whole day


def local_day(at: str, tz: ZoneInfo) -> date:
    """The plant-local calendar day of a stored UTC time."""
    return parse_at(at).astimezone(tz).date()


def order(events: Iterable[Event]) -> list[Event]:
    """Events deduplicated by id in plant-timeline order (`timeline.order_key`: a visit's
    stages recorded on several terminals fold in the order they happened, the same on every
    node and on the receiver)."""
    unique = {ev.id: ev for ev in events}
    return sorted(unique.values(), key=order_key)


# --- what one day (or month) accumulates -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured wait: its length, whether it met the target, and how it ended.

    `status` is 'done' (the wait ended), 'open' (still waiting at the report's time),
    'cancelled' (the truck was cancelled, or left, while waiting) or 'unsealed' (a bulk truck
    that left unsealed).
    """

    ms: int
    within: bool
    status: str = "done"


@dataclass(slots=True)
class Packer:
    """One packer's tallies summed."""

    bags: int = 0
    returned: int = 0
    returned_over: int | None = None  # None until a tally carries the returned_over role
    over_bags: int = 0  # bags of the tallies that carry it
    broken: int = 0
    running_ms: int = 0
    kg: int = 0

    def merge(self, o: Packer) -> None:
        """Add another packer's (or day's) sums to this one."""
        self.bags += o.bags
        self.returned += o.returned
        if o.returned_over is not None:
            self.returned_over = (self.returned_over or 0) + o.returned_over
        self.over_bags += o.over_bags
        self.broken += o.broken
        self.running_ms += o.running_ms
        self.kg += o.kg


@dataclass(slots=True)
class Acc:
    """Everything a report is made of, for one day or the sum of several."""

    waits: dict[str, list[Sample]] = field(
        default_factory=lambda: {"weigh_wait": [], "bag_load_wait": [], "seal_lag": []}
    )
    turnaround: list[int] = field(default_factory=list)
    open_over_target: int = 0
    packers: dict[str, Packer] = field(default_factory=dict)
    loaded_kg: int = 0
    loaded_by_product: dict[str, int] = field(default_factory=dict)
    unmeasured_loads: int = 0
    arrivals_kg: int = 0
    arrivals_without_plan_kg: int = 0  # the arrivals of the days without a plan
    plan: dict[str, Decimal] | None = None  # tonnes by product; None without a plan
    days: int = 0
    days_with_plan: int = 0
    flags: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    window: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in windows.SERVICES})

    def merge(self, o: Acc) -> None:
        """Add another day's figures (a month is the sum of its days)."""
        for key, samples in o.waits.items():
            self.waits[key] += samples
        self.turnaround += o.turnaround
        self.open_over_target += o.open_over_target
        for name, p in o.packers.items():
            self.packers.setdefault(name, Packer()).merge(p)
        self.loaded_kg += o.loaded_kg
        for product, kg in o.loaded_by_product.items():
            self.loaded_by_product[product] = self.loaded_by_product.get(product, 0) + kg
        self.unmeasured_loads += o.unmeasured_loads
        self.arrivals_kg += o.arrivals_kg
        self.arrivals_without_plan_kg += o.arrivals_without_plan_kg
        if o.plan is not None:
            self.plan = self.plan or {}
            for product, t in o.plan.items():
                self.plan[product] = self.plan.get(product, Decimal(0)) + t
        self.days += o.days
        self.days_with_plan += o.days_with_plan
        for check, n in o.flags.items():
            self.flags[check] = self.flags.get(check, 0) + n
        for service, ms in o.window.items():
            self.window.setdefault(service, []).extend(ms)


# --- the engine -------------------------------------------------------------------------------


def compute(
    events: Iterable[Event],
    day: date,
    tz: ZoneInfo,
    cfg: KpiConfig,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The KPI report of `day` (plant-local in `tz`) from events of any number of terminals.

    A wait that met its target belongs to the day its end was recorded; a wait over its target
    belongs to the day it crossed the target, whether it ended, was cancelled or is still open
    at `as_of` (the report's time; default the end of the day). Durations use the monotonic
    clock when both ends share terminal, epoch and boot, else wall time. Returns the
    `tally kpi --json` object.
    """
    accs = _accumulate(events, [day], tz, cfg, as_of)
    return {"day": day.isoformat(), **report(accs[day], cfg)}


def compute_month(
    events: Iterable[Event],
    year: int,
    month: int,
    tz: ZoneInfo,
    cfg: KpiConfig,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Each day's report of the month and the month's totals (the sum of its days).

    Days after `as_of` (default: the end of the month) are left out. Returns the
    `tally kpi --month --json` object: {month, days: [day reports], totals, missed}.
    """
    first = date(year, month, 1)
    after = date(year + month // 12, month % 12 + 1, 1)
    days = [first + timedelta(days=i) for i in range((after - first).days)]
    if as_of is not None:
        days = [d for d in days if _start(d, tz) <= as_of]
    accs = _accumulate(events, days, tz, cfg, as_of)
    total = Acc()
    out = []
    for d in days:
        total.merge(accs[d])
        out.append({"day": d.isoformat(), **report(accs[d], cfg)})
    missed = {r["day"]: [name for name, met in met_by_kpi(r).items() if met is False] for r in out}
    return {
        "month": f"{year:04d}-{month:02d}",
        "days": out,
        "totals": report(total, cfg),
        "missed": {d: names for d, names in missed.items() if names},
    }


def met_by_kpi(r: dict[str, Any]) -> dict[str, bool | None]:
    """Every target of a report and whether it was met (None: no data)."""
    out = {
        name: r[name]["met"]
        for name in (
            "weigh_wait",
            "bag_load_wait",
            "bulk_turnaround",
            "seal_lag",
            "return_rate",
            "broken_rate",
            "packer_rate",
            "daily_completion",
        )
    }
    for service, w in r["window_wait"].items():
        out[f"window_wait.{service}"] = w["met"]
    return out


def _start(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(), tz)


def _accumulate(
    events: Iterable[Event], days: list[date], tz: ZoneInfo, cfg: KpiConfig, as_of: datetime | None
) -> dict[date, Acc]:
    ordered = order(events)
    fixes = collect_corrections(ordered)
    visits = fold_visits(ordered, fixes)
    accs = {d: Acc(days=1) for d in days}
    if not days:
        return accs
    end = _start(max(days) + timedelta(days=1), tz)
    # A past day is judged as it stood at its end, whenever the report is made.
    as_of = end if as_of is None else min(as_of, end)

    def acc_of(at: str) -> Acc | None:
        return accs.get(local_day(at, tz))

    captured: dict[str, Mark] = {}
    plans: dict[tuple[date, str], tuple[str, Decimal]] = {}
    for raw in ordered:
        if raw.kind == Kind.WEIGHING_CAPTURED:
            captured[str(raw.data.get("weighing"))] = Mark.of(raw)
        elif raw.kind == Kind.PLAN_SET:
            _take_plan(raw, plans)
        elif raw.kind == Kind.PACKER_TALLY:
            a = acc_of(raw.at)
            if a is not None:
                _add_tally(a, corrected(raw, fixes).data)
    for (plan_day, product), (_, tonnes) in plans.items():
        a = accs.get(plan_day)
        if a is not None:
            a.plan = a.plan or {}
            a.plan[product] = tonnes
    for a in accs.values():
        a.days_with_plan = int(a.plan is not None)

    weighing_day: dict[str, date] = {}
    waits = _Waits(accs, tz, as_of)
    for v in visits.values():
        for w in v.weighings:
            weighing_day[w.weighing] = local_day(w.mark.at, tz)
        _weigh_waits(v, captured, waits, cfg.weigh_wait_min)
        if v.load == "bagged":
            waits.add(
                "bag_load_wait",
                cfg.bag_load_wait_min,
                v.arrived or v.gate_in,
                v.loading_started,
                v.cancelled or v.exited,
            )
            _loaded(v, acc_of)
            if v.arrived and v.cancelled is None and (a := acc_of(v.arrived.at)):
                a.arrivals_kg += v.planned_kg
        elif v.load == "bulk":
            exited = v.exited if v.exited and parse_at(v.exited.at) <= as_of else None
            if v.gate_in and exited and (a := acc_of(exited.at)):
                a.turnaround.append(duration_ms(v.gate_in, exited))
            elif v.gate_in and exited is None and v.cancelled is None:
                crossing = waits.open_crossing(v.gate_in, cfg.bulk_turnaround_min)
                if crossing and (a := acc_of(crossing)):
                    a.open_over_target += 1
            if v.loading_finished:
                waits.add(
                    "seal_lag",
                    cfg.seal_lag_min,
                    v.loading_finished,
                    v.sealed,
                    v.exited or v.cancelled,
                    leaving_misses=v.cancelled is None,
                )
    for v in visits.values():
        for f in v.flags:
            flag_day = weighing_day.get(f.weighing, local_day(f.mark.at, tz))
            if (a := accs.get(flag_day)) is not None:
                a.flags[f.check] = a.flags.get(f.check, 0) + 1
    for d, a in accs.items():
        if a.plan is None:
            a.arrivals_without_plan_kg = a.arrivals_kg
        for service, samples in windows.window_samples(ordered, d, tz).items():
            a.window[service] = samples
    return accs


class _Waits:
    """Files each wait into the day it belongs to (see `compute`)."""

    def __init__(self, accs: dict[date, Acc], tz: ZoneInfo, as_of: datetime) -> None:
        self.accs, self.tz, self.as_of = accs, tz, as_of

    def open_crossing(self, start: Mark, target_min: float) -> str | None:
        """When a wait still open at the report's time crossed its target (None: not yet)."""
        crossing = parse_at(start.at) + timedelta(minutes=target_min)
        return crossing.isoformat() if crossing < self.as_of else None

    def add(
        self,
        key: str,
        target_min: float,
        start: Mark | None,
        end: Mark | None,
        left: Mark | None,
        *,
        leaving_misses: bool = False,
    ) -> None:
        """File one wait from `start` to `end`, or to `left` when the truck left instead.

        A truck that left before its target is not a measured wait, unless `leaving_misses`
        (a bulk truck leaving unsealed).
        """
        if start is None:
            return
        target_ms = round(target_min * 60_000)
        stop = end if end is not None else left
        if stop is not None and parse_at(stop.at) > self.as_of:
            end = left = stop = None  # it ended after the report's time: still open then
        if stop is not None:
            ms = max(0, duration_ms(start, stop))
            status = "done" if end is not None else "cancelled"
            if ms <= target_ms:
                if end is None and not leaving_misses:
                    return
                if end is None:
                    self._file(key, stop.at, Sample(ms, False, "unsealed"))
                else:
                    self._file(key, stop.at, Sample(ms, True))
                return
            if end is None and leaving_misses:
                status = "unsealed"
            # The wait crossed its target this long before it stopped.
            crossing = parse_at(stop.at) - timedelta(milliseconds=ms - target_ms)
            self._file(key, crossing.isoformat(), Sample(ms, False, status))
            return
        crossing_at = self.open_crossing(start, target_min)
        if crossing_at is not None:
            elapsed = self.as_of - parse_at(start.at)
            self._file(key, crossing_at, Sample(_ms(elapsed), False, "open"))

    def _file(self, key: str, at: str, sample: Sample) -> None:
        a = self.accs.get(local_day(at, self.tz))
        if a is not None:
            a.waits[key].append(sample)


def _weigh_waits(v: VisitState, captured: dict[str, Mark], waits: _Waits, target: float) -> None:
    """Every weighing of the visit, from the start of its wait to the scale's capture.

    The start is the recorded scale-queue event, else the latest of gate-in (arrival when
    gate-in is missing), loading finished, sealed and the previous weighing before it. A
    truck recorded in the queue and not yet weighed is an open wait.
    """
    anchor: Mark | None = None
    queued: Mark | None = None
    for _, ev in v.events:
        mark = Mark.of(ev)
        kind = ev.kind
        if kind in _ANCHORS or (kind == Kind.VISIT_ARRIVED and anchor is None):
            anchor = mark
        elif kind == Kind.VISIT_QUEUED_AT_SCALE:
            queued = mark
        elif kind == Kind.VISIT_WEIGHED:
            end = captured.get(str(ev.data.get("weighing"))) or mark
            waits.add("weigh_wait", target, queued or anchor, end, None)
            anchor, queued = end, None
    if queued is not None:
        waits.add("weigh_wait", target, queued, None, v.cancelled or v.exited)


def _loaded(v: VisitState, acc_of: Any) -> None:
    """The tonnes a finished bagged loading put on the truck, on the day it finished.

    Bags × bag mass as the loading recorded them; the net weight only when no bag count was
    recorded but both weighings exist. A cancelled visit loaded nothing.
    """
    if v.loading_finished is None or v.cancelled is not None:
        return
    a: Acc | None = acc_of(v.loading_finished.at)
    if a is None:
        return
    if v.bags is not None and v.bag_kg is not None:
        kg = v.bags * v.bag_kg
    elif v.net_kg is not None:
        kg = max(0, v.net_kg)
    else:
        a.unmeasured_loads += 1
        return
    a.loaded_kg += kg
    a.loaded_by_product[v.product] = a.loaded_by_product.get(v.product, 0) + kg


def _take_plan(ev: Event, plans: dict[tuple[date, str], tuple[str, Decimal]]) -> None:
    """The latest plan entered for a (day, product) wins (a new plan corrects the last)."""
    d = ev.data
    try:
        plan_day = date.fromisoformat(str(d.get("day")))
        tonnes = Decimal(str(d.get("tonnes")))
    except (ValueError, InvalidOperation):
        return  # rows stored before the input rule
    if not tonnes.is_finite() or tonnes < 0:
        return
    key = (plan_day, str(d.get("product") or ALL_PRODUCTS))
    earlier = plans.get(key)
    if earlier is None or earlier[0] <= ev.at:
        plans[key] = (ev.at, tonnes)


def _add_tally(a: Acc, d: dict[str, Any]) -> None:
    if d.get("kind") == "bulk":
        return  # a bulk loader's running time is not a packer's (台时产量 is per packer)
    p = a.packers.setdefault(str(d.get("packer", "")), Packer())
    n = _int(d.get("bags"))
    p.bags += n
    p.returned += _int(d.get("returned"))
    if "returned_over" in d:
        p.returned_over = (p.returned_over or 0) + _int(d.get("returned_over"))
        p.over_bags += n
    p.broken += _int(d.get("broken"))
    p.running_ms += _running_ms(d.get("running_s"))
    p.kg += n * _int(d.get("bag_kg"))


# --- the report -------------------------------------------------------------------------------


def report(a: Acc, cfg: KpiConfig) -> dict[str, Any]:
    """The JSON report of accumulated figures (a day's, or a month's totals)."""
    bag = a.waits["bag_load_wait"]
    bag_share = _share(bag)
    turnaround_mean = _minutes(sum(a.turnaround) / len(a.turnaround)) if a.turnaround else None
    plant = Packer()
    for p in a.packers.values():
        plant.merge(p)
    seal = _waits(a.waits["seal_lag"], cfg.seal_lag_min)
    seal["exited_unsealed"] = sum(1 for s in a.waits["seal_lag"] if s.status == "unsealed")
    rates = {name: _rates(p, cfg) for name, p in sorted(a.packers.items())}
    plant_rates = _rates(plant, cfg)
    packer_met = plant_rates["packer_rate"]["met"]
    if packer_met is not None:
        # The standard's 包装机台时 is per machine: the plant meets it when every packer does.
        packer_met = all(r["packer_rate"]["met"] is not False for r in rates.values())
    return {
        "weigh_wait": _waits(a.waits["weigh_wait"], cfg.weigh_wait_min),
        "bag_load_wait": {
            "count": len(bag),
            "within_target": _within(bag),
            "share": bag_share,
            "target_min": cfg.bag_load_wait_min,
            "target_share": cfg.bag_load_share,
            "met": None if bag_share is None else bag_share >= cfg.bag_load_share,
            "open": _status(bag, "open"),
            "cancelled": _status(bag, "cancelled"),
            "max_min": _max(bag),
        },
        "bulk_turnaround": {
            "count": len(a.turnaround),
            "mean_min": turnaround_mean,
            "target_min": cfg.bulk_turnaround_min,
            "met": None if turnaround_mean is None else turnaround_mean <= cfg.bulk_turnaround_min,
            "open_over_target": a.open_over_target,
        },
        "seal_lag": seal,
        "return_rate": {**plant_rates["return_rate"], "by_packer": _by(rates, "return_rate")},
        "broken_rate": {**plant_rates["broken_rate"], "by_packer": _by(rates, "broken_rate")},
        "packer_rate": {
            **plant_rates["packer_rate"],
            "met": packer_met,
            "by_packer": _by(rates, "packer_rate"),
        },
        "daily_completion": _completion(a, cfg),
        "flags": dict(a.flags),
        "window_wait": {
            service: _waits(
                [Sample(ms, windows.within_target(cfg, service, ms)) for ms in samples], t
            )
            for service, samples in a.window.items()
            for t in [windows.target_min(cfg, service)]
        },
    }


def _by(rates: dict[str, dict[str, dict[str, Any]]], key: str) -> dict[str, dict[str, Any]]:
    return {name: r[key] for name, r in rates.items()}


def _rates(p: Packer, cfg: KpiConfig) -> dict[str, dict[str, Any]]:
    """A packer's (or the plant's) return, broken and packing rates."""
    overweight = p.returned_over is not None and p.over_bags == p.bags
    returned = p.returned_over if overweight and p.returned_over is not None else p.returned
    return_rate = _ratio(returned, p.bags)
    broken_rate = _ratio(p.broken, p.bags)
    tonnes = p.kg / 1000
    running_h = p.running_ms / 3_600_000
    t_per_h = round(tonnes / running_h, 2) if p.running_ms else None
    return {
        "return_rate": {
            "bags": p.bags,
            "returned": returned,
            "value": return_rate,
            "target": cfg.return_rate_max,
            "met": None if return_rate is None else return_rate <= cfg.return_rate_max,
            "counts": "overweight" if overweight else "all",
        },
        "broken_rate": {
            "bags": p.bags,
            "broken": p.broken,
            "value": broken_rate,
            "target": cfg.broken_rate_max,
            "met": None if broken_rate is None else broken_rate <= cfg.broken_rate_max,
        },
        "packer_rate": {
            "tonnes": round(tonnes, 3),
            "running_h": round(running_h, 3),
            "running_ms": p.running_ms,
            "t_per_h": t_per_h,
            "target": cfg.packer_rate_tph,
            "met": None if t_per_h is None else t_per_h >= cfg.packer_rate_tph,
        },
    }


def _completion(a: Acc, cfg: KpiConfig) -> dict[str, Any]:
    """Tonnes loaded against the day's plan, or against the day's bagged arrivals without one."""
    if a.plan is None:
        basis, planned_kg = "arrivals", a.arrivals_kg
    else:
        planned_kg = int(sum(a.plan.values(), Decimal(0)) * 1000)
        basis = "plan"
        if a.days_with_plan < a.days:
            # A month where some days had no plan: their bagged arrivals stand in for it.
            basis = "plan+arrivals"
            planned_kg += a.arrivals_without_plan_kg
    value = _ratio(a.loaded_kg, planned_kg)
    by_product = {
        product: {
            "planned_t": float(t),
            "completed_t": round(a.loaded_by_product.get(product, 0) / 1000, 3),
        }
        for product, t in sorted((a.plan or {}).items())
        if product != ALL_PRODUCTS
    }
    return {
        "planned_t": round(planned_kg / 1000, 3),
        "completed_t": round(a.loaded_kg / 1000, 3),
        "value": value,
        "met": None if value is None else value >= cfg.daily_completion,
        "basis": basis,
        "fallback": basis != "plan",
        "unmeasured_loads": a.unmeasured_loads,
        "by_product": by_product,
    }


def _waits(samples: list[Sample], target_min: float) -> dict[str, Any]:
    within = _within(samples)
    return {
        "count": len(samples),
        "within_target": within,
        "share": _share(samples),
        "max_min": _max(samples),
        "target_min": target_min,
        "met": None if not samples else within == len(samples),
        "open": _status(samples, "open"),
        "cancelled": _status(samples, "cancelled"),
    }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # rows stored before the input rule
        return 0


def _running_ms(value: Any) -> int:
    """Seconds of running time (possibly fractional) as whole milliseconds."""
    try:
        ms = Decimal(str(value)) * 1000
    except (InvalidOperation, ValueError):
        return 0
    return int(ms.to_integral_value()) if ms.is_finite() and ms > 0 else 0


def _ms(delta: timedelta) -> int:
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _minutes(ms: float) -> float:
    return round(ms / 60_000, 2)


def _max(samples: list[Sample]) -> float | None:
    return _minutes(max(s.ms for s in samples)) if samples else None


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _within(samples: list[Sample]) -> int:
    return sum(1 for s in samples if s.within)


def _status(samples: list[Sample], status: str) -> int:
    return sum(1 for s in samples if s.status == status)


def _share(samples: list[Sample]) -> float | None:
    return _ratio(_within(samples), len(samples))

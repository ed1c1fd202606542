"""The service-standard KPIs of one plant-local day (issue 5), pure and shared with the receiver."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import KpiConfig
from agent.domain import window_services as windows
from agent.domain.corrections import collect_corrections, corrected
from agent.domain.events import Event, parse_at
from agent.domain.kinds import Kind
from agent.domain.marks import duration_ms
from agent.domain.timeline import order_key
from agent.domain.visit import fold_visits

CHECKS = ("tare_fluctuation", "underloaded", "bagged_overweight")


def local_day(at: str, tz: ZoneInfo) -> date:
    """The plant-local calendar day of a stored UTC time."""
    return parse_at(at).astimezone(tz).date()


def order(events: Iterable[Event]) -> list[Event]:
    """Events deduplicated by id in plant-timeline order (`timeline.order_key`: a visit's
    stages recorded on several terminals fold in the order they happened, the same on every
    node and on the receiver)."""
    unique = {ev.id: ev for ev in events}
    return sorted(unique.values(), key=order_key)


def compute(events: Iterable[Event], day: date, tz: ZoneInfo, cfg: KpiConfig) -> dict[str, Any]:
    """The KPI report of `day` (plant-local in `tz`) from events of any number of terminals.

    A measurement belongs to the day of the event that ends it; durations use the monotonic
    clock when both ends share terminal, epoch and boot, else wall time. Returns the
    `tally kpi --json` object.
    """
    ordered = order(events)
    fixes = collect_corrections(ordered)
    visits = fold_visits(ordered, fixes)
    bags = returned = broken = running_s = packed_kg = 0

    def on_day(at: str) -> bool:
        return local_day(at, tz) == day

    tally = Kind.PACKER_TALLY
    for raw in ordered:
        if raw.kind != tally or not on_day(raw.at):
            continue
        d = corrected(raw, fixes).data
        n = _int(d.get("bags"))
        bags += n
        returned += _int(d.get("returned"))
        broken += _int(d.get("broken"))
        running_s += _int(d.get("running_s"))
        packed_kg += n * _int(d.get("bag_kg"))

    weigh_waits: list[int] = []
    weighing_day: dict[str, date] = {}
    flagged: list[tuple[str, str, date]] = []  # (check, weighing, day of the flag event)
    for v in visits.values():
        for w in v.weighings:
            weighing_day[w.weighing] = local_day(w.mark.at, tz)
            if w.queued is not None and on_day(w.mark.at):
                weigh_waits.append(duration_ms(w.queued, w.mark))
        flagged.extend((f.check, f.weighing, local_day(f.mark.at, tz)) for f in v.flags)

    bag_load: list[int] = []
    turnaround: list[int] = []
    seal_lag: list[int] = []
    planned_kg = completed_kg = 0
    for v in visits.values():
        if v.load == "bagged":
            start, end = v.gate_in, v.loading_started
            if start and end and on_day(end.at):
                bag_load.append(duration_ms(start, end))
            if v.arrived and on_day(v.arrived.at) and v.cancelled is None:
                planned_kg += v.planned_kg
                finished = v.loading_finished
                if finished and local_day(finished.at, tz) == day:
                    completed_kg += v.planned_kg
        elif v.load == "bulk":
            if v.gate_in and v.exited and on_day(v.exited.at):
                turnaround.append(duration_ms(v.gate_in, v.exited))
            if v.loading_finished and v.sealed and on_day(v.sealed.at):
                seal_lag.append(duration_ms(v.loading_finished, v.sealed))

    flags = dict.fromkeys(CHECKS, 0)
    for check, weighing, flag_day in flagged:
        if weighing_day.get(weighing, flag_day) == day:
            flags[check] = flags.get(check, 0) + 1

    bag_share = _share(bag_load, cfg.bag_load_wait_min)
    turnaround_mean = _minutes(sum(turnaround) / len(turnaround)) if turnaround else None
    return_rate = _ratio(returned, bags)
    broken_rate = _ratio(broken, bags)
    tonnes = packed_kg / 1000
    running_h = running_s / 3600
    t_per_h = round(tonnes / running_h, 2) if running_s else None
    completion = _ratio(completed_kg, planned_kg)
    return {
        "day": day.isoformat(),
        "weigh_wait": _within(weigh_waits, cfg.weigh_wait_min),
        "bag_load_wait": {
            "count": len(bag_load),
            "within_target": _count_within(bag_load, cfg.bag_load_wait_min),
            "share": bag_share,
            "target_min": cfg.bag_load_wait_min,
            "target_share": cfg.bag_load_share,
            "met": None if bag_share is None else bag_share >= cfg.bag_load_share,
        },
        "bulk_turnaround": {
            "count": len(turnaround),
            "mean_min": turnaround_mean,
            "target_min": cfg.bulk_turnaround_min,
            "met": None if turnaround_mean is None else turnaround_mean <= cfg.bulk_turnaround_min,
        },
        "seal_lag": _within(seal_lag, cfg.seal_lag_min),
        "return_rate": {
            "bags": bags,
            "returned": returned,
            "value": return_rate,
            "target": cfg.return_rate_max,
            "met": None if return_rate is None else return_rate <= cfg.return_rate_max,
        },
        "broken_rate": {
            "bags": bags,
            "broken": broken,
            "value": broken_rate,
            "target": cfg.broken_rate_max,
            "met": None if broken_rate is None else broken_rate <= cfg.broken_rate_max,
        },
        "packer_rate": {
            "tonnes": round(tonnes, 3),
            "running_h": round(running_h, 3),
            "t_per_h": t_per_h,
            "target": cfg.packer_rate_tph,
            "met": None if t_per_h is None else t_per_h >= cfg.packer_rate_tph,
        },
        "daily_completion": {
            "planned_t": round(planned_kg / 1000, 3),
            "completed_t": round(completed_kg / 1000, 3),
            "value": completion,
            "met": None if completion is None else completion >= cfg.daily_completion,
        },
        "flags": flags,
        "window_wait": {
            service: _within(samples, windows.target_min(cfg, service))
            for service, samples in windows.window_samples(ordered, day, tz).items()
        },
    }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # rows stored before the input rule
        return 0


def _minutes(ms: float) -> float:
    return round(ms / 60_000, 2)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _count_within(samples: list[int], target_min: float) -> int:
    return sum(1 for ms in samples if ms <= target_min * 60_000)


def _share(samples: list[int], target_min: float) -> float | None:
    return _ratio(_count_within(samples, target_min), len(samples))


def _within(samples: list[int], target_min: float) -> dict[str, Any]:
    return {
        "count": len(samples),
        "within_target": _count_within(samples, target_min),
        "share": _share(samples, target_min),
        "max_min": _minutes(max(samples)) if samples else None,
        "target_min": target_min,
    }

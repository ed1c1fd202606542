"""Packing-line spot checks (pure): what is due, what is overdue, and bag-weight verdicts.

The standard (第十五条 3) schedules them: the crew (包装工段) weighs bags once after each packer's
start-up calibration and checks the print code every two hours; the quality office (质控处, `by`
"qc") checks bag weight and print code once per shift. Only a QC check satisfies a QC check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from agent.config import ChecksConfig
from agent.domain.events import Event, parse_at
from agent.domain.kinds import Kind
from agent.errors import Refused


class CheckError(Refused):
    """A spot-check entry was refused; the message is one clear sentence."""


@dataclass(frozen=True, slots=True)
class Due:
    """A spot check that is due on a packer."""

    packer: str
    check: str  # bag_weight | print_code
    reason: str  # calibrated | cold_start | interval (crew) | shift (qc)
    due_at: datetime
    overdue: bool
    by: str = "crew"  # crew | qc: who must do it

    @property
    def alert(self) -> str:
        """The name of the alert raised while it is overdue."""
        tail = ".qc" if self.by == "qc" else ""
        return f"check_overdue.{self.packer}.{self.check}{tail}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "packer": self.packer,
            "check": self.check,
            "reason": self.reason,
            "due_at": self.due_at.isoformat(),
            "overdue": self.overdue,
            "by": self.by,
        }


BY = ("crew", "qc")


def check_by(data: Mapping[str, Any]) -> str:
    """Who did a check event: 'qc' (the quality office) or 'crew' (older events have no `by`)."""
    return "qc" if data.get("by") == "qc" else "crew"


@dataclass(slots=True)
class _Packer:
    bag_kg: int = 50
    calibrated_at: datetime | None = None  # the last start-up calibration (mark or cold start)
    calibration: str = ""  # calibrated | cold_start
    stopped_at: datetime | None = None  # when the current stop began (None while running)
    active_since: datetime | None = None
    last_active: datetime | None = None
    running: bool = False
    bag_checked: datetime | None = None
    print_checked: datetime | None = None
    qc_bag_checked: datetime | None = None
    qc_print_checked: datetime | None = None
    history: list[str] = field(default_factory=list)
    samples: list[Decimal] = field(default_factory=list)
    sample_scale: str = ""
    samples_since: datetime | None = None  # the first collected sample's time


@dataclass(frozen=True, slots=True)
class Collected:
    """A packer whose bag scale has weighed enough bags for a bag-weight check."""

    packer: str
    scale: str
    samples_kg: tuple[Decimal, ...]


def bag_verdict(samples_kg: Sequence[Any], bag_kg: int, cfg: ChecksConfig) -> dict[str, Any]:
    """Judge a bag-weight check: every bag ≥ bag_kg − bag_min_pct %, ≤ bag_kg + bag_max_over_kg,
    and the mean ≥ bag_kg. Raises CheckError for entries that are not weights in kg."""
    if len(samples_kg) < cfg.bag_samples:
        raise CheckError(
            f"a bag-weight check needs {cfg.bag_samples} bags, {len(samples_kg)} given; weigh more bags"
        )
    weights: list[Decimal] = []
    for s in samples_kg:
        try:
            w = Decimal(str(s))
        except InvalidOperation:
            raise CheckError(f"bag weight {s!r} is not a number of kilograms") from None
        if isinstance(s, bool) or not w.is_finite() or not Decimal(0) < w < Decimal(bag_kg * 3):
            raise CheckError(f"bag weight {s!r} kg is not plausible for a {bag_kg} kg bag")
        weights.append(w.quantize(Decimal("0.01")))
    low = Decimal(bag_kg) * (1 - Decimal(str(cfg.bag_min_pct)) / 100)
    high = Decimal(bag_kg) + Decimal(str(cfg.bag_max_over_kg))
    mean = (sum(weights, Decimal(0)) / Decimal(len(weights))).quantize(Decimal("0.01"))
    under = [str(w) for w in weights if w < low]
    over = [str(w) for w in weights if w > high]
    ok = not under and not over and mean >= bag_kg
    return {
        "samples_kg": [float(w) for w in weights],
        "mean_kg": float(mean),
        "bag_kg": bag_kg,
        "result": "pass" if ok else "fail",
        "under": [float(Decimal(u)) for u in under],
        "over": [float(Decimal(o)) for o in over],
    }


def sample_weight(value: Any, bag_kg: int) -> Decimal | None:
    """A bag scale's sample in kg to 0.01 kg, or None when it cannot be a bag of `bag_kg`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        w = Decimal(str(value))
    except InvalidOperation:
        return None
    if not w.is_finite() or not Decimal(0) < w < Decimal(bag_kg * 3):
        return None
    return w.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


class SpotChecks:
    """Folds packer and check events; tells which checks are due at a given time.

    Bag-scale samples (`check.bag_sample`) collect per packer until a bag-weight check: one
    from the scale consumes the samples it lists, a typed one discards what was collected.
    A check judges one run of the packer in one shift, so samples from before a packer start
    or from an earlier shift are dropped.
    Events are folded once each, in seq order (`last_seq` skips ones already seen).
    """

    def __init__(self, cfg: ChecksConfig, tz: ZoneInfo, packers: Sequence[str] = ()) -> None:
        self.cfg = cfg
        self.tz = tz
        self.packers: dict[str, _Packer] = {p: _Packer() for p in packers}
        self.last_seq = 0

    def apply(self, ev: Event) -> None:
        """Fold one event (kinds other than packer.* and check.* are ignored)."""
        if ev.seq <= self.last_seq:
            return
        self.last_seq = ev.seq
        name = ev.data.get("packer") if isinstance(ev.data, dict) else None
        if not isinstance(name, str) or not (
            ev.kind.startswith("packer.") or ev.kind.startswith("check.")
        ):
            return
        p = self.packers.setdefault(name, _Packer())
        at = ev.when
        if ev.kind == Kind.PACKER_STARTED:
            p.samples.clear()
            # a start after a long stop (or the first start known) is a cold start: the crew
            # calibrates the packer and owes a bag-weight check, a short stop does not
            cold = timedelta(minutes=self.cfg.cold_start_min)
            if (p.stopped_at is None and not p.running) or (
                p.stopped_at is not None and at - p.stopped_at >= cold
            ):
                p.calibrated_at, p.calibration = at, "cold_start"
            p.stopped_at = None
            p.running = True
            p.active_since = p.active_since or at
            p.last_active = at
        elif ev.kind == Kind.PACKER_STOPPED:
            if p.running or p.stopped_at is None:
                since = ev.data.get("since")
                p.stopped_at = parse_at(since) if isinstance(since, str) else at
            p.running = False
        elif ev.kind == Kind.PACKER_CALIBRATED:
            p.calibrated_at, p.calibration = at, "calibrated"
        elif ev.kind == Kind.PACKER_TALLY:
            p.bag_kg = int(ev.data.get("bag_kg", p.bag_kg))
            if int(ev.data.get("bags", 0)) > 0:
                p.running = True
                p.active_since = p.active_since or at
                p.last_active = at
        elif ev.kind == Kind.CHECK_BAG_WEIGHT:
            if check_by(ev.data) == "qc":
                p.qc_bag_checked = at
                return
            p.bag_checked = at
            if ev.data.get("source") == "scale":
                del p.samples[: len(ev.data.get("samples_kg") or ())]
            else:
                p.samples.clear()
        elif ev.kind == Kind.CHECK_BAG_SAMPLE:
            w = sample_weight(ev.data.get("weight_kg"), p.bag_kg)
            if w is not None:
                if not p.samples or self.shift_start(p.samples_since or at) != self.shift_start(at):
                    p.samples.clear()
                    p.samples_since = at
                p.samples.append(w)
                p.sample_scale = str(ev.data.get("scale") or "")
        elif ev.kind == Kind.CHECK_PRINT_CODE:
            if check_by(ev.data) == "qc":
                p.qc_print_checked = at
            else:
                p.print_checked = at

    def collected(self) -> list[Collected]:
        """Packers with `bag_samples` samples collected: a bag-weight check to record now."""
        n = self.cfg.bag_samples
        return [
            Collected(name, p.sample_scale, tuple(p.samples[:n]))
            for name, p in sorted(self.packers.items())
            if len(p.samples) >= n
        ]

    def collecting(self, scales: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """Progress per packer that has a bag scale (`scales`: packer -> scale) or samples."""
        out: dict[str, dict[str, Any]] = {}
        for name, p in sorted(self.packers.items()):
            if name not in scales and not p.samples:
                continue
            out[name] = {
                "samples": len(p.samples),
                "needed": self.cfg.bag_samples,
                "scale": p.sample_scale or scales.get(name, ""),
                "samples_kg": [float(w) for w in p.samples],
            }
        return out

    def shift_start(self, now: datetime) -> datetime:
        """The start (UTC) of the plant-local shift that contains `now`."""
        local = now.astimezone(self.tz)
        starts: list[datetime] = []
        for day_offset in (-1, 0):
            d = local.date() + timedelta(days=day_offset)
            for s in self.cfg.shift_starts:
                hh, mm = (int(x) for x in s.split(":"))
                starts.append(datetime.combine(d, time(hh, mm), self.tz))
        return max(s for s in starts if s <= local).astimezone(now.tzinfo)

    def due(self, now: datetime) -> list[Due]:
        """Every check due at `now` (UTC), oldest first.

        Crew: a bag-weight check after each calibration or cold start, a print-code check every
        `print_code_every_h` while running (overdue after `grace_min`). Quality office: one
        bag-weight and one print-code check per shift on each packer that ran in it, overdue
        `qc_within_h` after the packer first ran in the shift.
        """
        grace = timedelta(minutes=self.cfg.grace_min)
        qc_grace = timedelta(hours=self.cfg.qc_within_h)
        out: list[Due] = []
        shift = self.shift_start(now)
        for name, p in sorted(self.packers.items()):
            cal = p.calibrated_at
            if cal is not None and (p.bag_checked is None or p.bag_checked < cal):
                out.append(Due(name, "bag_weight", p.calibration, cal, now > cal + grace))
            if p.running and p.active_since is not None:
                base = p.print_checked or p.active_since
                due_at = base + timedelta(hours=self.cfg.print_code_every_h)
                if p.print_checked is None:
                    due_at = p.active_since
                if due_at <= now:
                    out.append(Due(name, "print_code", "interval", due_at, now > due_at + grace))
            if p.last_active is None or p.last_active < shift:
                continue  # the packer has not run in this shift: the quality office owes nothing
            since = max(shift, p.active_since or shift)
            for check, done in (
                ("bag_weight", p.qc_bag_checked),
                ("print_code", p.qc_print_checked),
            ):
                if done is None or done < shift:
                    out.append(Due(name, check, "shift", since, now > since + qc_grace, "qc"))
        return sorted(out, key=lambda d: (d.due_at, d.by, d.check))

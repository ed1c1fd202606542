"""Pure views: the daemon's live state and a time in, rows of (text, tone) cells out.

Nothing here decides anything about a visit or a packer: it formats what the daemon published
and colours each figure against the target the daemon's KPI report names (or the standard's
default when no report has arrived yet). Missing topics or fields become "—", never an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from agent.config import BoardConfig
from tui.i18n import Words

NONE = "—"

# The service standard's defaults (docs/visits-and-kpis.md), used until a `kpi` report arrives.
DEFAULT_TARGETS: dict[str, float] = {
    "weigh_wait": 10.0,
    "bag_load_wait": 120.0,
    "bulk_turnaround": 60.0,
    "seal_lag": 10.0,
    "return_rate": 0.05,
    "broken_rate": 0.03,
    "packer_rate": 100.0,
}
DECIMAL_DEFAULTS = {k: Decimal(str(v)) for k, v in DEFAULT_TARGETS.items()}
SCALE_QUEUE_STAGES = ("scale_queue", "queued_at_scale", "queued")
GATED_STAGES = ("gated_in", "gate_in", "tared")
WARN_SHARE = Decimal("0.8")  # the default share of a target past which a wait is a warning


@dataclass(frozen=True, slots=True)
class Cell:
    """One figure on screen and how it reads against its target: '', ok, warn, bad or dim."""

    text: str
    tone: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    """A table row: a stable key (visit id, packer name...) and its cells."""

    key: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class ScaleView:
    """The live weight and what is said of it: all that a weight message changes."""

    scale: str | None
    weight: str
    unit: str
    tags: tuple[Cell, ...]
    last: str


@dataclass(frozen=True, slots=True)
class WeighbridgeView:
    """Everything the weighbridge pane shows."""

    scale: str | None
    weight: str
    unit: str
    tags: tuple[Cell, ...]
    last: str
    deck: tuple[Cell, ...]
    flags: tuple[str, ...]
    queue: tuple[Row, ...]
    unassigned: str
    target_min: str
    notices: tuple[Row, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadingView:
    """Packers and loading points."""

    packers: tuple[Row, ...]
    points: tuple[Row, ...]
    checks: tuple[Row, ...] = ()


@dataclass(frozen=True, slots=True)
class YardView:
    """Every open visit."""

    title: str
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class TodayView:
    """The day's KPI report against the standard."""

    title: str
    rows: tuple[Row, ...]
    flags: str
    plan: str = ""


@dataclass(frozen=True, slots=True)
class HealthView:
    """Devices, sync, the agent and alerts."""

    devices: tuple[Row, ...]
    status: tuple[Row, ...]
    alerts: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class BoardView:
    """The drivers' board."""

    gate: tuple[Row, ...]
    scale: tuple[Row, ...]
    stopped: tuple[Row, ...]
    notices: tuple[Row, ...] = field(default=())


# --- small formatters -----------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def list_of(value: Any, key: str) -> list[Any]:
    """`value[key]` when value is a dict holding a list there, else an empty list."""
    return _list(_dict(value).get(key))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _num(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int | float | str):
        with contextlib.suppress(ArithmeticError, ValueError):
            d = Decimal(str(value))
            return d if d.is_finite() else None
    return None


def text(value: Any) -> str:
    """A value as text, '—' when absent."""
    if value is None or value == "":
        return NONE
    return str(value)


def kg(value: Any) -> str:
    """Kilograms with thousands separators, '—' when absent."""
    d = _num(value)
    if d is None:
        return NONE
    return f"{d.quantize(Decimal(1), ROUND_HALF_UP):,}"


def fixed(value: Any, places: int = 1) -> str:
    """A number with `places` decimals, '—' when absent."""
    d = _num(value)
    if d is None:
        return NONE
    return f"{d.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):,}"


def pct(rate: Any, places: int = 1) -> str:
    """A ratio (0.05) as a percentage ('5.0 %'), '—' when absent."""
    d = _num(rate)
    if d is None:
        return NONE
    return f"{(d * 100).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)} %"


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time with a zone, or None."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at.astimezone(UTC) if at.tzinfo else None


def minutes_since(value: Any, now: datetime) -> Decimal | None:
    """Whole minutes from an ISO time to `now` (never negative), or None."""
    at = parse_time(value)
    if at is None:
        return None
    seconds = max(0, int((now - at).total_seconds()))
    return Decimal(seconds // 60)


def clock(value: Any, tz: tzinfo) -> str:
    """An ISO time as local HH:MM, '—' when absent."""
    at = parse_time(value)
    return at.astimezone(tz).strftime("%H:%M") if at else NONE


def tone_max(value: Decimal | None, limit: Decimal | None, share: Decimal = WARN_SHARE) -> str:
    """Tone of a figure that must stay at or under `limit` (waits, rates): a warning from
    `share` of the limit on."""
    if value is None or limit is None:
        return ""
    if value > limit:
        return "bad"
    if limit > 0 and value >= limit * share:
        return "warn"
    return "ok"


def tone_min(value: Decimal | None, floor: Decimal | None) -> str:
    """Tone of a figure that must reach `floor` (throughput, completion)."""
    if value is None or floor is None:
        return ""
    return "ok" if value >= floor else "bad"


def targets(states: Mapping[str, Any]) -> dict[str, Decimal]:
    """The targets the daemon's KPI report names, else the standard's defaults."""
    kpi = _dict(states.get("kpi"))
    out = {k: Decimal(str(v)) for k, v in DEFAULT_TARGETS.items()}
    for key in ("weigh_wait", "bag_load_wait", "bulk_turnaround", "seal_lag"):
        d = _num(_dict(kpi.get(key)).get("target_min"))
        if d is not None:
            out[key] = d
    for key in ("return_rate", "broken_rate", "packer_rate"):
        d = _num(_dict(kpi.get(key)).get("target"))
        if d is not None:
            out[key] = d
    return out


def warn_share(states: Mapping[str, Any]) -> Decimal:
    """The share of its target past which a running wait is a warning: the daemon's
    `[kpi] warn_share` (the share its `late.*` warnings use, in the kpi state), else 80 %."""
    d = _num(_dict(states.get("kpi")).get("warn_share"))
    return d if d is not None and 0 < d <= 1 else WARN_SHARE


def wait_cell(
    minutes: Decimal | None,
    target: Decimal | None,
    w: Words | None = None,
    share: Decimal = WARN_SHARE,
) -> Cell:
    """'12/10' minutes against a target, coloured (a warning from `share` of the target on);
    with words also the time left ('8/10 2 left') or over ('12/10 2 over')."""
    if minutes is None:
        return Cell(NONE, "dim")
    shown = f"{minutes}/{target.normalize():f}" if target is not None else f"{minutes}"
    if w is not None and target is not None:
        left = target - minutes
        n = f"{abs(left).normalize():f}"
        shown += " " + (w("wait.left", n=n) if left >= 0 else w("wait.over", n=n))
    return Cell(shown, tone_max(minutes, target, share))


def stage_text(w: Words, stage: Any) -> str:
    """A stage name in the operator's language (unknown stages as the daemon spells them)."""
    return w.maybe(f"stage.{stage}", text(stage))


def load_text(w: Words, load: Any) -> str:
    """bagged/bulk in the operator's language."""
    return w.maybe(f"load.{load}", text(load))


def flags_text(w: Words, visit: Mapping[str, Any]) -> str:
    """The checks raised on a visit, translated, comma separated ('' when none)."""
    names = [
        w.maybe(f"check.{_dict(f).get('check')}", text(_dict(f).get("check")))
        for f in _list(visit.get("flags"))
    ]
    return ", ".join(names)


def scale_names(states: Mapping[str, Any]) -> list[str]:
    """The truck scales the daemon publishes, by name (bag scales belong to the Loading pane)."""
    return sorted(
        t.split(".", 1)[1]
        for t, v in states.items()
        if t.startswith("scale.") and _dict(v).get("role") != "bags"
    )


def packer_names(states: Mapping[str, Any]) -> list[str]:
    """The packers the daemon publishes, by name."""
    return sorted(t.split(".", 1)[1] for t in states if t.startswith("packer."))


def visits(states: Mapping[str, Any], part: str) -> list[dict[str, Any]]:
    """One list of the `visits` topic (open, queue, scale_queue, unassigned), dicts only."""
    return [v for v in _list(_dict(states.get("visits")).get(part)) if isinstance(v, dict)]


def _weighing_text(weighing: Mapping[str, Any], tz: tzinfo) -> str:
    return f"{kg(weighing.get('weight_kg'))} kg {clock(weighing.get('at'), tz)}"


# --- the exception board -----------------------------------------------------------------


def notice_texts(board: BoardConfig, language: str) -> dict[str, str]:
    """What the plant's `[board]` tells a driver, by flag (or `scale_offline`,
    `printer_offline`), in `language`."""
    suffix = "_en" if language == "en" else "_zh"
    return {
        name.removesuffix(suffix): str(getattr(board, name))
        for name in BoardConfig.__dataclass_fields__
        if name.endswith(suffix)
    }


def exceptions(states: Mapping[str, Any], texts: Mapping[str, str], w: Words) -> tuple[Row, ...]:
    """What drivers must do now: a truck scale that is not weighing, a ticket printer that is
    down, then each flag of each truck in the plant (plate, what was found, what to do next,
    in the plant's words from `texts`)."""
    rows = []
    for name in scale_names(states):
        if _dict(states.get(f"scale.{name}")).get("online") is False:
            rows.append(
                Row(
                    f"scale:{name}",
                    (
                        Cell(name, "bad"),
                        Cell(w("notice.scale_offline")),
                        Cell(texts.get("scale_offline", "")),
                    ),
                )
            )
    for a in _list(_dict(states.get("alerts")).get("active")):
        if _dict(a).get("alert") == "printer_offline":
            rows.append(
                Row(
                    "printer_offline",
                    (
                        Cell(w("notice.printer"), "bad"),
                        Cell(w("notice.printer_offline")),
                        Cell(texts.get("printer_offline", "")),
                    ),
                )
            )
            break
    for v in visits(states, "open"):
        for f in _list(v.get("flags")):
            check, detail = text(_dict(f).get("check")), _dict(f).get("detail")
            found = w.maybe(f"check.{check}", check) + (f" ({detail})" if detail else "")
            rows.append(
                Row(
                    f"{text(v.get('visit'))}:{check}",
                    (
                        Cell(text(v.get("plate")), "bad"),
                        Cell(found),
                        Cell(texts.get(check) or w("notice.see_office")),
                    ),
                )
            )
    return tuple(rows)


# --- panes ----------------------------------------------------------------------------------


def scale_view(states: Mapping[str, Any], tz: tzinfo, w: Words) -> ScaleView:
    """The first scale's live weight, its tags and its last weighing."""
    names = scale_names(states)
    name = names[0] if names else None
    scale = _dict(states.get(f"scale.{name}")) if name else {}
    online = scale.get("online") is True
    weight = kg(scale.get("weight")) if online else NONE
    tags: list[Cell] = []
    if name is None:
        if states:  # connected and the daemon has no scale (no state at all: nothing to say)
            tags.append(Cell(w("scale.none"), "dim"))
    else:
        tags.append(Cell(name))
        tags.append(Cell(w("scale.online"), "ok") if online else Cell(w("scale.offline"), "bad"))
        if online:
            stable = scale.get("stable")
            if stable is True:
                tags.append(Cell(w("scale.stable"), "ok"))
            elif stable is False:
                tags.append(Cell(w("scale.moving"), "warn"))
            state = scale.get("state")
            if isinstance(state, str):
                tags.append(Cell(w.maybe(f"scale.state.{state}", state)))
    last_w = _dict(scale.get("last_weighing"))
    last = f"{w('scale.last')}: {_weighing_text(last_w, tz)}" if last_w else ""
    return ScaleView(
        scale=name,
        weight=weight,
        unit=text(scale.get("unit")) if online else "",
        tags=tuple(tags),
        last=last,
    )


def weighbridge(
    states: Mapping[str, Any],
    now: datetime,
    tz: tzinfo,
    w: Words,
    texts: Mapping[str, str] | None = None,
) -> WeighbridgeView:
    """The live weight, the truck on the deck, checks raised (with what the driver must do,
    from `texts`), and the scale queue."""
    sv = scale_view(states, tz, w)
    t, share = targets(states), warn_share(states)
    queue_rows = []
    for i, v in enumerate(visits(states, "scale_queue"), 1):
        queue_rows.append(
            Row(
                text(v.get("visit") or v.get("plate")),
                (
                    Cell(str(i)),
                    Cell(text(v.get("plate"))),
                    Cell(text(v.get("product"))),
                    Cell(load_text(w, v.get("load"))),
                    Cell(stage_text(w, v.get("stage"))),
                    wait_cell(minutes_since(v.get("stage_since"), now), t["weigh_wait"], w, share),
                    Cell(flags_text(w, v), "bad"),
                ),
            )
        )
    head = visits(states, "scale_queue")[:1]
    deck: tuple[Cell, ...]
    if head:
        v = head[0]
        deck = (
            Cell(text(v.get("plate"))),
            Cell(text(v.get("order"))),
            Cell(text(v.get("product"))),
            Cell(load_text(w, v.get("load"))),
            Cell(f"{w('col.planned')} {kg(v.get('planned_kg'))}"),
            Cell(f"{w('col.tare')} {kg(v.get('tare_kg'))}"),
            Cell(f"{w('col.net')} {kg(v.get('net_kg'))}"),
        )
    else:
        deck = (Cell(w("deck.empty"), "dim"),)
    flags = []
    for v in visits(states, "open"):
        for f in _list(v.get("flags")):
            f = _dict(f)
            check = w.maybe(f"check.{f.get('check')}", text(f.get("check")))
            detail = f.get("detail")
            flags.append(f"{text(v.get('plate'))} {check}" + (f": {detail}" if detail else ""))
    unassigned = visits(states, "unassigned")
    un_text = ""
    if unassigned:
        shown = "  ".join(_weighing_text(u, tz) for u in unassigned[-3:])
        un_text = f"{w('scale.unassigned')} ({len(unassigned)}): {shown}"
    return WeighbridgeView(
        scale=sv.scale,
        weight=sv.weight,
        unit=sv.unit,
        tags=sv.tags,
        last=sv.last,
        deck=deck,
        flags=tuple(flags),
        queue=tuple(queue_rows),
        unassigned=un_text,
        target_min=f"{t['weigh_wait'].normalize():f}",
        notices=exceptions(states, texts, w) if texts is not None else (),
    )


def loading(states: Mapping[str, Any], now: datetime, w: Words, tz: tzinfo = UTC) -> LoadingView:
    """Each packer against its targets, and each loading point's truck."""
    t = targets(states)
    rows = []
    bag_kg: dict[str, Decimal] = {}
    for name in packer_names(states):
        p = _dict(states.get(f"packer.{name}"))
        last15 = _dict(p.get("last15"))
        stopped = _dict(p.get("stopped"))
        bk = _num(p.get("bag_kg"))
        if bk:
            bag_kg[name] = bk
        if p.get("online") is False:
            state = Cell(w("packer.offline"), "bad")
        elif p.get("running") is True:
            state = Cell(w("packer.running"), "ok")
        elif p.get("running") is False:
            state = Cell(w("packer.stopped"), "bad")
        else:
            state = Cell(NONE, "dim")
        t_h = _num(last15.get("t_h"))
        ret = _num(last15.get("return_rate"))
        brk = _num(last15.get("broken_rate"))
        repair = stopped.get("expected_repair_min")
        rows.append(
            Row(
                name,
                (
                    Cell(name),
                    state,
                    Cell(fixed(last15.get("bags_h"), 0)),
                    Cell(
                        f"{fixed(t_h)}/{t['packer_rate'].normalize():f}",
                        tone_min(t_h, t["packer_rate"]),
                    ),
                    Cell(f"{pct(ret)}/{pct(t['return_rate'], 0)}", tone_max(ret, t["return_rate"])),
                    Cell(f"{pct(brk)}/{pct(t['broken_rate'], 0)}", tone_max(brk, t["broken_rate"])),
                    Cell(text(stopped.get("reason")) if stopped else ""),
                    Cell(w("repair.min", n=repair) if isinstance(repair, int) else ""),
                ),
            )
        )
    points = []
    for v in visits(states, "open"):
        if v.get("point") in (None, "") or v.get("stage") not in ("loading", "loaded"):
            continue
        point = str(v["point"])
        planned_bags = _num(v.get("planned_bags") or _dict(v.get("counter")).get("planned_bags"))
        planned_kg = _num(v.get("planned_kg"))
        if planned_bags is None and planned_kg is not None and v.get("load") == "bagged":
            per_bag = bag_kg.get(point, Decimal(50))
            planned_bags = (planned_kg / per_bag).to_integral_value(ROUND_HALF_UP)
        bags = _num(v.get("bags") if v.get("bags") is not None else v.get("counted_bags"))
        tone = "ok" if bags is not None and planned_bags and bags >= planned_bags else ""
        points.append(
            Row(
                text(v.get("visit") or v.get("plate")),
                (
                    Cell(point),
                    Cell(text(v.get("plate"))),
                    Cell(text(v.get("product"))),
                    Cell(f"{kg(bags)}/{kg(planned_bags)}", tone),
                    Cell(stage_text(w, v.get("stage"))),
                    wait_cell(minutes_since(v.get("stage_since"), now), None),
                ),
            )
        )
    checks = []
    collecting = []
    for packer, c in sorted(_dict(_dict(states.get("checks")).get("collecting")).items()):
        c = _dict(c)
        n = c.get("samples")
        if not isinstance(n, int) or n <= 0:
            continue  # a bag scale waiting for its first bag says nothing yet
        last = _list(c.get("samples_kg"))[-1:]
        doing = w("check.collecting") + (f" {fixed(last[0], 2)} kg" if last else "")
        collecting.append(
            Row(
                f"{text(packer)}:collecting",
                (
                    Cell(text(packer)),
                    Cell(w("check.bag_weight")),
                    Cell(w("check.from_scale", scale=text(c.get("scale")))),
                    Cell(f"{n}/{text(c.get('needed'))}"),
                    Cell(doing, "warn"),
                ),
            )
        )
    for d in _list(_dict(states.get("checks")).get("due")):
        if not isinstance(d, dict):
            continue
        overdue = d.get("overdue") is True
        checks.append(
            Row(
                f"{text(d.get('packer'))}:{text(d.get('check'))}",
                (
                    Cell(text(d.get("packer"))),
                    Cell(w.maybe(f"check.{d.get('check')}", text(d.get("check")))),
                    Cell(w.maybe(f"check.{d.get('reason')}", text(d.get("reason")))),
                    Cell(clock(d.get("due_at"), tz)),
                    Cell(w("check.overdue"), "bad") if overdue else Cell(w("check.due"), "warn"),
                ),
            )
        )
    return LoadingView(tuple(rows), tuple(points), tuple(checks + collecting))


def stage_target(visit: Mapping[str, Any], t: Mapping[str, Decimal]) -> Decimal | None:
    """The standard's target for the stage a visit is in (None where the standard sets none)."""
    stage, load = visit.get("stage"), visit.get("load")
    if stage in SCALE_QUEUE_STAGES:
        return t["weigh_wait"]
    if load == "bagged" and stage in GATED_STAGES:
        return t["bag_load_wait"]
    if load == "bulk" and stage == "loaded":
        return t["seal_lag"]
    if load == "bulk" and stage in (*GATED_STAGES, "loading", "weighed", "sealed"):
        return t["bulk_turnaround"]
    return None


def stage_clock(visit: Mapping[str, Any]) -> Any:
    """When the measured span began: gate-in for the loading wait and turnaround, else the stage."""
    t = stage_target(visit, DECIMAL_DEFAULTS)
    if t is not None and visit.get("stage") not in (*SCALE_QUEUE_STAGES, "loaded"):
        return visit.get("gate_in_at") or visit.get("stage_since")
    return visit.get("stage_since")


def yard(states: Mapping[str, Any], now: datetime, w: Words) -> YardView:
    """Every visit in the plant with its stage and time in it against the stage's target."""
    t, share = targets(states), warn_share(states)
    rows = []
    for v in visits(states, "open"):
        rows.append(
            Row(
                text(v.get("visit") or v.get("plate")),
                (
                    Cell(text(v.get("plate"))),
                    Cell(text(v.get("order"))),
                    Cell(text(v.get("product"))),
                    Cell(load_text(w, v.get("load"))),
                    Cell(stage_text(w, v.get("stage"))),
                    wait_cell(minutes_since(stage_clock(v), now), stage_target(v, t), w, share),
                    Cell(flags_text(w, v), "bad"),
                ),
            )
        )
    title = w("yard.title", n=len(rows), q=len(visits(states, "queue")))
    return YardView(title, tuple(rows))


def _met(w: Words, value: Any) -> Cell:
    if value is True:
        return Cell(w("met.yes"), "ok")
    if value is False:
        return Cell(w("met.no"), "bad")
    return Cell(NONE, "dim")


def today_day(states: Mapping[str, Any], now: datetime, tz: tzinfo) -> str:
    """The day the Today pane shows (its report's), else the plant-local date of `now`."""
    day = _dict(states.get("kpi")).get("day")
    return day if isinstance(day, str) and day else now.astimezone(tz).date().isoformat()


def plan_text(done: Mapping[str, Any], w: Words) -> str:
    """The day's plan and what was loaded against it, or that no plan was entered."""
    if done.get("basis") not in ("plan", "plan+arrivals"):
        return w("today.no_plan", planned=fixed(done.get("planned_t")))
    products = [
        w(
            "today.plan_product",
            product=product,
            planned=fixed(_dict(p).get("planned_t")),
            completed=fixed(_dict(p).get("completed_t")),
        )
        for product, p in sorted(_dict(done.get("by_product")).items())
    ]
    return w(
        "today.plan",
        planned=fixed(done.get("planned_t")),
        products=f" ({', '.join(products)})" if products else "",
        completed=fixed(done.get("completed_t")),
        share=pct(done.get("value"), 0),
    )


def today(states: Mapping[str, Any], w: Words) -> TodayView:
    """The `kpi` report, one row per measure of the standard."""
    kpi = _dict(states.get("kpi"))
    if not kpi:
        return TodayView(w("today.none"), (), "")

    def part(key: str) -> dict[str, Any]:
        return _dict(kpi.get(key))

    def share_row(key: str) -> Row:
        p = part(key)
        share = _num(p.get("share"))
        met = p.get("met")
        if met is None and share is not None:
            met = share >= Decimal(str(p.get("target_share", 1)))
        value = f"{pct(share, 0)} ({text(p.get('within_target'))}/{text(p.get('count'))})"
        if p.get("max_min") is not None:
            value += f" max {fixed(p.get('max_min'), 0)}"
        target = f"≤ {fixed(p.get('target_min'), 0)} min"
        if p.get("target_share") is not None:
            target += f" ≥ {pct(p.get('target_share'), 0)}"
        return Row(key, (Cell(w(f"kpi.{key}")), Cell(value), Cell(target), _met(w, met)))

    def rate_row(key: str, part_key: str) -> Row:
        p = part(key)
        value = f"{pct(p.get('value'))} ({text(p.get(part_key))}/{text(p.get('bags'))})"
        return Row(
            key,
            (
                Cell(w(f"kpi.{key}")),
                Cell(value),
                Cell(f"≤ {pct(p.get('target'), 0)}"),
                _met(w, p.get("met")),
            ),
        )

    bulk = part("bulk_turnaround")
    rate = part("packer_rate")
    done = part("daily_completion")
    rows = [
        share_row("weigh_wait"),
        share_row("bag_load_wait"),
        Row(
            "bulk_turnaround",
            (
                Cell(w("kpi.bulk_turnaround")),
                Cell(f"{fixed(bulk.get('mean_min'))} min ({text(bulk.get('count'))})"),
                Cell(f"≤ {fixed(bulk.get('target_min'), 0)} min"),
                _met(w, bulk.get("met")),
            ),
        ),
        share_row("seal_lag"),
        rate_row("return_rate", "returned"),
        rate_row("broken_rate", "broken"),
        Row(
            "packer_rate",
            (
                Cell(w("kpi.packer_rate")),
                Cell(f"{fixed(rate.get('t_per_h'))} t/h ({fixed(rate.get('tonnes'))} t)"),
                Cell(f"≥ {fixed(rate.get('target'), 0)} t/h"),
                _met(w, rate.get("met")),
            ),
        ),
        Row(
            "daily_completion",
            (
                Cell(w("kpi.daily_completion")),
                Cell(
                    f"{pct(done.get('value'), 0)} "
                    f"({fixed(done.get('completed_t'))}/{fixed(done.get('planned_t'))} t)"
                ),
                Cell("100 %"),
                _met(w, done.get("met")),
            ),
        ),
    ]
    for service, p in sorted(_dict(kpi.get("window_wait")).items()):
        p = _dict(p)
        count = p.get("count")
        if not isinstance(count, int) or count == 0:
            continue  # a window nobody came to today takes no line on a small screen
        share = _num(p.get("share"))
        rows.append(
            Row(
                f"window_wait.{service}",
                (
                    Cell(w("kpi.window", service=w.maybe(f"service.{service}", str(service)))),
                    Cell(
                        f"{pct(share, 0)} ({text(p.get('within_target'))}/{count})"
                        f" max {fixed(p.get('max_min'), 0)}"
                    ),
                    Cell(f"≤ {fixed(p.get('target_min'), 0)} min"),
                    _met(w, p.get("within_target") == count),
                ),
            )
        )
    flags = _dict(kpi.get("flags"))
    flag_text = "  ".join(f"{w.maybe(f'check.{k}', k)} {v}" for k, v in sorted(flags.items()))
    return TodayView(
        w("today.title", day=text(kpi.get("day"))),
        tuple(rows),
        w("kpi.flags", text=flag_text or "0"),
        plan_text(done, w),
    )


def health(states: Mapping[str, Any], tz: tzinfo, w: Words) -> HealthView:
    """Devices, the sync backlog, the agent's own health and active alerts."""
    devices = []
    for name, d in sorted(_dict(states.get("devices")).items()):
        d = _dict(d)
        online = d.get("online")
        devices.append(
            Row(
                str(name),
                (
                    Cell(str(name)),
                    Cell(text(d.get("kind"))),
                    Cell(w("online"), "ok")
                    if online is True
                    else Cell(w("offline"), "bad")
                    if online is False
                    else Cell(NONE, "dim"),
                    Cell(text(d.get("reason"))),
                    Cell(clock(d.get("since"), tz)),
                ),
            )
        )
    sync = _dict(states.get("sync"))
    h = _dict(states.get("health"))
    status: list[Row] = []

    def add(key: str, value: str, tone: str = "") -> None:
        status.append(Row(key, (Cell(w(key)), Cell(value, tone))))

    if sync.get("enabled") is False:
        add("sync.state", w("sync.disabled"), "dim")
    else:
        state = sync.get("state")
        add("sync.state", text(state), "bad" if sync.get("last_error") else "")
        backlog = _num(sync.get("backlog"))
        add("sync.backlog", text(sync.get("backlog")), "warn" if backlog else "")
        add("sync.oldest", fixed(sync.get("oldest_unsent_s"), 0))
        add("sync.acked", text(sync.get("acked_through")))
        add("sync.last_ack", clock(sync.get("last_ack_at"), tz))
        add("sync.error", text(sync.get("last_error")), "bad" if sync.get("last_error") else "")
        dead = _num(sync.get("dead_letters"))
        add("sync.dead", text(sync.get("dead_letters")), "bad" if dead else "")
    for peer in _list(_dict(states.get("replicas")).get("peers")):
        peer = _dict(peer)
        state = text(peer.get("state"))
        value = (
            f"{state}, {w('replica.lag')} {fixed(peer.get('lag_s'), 0)} s, "
            f"{text(peer.get('events_behind'))} {w('replica.behind')}, "
            f"{w('replica.contact')} {clock(peer.get('last_contact'), tz)}"
        )
        tone = "bad" if peer.get("state") == "unreachable" else ""
        key = f"replica.{text(peer.get('name'))}"
        status.append(
            Row(key, (Cell(f"{w('replica')} {text(peer.get('name'))}"), Cell(value, tone)))
        )
    add("health.version", text(h.get("version")))
    uptime = _num(h.get("uptime_s"))
    add(
        "health.uptime",
        f"{int(uptime) // 3600}h{int(uptime) % 3600 // 60:02d}m" if uptime is not None else NONE,
    )
    add("health.disk", kg(h.get("disk_free_mb")), "bad" if h.get("disk_full") else "")
    offset = _num(h.get("clock_offset_ms"))
    add(
        "health.clock",
        text(h.get("clock_offset_ms")),
        "warn" if offset is not None and abs(offset) > 2000 else "",
    )
    add("health.last_seq", text(h.get("last_seq")))
    add("health.last_weighing", clock(h.get("last_weighing_at"), tz))
    alerts = []
    plant = _dict(states.get("plant"))
    for a in [*_list(plant.get("alerts")), *_list(plant.get("offline"))]:
        a = _dict(a)
        what = text(a.get("alert") or a.get("device"))
        alerts.append(
            Row(
                f"{text(a.get('terminal'))}:{what}",
                (
                    Cell(f"{text(a.get('terminal'))} {what}", "warn"),
                    Cell(text(a.get("detail") or a.get("reason"))),
                    Cell(clock(a.get("since"), tz)),
                ),
            )
        )
    for a in _list(_dict(states.get("alerts")).get("active")):
        a = _dict(a)
        tone = "warn" if a.get("level") == "warning" else "bad"  # a late.* wait not yet overdue
        alerts.append(
            Row(
                text(a.get("alert")),
                (
                    Cell(text(a.get("alert")), tone),
                    Cell(text(a.get("detail"))),
                    Cell(clock(a.get("since"), tz)),
                ),
            )
        )
    return HealthView(tuple(devices), tuple(status), tuple(alerts))


def board(
    states: Mapping[str, Any], now: datetime, w: Words, texts: Mapping[str, str] | None = None
) -> BoardView:
    """Queue order and waits for drivers, stopped packers with their expected repair time, and
    what drivers must do about the exceptions of the moment (from `texts`)."""

    def queue_rows(part: str) -> tuple[Row, ...]:
        rows = []
        for i, v in enumerate(visits(states, part), 1):
            since = v.get("arrived_at") if part == "queue" else v.get("stage_since")
            waited = minutes_since(since, now)
            expected = _num(_dict(v.get("waits")).get("expected_min"))
            rows.append(
                Row(
                    text(v.get("visit") or v.get("plate")),
                    (
                        Cell(str(i)),
                        Cell(text(v.get("plate"))),
                        Cell(w("board.minutes", n=waited) if waited is not None else NONE),
                        Cell(
                            w("board.minutes", n=expected.to_integral_value())
                            if expected is not None
                            else NONE
                        ),
                    ),
                )
            )
        return tuple(rows)

    stopped = []
    for name in packer_names(states):
        p = _dict(states.get(f"packer.{name}"))
        if p.get("running") is not False:
            continue
        s = _dict(p.get("stopped"))
        repair = s.get("expected_repair_min")
        stopped.append(
            Row(
                name,
                (
                    Cell(name, "bad"),
                    Cell(text(s.get("reason"))),
                    Cell(w("repair.min", n=repair) if isinstance(repair, int) else NONE),
                ),
            )
        )
    for s in _list(_dict(states.get("plant")).get("stopped")):
        s = _dict(s)
        name = f"{text(s.get('terminal'))} {text(s.get('packer'))}"
        repair = s.get("expected_repair_min")
        stopped.append(
            Row(
                name,
                (
                    Cell(name, "bad"),
                    Cell(text(s.get("reason"))),
                    Cell(w("repair.min", n=repair) if isinstance(repair, int) else NONE),
                ),
            )
        )
    notices = exceptions(states, texts, w) if texts is not None else ()
    return BoardView(queue_rows("queue"), queue_rows("scale_queue"), tuple(stopped), notices)

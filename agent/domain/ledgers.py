"""Daily ledgers: pure rows from events (gate, weighings, seals, checks, packers), with headings."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.domain.events import Event, parse_at
from agent.domain.kinds import Kind
from agent.domain.marks import Mark
from agent.domain.timeline import order_key
from agent.domain.visit import VisitState, Weighing, fold_visits

Row = dict[str, Any]

HEADINGS: dict[str, dict[str, dict[str, str]]] = {
    "gate": {
        "en": {
            "no": "No.",
            "plate": "Plate",
            "order": "Order",
            "product": "Product",
            "load": "Load",
            "planned_t": "Planned (t)",
            "arrived": "Arrived",
            "gate_in": "Gate in",
            "released_as": "Released as no.",
            "release_reason": "Out-of-order reason",
            "exited": "Exited",
            "status": "Status",
            "remarks": "Plant remarks",
        },
        "zh": {
            "no": "序号",
            "plate": "车牌号",
            "order": "订单号",
            "product": "品种",
            "load": "装车方式",
            "planned_t": "计划量(吨)",
            "arrived": "到厂时间",
            "gate_in": "进厂时间",
            "released_as": "放行顺序",
            "release_reason": "插队原因",
            "exited": "出厂时间",
            "status": "状态",
            "remarks": "厂内备注",
        },
    },
    "weighings": {
        "en": {
            "time": "Time",
            "scale": "Scale",
            "weight_kg": "Weight (kg)",
            "mode": "Mode",
            "plate": "Plate",
            "role": "Tare/Gross",
            "net_kg": "Net (kg)",
            "stable_ms": "Stable (ms)",
        },
        "zh": {
            "time": "时间",
            "scale": "地磅",
            "weight_kg": "重量(千克)",
            "mode": "模式",
            "plate": "车牌号",
            "role": "皮重/毛重",
            "net_kg": "净重(千克)",
            "stable_ms": "稳定时长(毫秒)",
        },
    },
    "seals": {
        "en": {
            "time": "Sealed at",
            "plate": "Plate",
            "order": "Order",
            "seals": "Seal numbers",
            "seen_at_exit": "Seen at exit",
            "check": "Check",
        },
        "zh": {
            "time": "施封时间",
            "plate": "车牌号",
            "order": "订单号",
            "seals": "铅封号",
            "seen_at_exit": "出厂核对",
            "check": "核对结果",
        },
    },
    "checks": {
        "en": {
            "time": "Time",
            "packer": "Packer",
            "check": "Check",
            "result": "Result",
            "samples_kg": "Bag weights (kg)",
            "mean_kg": "Mean (kg)",
            "note": "Note",
            "operator": "Operator",
        },
        "zh": {
            "time": "时间",
            "packer": "包装机",
            "check": "检查项目",
            "result": "结果",
            "samples_kg": "袋重(千克)",
            "mean_kg": "平均袋重(千克)",
            "note": "备注",
            "operator": "检查人",
        },
    },
    "packers": {
        "en": {
            "hour": "Hour",
            "packer": "Packer",
            "bags": "Bags",
            "returned": "Returned",
            "broken": "Broken",
            "running_min": "Running (min)",
            "tonnes": "Tonnes",
            "t_per_h": "t/h running",
        },
        "zh": {
            "hour": "时段",
            "packer": "包装机",
            "bags": "袋数",
            "returned": "回包数",
            "broken": "破包数",
            "running_min": "运行(分钟)",
            "tonnes": "吨数",
            "t_per_h": "台时产量(吨/时)",
        },
    },
}

HEADINGS["tickets"] = {
    "en": {
        "number": "Ticket no.",
        "time": "Issued",
        "plate": "Plate",
        "order": "Order",
        "product": "Product",
        "load": "Load",
        "tare_kg": "Tare (kg)",
        "gross_kg": "Gross (kg)",
        "net_kg": "Net (kg)",
        "flags": "Flags",
        "prints": "Printed",
        "copies": "Copies",
        "operator": "Operator",
    },
    "zh": {
        "number": "磅单号",
        "time": "开单时间",
        "plate": "车牌号",
        "order": "订单号",
        "product": "品种",
        "load": "装车方式",
        "tare_kg": "皮重(千克)",
        "gross_kg": "毛重(千克)",
        "net_kg": "净重(千克)",
        "flags": "异常",
        "prints": "打印次数",
        "copies": "副本数",
        "operator": "司磅员",
    },
}

WORDS = {
    "zh": {
        "bagged": "袋装",
        "bulk": "散装",
        "tare": "皮重",
        "gross": "毛重",
        "net": "净重",
        "pass": "合格",
        "fail": "不合格",
        "match": "一致",
        "mismatch": "不一致",
        "bag_weight": "袋重抽检",
        "print_code": "喷码检查",
        "open": "在厂",
        "exited": "已出厂",
        "cancelled": "已取消",
        "waiting": "排队",
        "merged": "合并",
        "before_gate_in": "进厂前已作业",
        "after_close": "离厂或取消后仍有作业",
    },
    "en": {"bag_weight": "bag weight", "print_code": "print code"},
}


def _remarks_in(text: str, words: dict[str, str]) -> str:
    """Remarks with each item's leading code in the language's words."""
    items = []
    for item in text.split("; ") if text else []:
        code, _, rest = item.partition(" ")
        items.append(f"{words.get(code, code)} {rest}".strip())
    return "; ".join(items)


def _local(ev: Event, tz: ZoneInfo) -> datetime:
    return ev.when.astimezone(tz)


def _stamp(when: Event | Mark | None, tz: ZoneInfo) -> str:
    """Plant-local time of an event or a mark, to the second ('' for none)."""
    return parse_at(when.at).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if when else ""


def _on(ev: Event, day: date, tz: ZoneInfo) -> bool:
    return _local(ev, tz).date() == day


def gate(events: list[Event], day: date, tz: ZoneInfo) -> list[Row]:
    """Vehicles that arrived on `day`, in arrival order, with their release order and exit."""
    rows: list[Row] = []
    released = 0
    release_no: dict[str, int] = {}
    by_time = sorted(events, key=lambda e: e.when)  # stable: seq order within a terminal
    for ev in by_time:
        if ev.kind == Kind.VISIT_GATE_IN and _on(ev, day, tz):
            released += 1
            release_no[ev.data["visit"]] = released
    visits = fold_visits(events)
    # One row per visit: a duplicate arrival merged into another visit is in its remarks.
    arrivals = [
        ev
        for ev in by_time
        if ev.kind == Kind.VISIT_ARRIVED and _on(ev, day, tz) and ev.data["visit"] in visits
    ]
    for no, ev in enumerate(arrivals, 1):
        v = visits[ev.data["visit"]]
        status = "exited" if v.exited else "cancelled" if v.cancelled else "open"
        if v.gate_in is None and status == "open":
            status = "waiting"
        rows.append(
            {
                "no": no,
                "plate": v.plate,
                "order": v.order,
                "product": v.product,
                "load": v.load,
                "planned_t": round(v.planned_kg / 1000, 3),
                "arrived": _stamp(ev, tz),
                "gate_in": _stamp(v.gate_in, tz),
                "released_as": release_no.get(ev.data["visit"], ""),
                "release_reason": v.gate_in_reason if v.gate_in else "",
                "exited": _stamp(v.exited, tz),
                "status": status,
                "remarks": remarks(v),
            }
        )
    return rows


def remarks(v: VisitState) -> str:
    """What the plant timeline derived about a visit: arrivals merged into it and stages the
    timeline contradicts ('' for none), items separated by '; ', each led by its code."""
    items = [f"merged {vid}" for vid in v.merged_from]
    items += [f"{f.check} {f.detail}" for f in v.conflicts]
    return "; ".join(items)


def weighings(events: list[Event], day: date, tz: ZoneInfo) -> list[Row]:
    """Every captured weighing of `day` with the visit and role it was assigned to."""
    visits = fold_visits(events)
    assigned: dict[str, tuple[VisitState, Weighing]] = {
        w.weighing: (v, w) for v in visits.values() for w in v.weighings
    }
    rows: list[Row] = []
    for ev in events:
        if ev.kind != Kind.WEIGHING_CAPTURED or not _on(ev, day, tz):
            continue
        pair = assigned.get(ev.data["weighing"])
        visit, weighing = pair if pair else (None, None)
        net: Any = ""
        tare = visit.last("tare") if visit else None
        if weighing is not None and weighing.role == "gross" and tare is not None:
            net = weighing.weight_kg - tare.weight_kg
        rows.append(
            {
                "time": _stamp(ev, tz),
                "scale": ev.data.get("scale", ""),
                "weight_kg": int(ev.data["weight_kg"]),
                "mode": ev.data.get("mode", ""),
                "plate": visit.plate if visit else "",
                "role": weighing.role if weighing else "",
                "net_kg": net,
                "stable_ms": ev.data.get("stable_ms", ""),
            }
        )
    return rows


def seals(events: list[Event], day: date, tz: ZoneInfo) -> list[Row]:
    """Every sealing of `day` with what the gate saw at exit."""
    visits = fold_visits(events)
    owner = {e.id: v for v in visits.values() for _, e in v.events}
    rows: list[Row] = []
    for ev in events:
        if ev.kind != Kind.VISIT_SEALED or not _on(ev, day, tz) or ev.id not in owner:
            continue
        v = owner[ev.id]
        seen = v.seals_seen if v.exited else None
        flagged = any(f.check == "seal_mismatch" for f in v.flags)
        check = "" if seen is None else "mismatch" if flagged else "match"
        rows.append(
            {
                "time": _stamp(ev, tz),
                "plate": v.plate,
                "order": v.order,
                "seals": " ".join(v.seals),
                "seen_at_exit": " ".join(seen) if seen else "",
                "check": check,
            }
        )
    return rows


def checks(events: list[Event], day: date, tz: ZoneInfo) -> list[Row]:
    """Every spot check of `day`."""
    rows: list[Row] = []
    for ev in events:
        if ev.kind not in (Kind.CHECK_BAG_WEIGHT, Kind.CHECK_PRINT_CODE) or not _on(ev, day, tz):
            continue
        d = ev.data
        rows.append(
            {
                "time": _stamp(ev, tz),
                "packer": d.get("packer", ""),
                "check": ev.kind.split(".", 1)[1],
                "result": d.get("result", ""),
                "samples_kg": " ".join(f"{s:g}" for s in d.get("samples_kg", [])),
                "mean_kg": d.get("mean_kg", ""),
                "note": d.get("note", ""),
                "operator": d.get("operator", ""),
            }
        )
    return rows


def packers(events: list[Event], day: date, tz: ZoneInfo) -> list[Row]:
    """Packer tallies of `day` summed per packer per local hour (by each tally's end)."""
    sums: dict[tuple[str, str], dict[str, int]] = {}
    for ev in events:
        if ev.kind != Kind.PACKER_TALLY or not _on(ev, day, tz):
            continue
        d = ev.data
        hour = _local(ev, tz).strftime("%H:00")
        s = sums.setdefault(
            (hour, d["packer"]), {"bags": 0, "returned": 0, "broken": 0, "running_s": 0, "kg": 0}
        )
        s["bags"] += int(d.get("bags", 0))
        s["returned"] += int(d.get("returned", 0))
        s["broken"] += int(d.get("broken", 0))
        s["running_s"] += int(d.get("running_s", 0))
        s["kg"] += int(d.get("bags", 0)) * int(d.get("bag_kg", 0))
    rows: list[Row] = []
    for (hour, packer), s in sorted(sums.items()):
        tonnes = s["kg"] / 1000
        rows.append(
            {
                "hour": hour,
                "packer": packer,
                "bags": s["bags"],
                "returned": s["returned"],
                "broken": s["broken"],
                "running_min": round(s["running_s"] / 60, 1),
                "tonnes": round(tonnes, 3),
                "t_per_h": round(tonnes / (s["running_s"] / 3600), 1) if s["running_s"] else "",
            }
        )
    return rows


def tickets(events: list[Event], day: date, tz: ZoneInfo) -> list[Row]:
    """Every weigh ticket issued on `day` (by its plant-local number day), with its prints."""
    from agent.domain import tickets as book_of

    book = book_of.fold(events)
    rows: list[Row] = []
    for t in book.tickets.values():
        if t.day != day.isoformat():
            continue
        rows.append(
            {
                "number": t.number,
                "time": _local_at(t.issued_at, tz),
                "plate": t.plate,
                "order": t.order,
                "product": t.product,
                "load": t.load,
                "tare_kg": "" if t.tare_kg is None else t.tare_kg,
                "gross_kg": "" if t.gross_kg is None else t.gross_kg,
                "net_kg": t.net_kg if t.net_kg is not None else t.weight_kg or "",
                "flags": " ".join(t.flags),
                "prints": len(book.prints.get(t.number, [])),
                "copies": book.copies.get(t.number, 0),
                "operator": t.operator,
            }
        )
    return rows


def _local_at(at: str, tz: ZoneInfo) -> str:
    from agent.domain.events import parse_at

    return parse_at(at).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


BUILDERS: dict[str, Callable[[list[Event], date, ZoneInfo], list[Row]]] = {
    "gate": gate,
    "weighings": weighings,
    "seals": seals,
    "checks": checks,
    "packers": packers,
    "tickets": tickets,
}


def build(ledger: str, events: Iterable[Event], day: date, tz: ZoneInfo) -> list[Row]:
    """The rows of one ledger from the events of any number of terminals.

    Facts are folded in plant-timeline order (`timeline.order_key`, as the projection and the
    KPIs fold them, so a merge or a join is decided the same way); rows read in time order.
    """
    ordered = sorted({e.id: e for e in events}.values(), key=order_key)
    return BUILDERS[ledger](ordered, day, tz)


def table(ledger: str, rows: list[Row], language: str) -> tuple[list[str], list[list[Any]]]:
    """Headings in `language` and the rows as lists, with words translated."""
    heads = HEADINGS[ledger][language]
    words = WORDS.get(language, {})
    body = [
        [
            _remarks_in(v, words)
            if k == "remarks"
            else words.get(v, v)
            if isinstance(v, str)
            else v
            for k, v in ((k, r[k]) for k in heads)
        ]
        for r in rows
    ]
    return list(heads.values()), body

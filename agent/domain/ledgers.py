"""Daily ledgers: pure rows from events (gate, weighings, seals, checks, packers, stops,
operators), with headings."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.domain.events import Event, parse_at
from agent.domain.kinds import OPERATOR_KINDS, Kind
from agent.domain.marks import Mark
from agent.domain.spotchecks import check_by
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
            "exit_checks": "Exit checks let through",
            "exit_reason": "Exit reason",
            "broken_bags": "Broken bags (found/replaced)",
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
            "exit_checks": "出厂异常",
            "exit_reason": "放行原因",
            "broken_bags": "破包(发现/更换)",
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
            "exit_reason": "Exit reason",
        },
        "zh": {
            "time": "施封时间",
            "plate": "车牌号",
            "order": "订单号",
            "seals": "铅封号",
            "seen_at_exit": "出厂核对",
            "check": "核对结果",
            "exit_reason": "放行原因",
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
            "by": "By",
            "source": "Source",
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
            "by": "检查部门",
            "source": "来源",
        },
    },
    "stops": {
        "en": {
            "since": "Stopped at",
            "packer": "Packer",
            "kind": "Kind",
            "reason": "Reason",
            "repair_min": "Expected repair (min)",
            "handover": "Handover",
            "started": "Running again",
            "stopped_min": "Stopped (min)",
            "operator": "Reason given by",
        },
        "zh": {
            "since": "停机时间",
            "packer": "设备",
            "kind": "类型",
            "reason": "停机原因",
            "repair_min": "预计维修(分钟)",
            "handover": "交接班停机",
            "started": "恢复时间",
            "stopped_min": "停机时长(分钟)",
            "operator": "登记人",
        },
    },
    "operators": {
        "en": {
            "operator": "Operator",
            "post": "Post",
            "signed_in": "Signed in",
            "signed_out": "Signed out",
            "visits": "Visit stages",
            "windows": "Window services",
            "checks": "Spot checks",
            "reasons": "Stop reasons",
            "corrections": "Corrections",
            "notes": "Notes",
            "other": "Other",
        },
        "zh": {
            "operator": "操作员",
            "post": "岗位",
            "signed_in": "上岗时间",
            "signed_out": "离岗时间",
            "visits": "车辆环节",
            "windows": "窗口服务",
            "checks": "抽检",
            "reasons": "停机原因",
            "corrections": "更正",
            "notes": "交班记录",
            "other": "其他",
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
        "crew": "包装工段",
        "qc": "质控处",
        "typed": "手录",
        "scale": "袋秤",
        "packer": "包装机",
        "yes": "是",
        "unsealed": "未施封",
        "merged": "合并",
        "before_gate_in": "进厂前已作业",
        "after_close": "离厂或取消后仍有作业",
    },
    "en": {"bag_weight": "bag weight", "print_code": "print code", "qc": "quality office"},
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
                "exit_checks": " ".join(v.exit_checks),
                "exit_reason": v.exit_reason,
                "broken_bags": _broken(v),
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
    """Every bulk truck of `day`: each sealing with what the gate saw at exit, then each bulk
    truck that arrived or left that day unsealed (check `unsealed`)."""
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
                "exit_reason": v.exit_reason,
            }
        )
    for v in sorted(visits.values(), key=lambda v: v.index):
        if v.load != "bulk" or v.sealed is not None or v.cancelled is not None:
            continue
        marks = [m for m in (v.arrived, v.exited) if m is not None]
        if not any(parse_at(m.at).astimezone(tz).date() == day for m in marks):
            continue
        rows.append(
            {
                "time": "",
                "plate": v.plate,
                "order": v.order,
                "seals": "",
                "seen_at_exit": "",
                "check": "unsealed",
                "exit_reason": v.exit_reason,
            }
        )
    return rows


def _broken(v: VisitState) -> str:
    """Broken bags found/replaced on the truck ('' when none were found)."""
    return f"{v.broken_found}/{v.broken_replaced}" if v.broken_found else ""


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
                "by": check_by(d),
                "source": d.get("source", "typed"),
            }
        )
    return rows


def stops(events: list[Event], day: date, tz: ZoneInfo) -> list[Row]:
    """Every packer and bulk-loader stop that began on `day`, with its latest reason, whether it
    was a handover stop, and when the unit ran again."""
    rows: dict[tuple[str, str], Row] = {}
    open_stop: dict[str, tuple[str, str]] = {}
    for ev in events:
        d = ev.data
        name = str(d.get("packer", ""))
        if ev.kind == Kind.PACKER_STOPPED and isinstance(d.get("since"), str):
            key = (ev.terminal, name + "@" + d["since"])
            open_stop[ev.terminal + name] = key
            row = rows.setdefault(
                key,
                {
                    "at": d["since"],
                    "since": _local_at(d["since"], tz),
                    "packer": name,
                    "kind": d.get("kind") or "packer",
                    "reason": "",
                    "repair_min": "",
                    "handover": "yes" if d.get("handover") else "",
                    "started": "",
                    "stopped_min": "",
                    "operator": "",
                },
            )
            if d.get("reason"):
                row["reason"] = d["reason"]
                row["repair_min"] = d.get("expected_repair_min", "")
                row["operator"] = d.get("operator", "")
        elif ev.kind == Kind.PACKER_STARTED and ev.terminal + name in open_stop:
            row = rows[open_stop.pop(ev.terminal + name)]
            row["started"] = _stamp(ev, tz)
            row["stopped_min"] = round((ev.when - parse_at(row["at"])).total_seconds() / 60, 1)
    out = [r for r in rows.values() if parse_at(r["at"]).astimezone(tz).date() == day]
    return [{k: v for k, v in r.items() if k != "at"} for r in sorted(out, key=lambda r: r["at"])]


_AREAS = {
    "visit": "visits",
    "window": "windows",
    "check": "checks",
    "packer.calibrated": "checks",
    "packer.stopped": "reasons",
    "operator.corrected": "corrections",
    "operator.note": "notes",
}


def area(kind: str) -> str:
    """The operators ledger's column counting an operator event of this kind."""
    return _AREAS.get(kind) or _AREAS.get(kind.split(".", 1)[0]) or "other"


def attributed(events: Iterable[Event]) -> Iterator[tuple[Event, str, str]]:
    """Each sign-in, sign-out and operator event that names its operator, as (event, operator,
    post): the post a sign-in or sign-out names, else the one the operator signed in to on that
    terminal ('' for events recorded by name without a sign-in). Events in timeline order."""
    on_duty: dict[str, tuple[str, str]] = {}  # terminal -> (operator, post)
    for ev in events:
        d = ev.data
        who = d.get("operator")
        if ev.kind == Kind.OPERATOR_SIGNED_IN:
            on_duty[ev.terminal] = (str(who), str(d.get("post", "")))
            yield ev, str(who), str(d.get("post", ""))
        elif ev.kind == Kind.OPERATOR_SIGNED_OUT:
            on_duty.pop(ev.terminal, None)
            yield ev, str(who), str(d.get("post", ""))
        elif ev.kind in OPERATOR_KINDS and who:
            duty = on_duty.get(ev.terminal)
            yield ev, str(who), duty[1] if duty and duty[0] == who else ""


def operators(events: list[Event], day: date, tz: ZoneInfo) -> list[Row]:
    """What each operator recorded on `day`, by operator and post (the post they signed in to on
    that terminal; '' for events recorded by name without a sign-in)."""
    rows: dict[tuple[str, str], Row] = {}

    def row(who: str, post: str) -> Row:
        return rows.setdefault(
            (who, post),
            {
                "operator": who,
                "post": post,
                "signed_in": "",
                "signed_out": "",
                **dict.fromkeys(("visits", "windows", "checks", "reasons"), 0),
                **dict.fromkeys(("corrections", "notes", "other"), 0),
            },
        )

    for ev, who, post in attributed(events):
        if not _on(ev, day, tz):
            continue
        if ev.kind == Kind.OPERATOR_SIGNED_IN:
            r = row(who, post)
            r["signed_in"] = r["signed_in"] or _stamp(ev, tz)
        elif ev.kind == Kind.OPERATOR_SIGNED_OUT:
            row(who, post)["signed_out"] = _stamp(ev, tz)
        else:
            row(who, post)[area(ev.kind)] += 1
    return [rows[k] for k in sorted(rows)]


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
    "stops": stops,
    "operators": operators,
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

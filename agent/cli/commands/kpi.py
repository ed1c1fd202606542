"""`tally kpi`: the service standard's KPIs of one plant-local day."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "the day's service KPIs from the local store or from JSON lines of events"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally kpi`."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="the tally.toml whose database to read")
    source.add_argument(
        "--events",
        metavar="FILE",
        help="JSON lines of event envelopes from any number of terminals ('-' = stdin)",
    )
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--day", metavar="YYYY-MM-DD", help="the plant-local day")
    when.add_argument(
        "--month", metavar="YYYY-MM", help="each day of a month and the month's totals"
    )
    p.add_argument(
        "--timezone", metavar="TZ", help="the plant's time zone (default: terminal.timezone)"
    )
    p.add_argument(
        "--by",
        choices=("operator",),
        help="instead of the KPIs: what each operator recorded at each post (第二十二条)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def main(args: argparse.Namespace) -> int:
    """Compute and print the report."""
    import json
    from datetime import UTC, date, datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from agent import config as cfg
    from agent.domain import kpis
    from agent.errors import UsageError

    month: tuple[int, int] | None = None
    day = date(1970, 1, 1)
    if args.month is not None:
        try:
            first = date.fromisoformat(f"{args.month}-01")
        except ValueError:
            raise UsageError(f"--month {args.month!r} is not a month like 2026-11") from None
        month = (first.year, first.month)
    else:
        try:
            day = date.fromisoformat(args.day)
        except ValueError:
            raise UsageError(f"--day {args.day!r} is not a date like 2026-11-29") from None
    if args.config:
        config = cfg.load(args.config, check_paths=False)
        tz_name, kpi_cfg = config.terminal.timezone, config.kpi
    else:
        config, tz_name, kpi_cfg = None, cfg.TerminalConfig().timezone, cfg.KpiConfig()
    tz_name = args.timezone or tz_name
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--timezone {tz_name!r} is not a known IANA time zone (for example 'Asia/Shanghai')"
        ) from None
    now = datetime.now(UTC)  # a day not over yet is judged as it stands now

    def compute(events: Any) -> dict[str, Any]:
        if month is not None:
            return kpis.compute_month(events, *month, tz, kpi_cfg, as_of=now)
        return kpis.compute(events, day, tz, kpi_cfg, as_of=now)

    if args.by == "operator":
        return by_operator(args, config, month, day, tz, tz_name, kpi_cfg)
    if config is not None:
        from agent.daemon.services.visits import load_events
        from agent.daemon.store import Store

        store = Store(config.terminal.database)
        try:
            report = compute(load_events(store, kpi=True))
        finally:
            store.close()
    else:
        report = compute(read_events(args.events))
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    elif month is not None:
        sys.stdout.write(month_table(report, tz_name))
    else:
        sys.stdout.write(table(report, tz_name))
    return 0


def by_operator(
    args: argparse.Namespace,
    config: Any,
    month: tuple[int, int] | None,
    day: Any,
    tz: Any,
    tz_name: str,
    kpi_cfg: Any,
) -> int:
    """`--by operator`: per operator and post, what they recorded over the day or the month."""
    import itertools
    import json

    from agent.domain import by_operator as by

    def build(events: Any) -> dict[str, Any]:
        if month is not None:
            return by.month(events, *month, tz, kpi_cfg)
        return {
            "day": day.isoformat(),
            "by": "operator",
            "rows": by.rows(events, day, day, tz, kpi_cfg),
        }

    if config is not None:
        from agent.daemon.store import Store

        store = Store(config.terminal.database)
        try:
            report = build(itertools.chain(store.iter_events(), store.foreign_events()))
        finally:
            store.close()
    else:
        report = build(read_events(args.events))
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        sys.stdout.write(operator_table(report, tz_name))
    return 0


OPERATOR_HEAD = (
    "OPERATOR",
    "POST",
    "SHIFTS",
    "DAYS",
    "VISIT STAGES",
    "SERVED",
    "IN TIME",
    "CHECKS",
    "REASONS",
    "CORRECTIONS",
    "NOTES",
    "OTHER",
)


def operator_table(r: dict[str, Any], tz_name: str) -> str:
    """`--by operator` as a table: one line per operator and post, then the stages each recorded."""
    span = r.get("month") or r.get("day")
    lines = [f"Operators and posts for {span} ({tz_name})", ""]
    if not r["rows"]:
        return "\n".join([*lines, "nobody recorded anything", ""])
    body = [
        (
            x["operator"],
            x["post"] or "-",
            str(x["shifts"]),
            str(x["days"]),
            str(x["visits"]),
            str(x["served"]),
            str(x["served_in_time"]) if x["served"] else "-",
            str(x["checks"]),
            str(x["reasons"]),
            str(x["corrections"]),
            str(x["notes"]),
            str(x["other"]),
        )
        for x in r["rows"]
    ]
    widths = [max(_width(row[i]) for row in [OPERATOR_HEAD, *body]) for i in range(12)]
    for row in [OPERATOR_HEAD, *body]:
        cells = [
            cell + " " * (w - _width(cell)) if i < 2 else " " * (w - _width(cell)) + cell
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    staged = [x for x in r["rows"] if x["stages"]]
    if staged:
        lines += ["", "Visit stages recorded:"]
        for x in staged:
            stages = ", ".join(f"{k} {n}" for k, n in x["stages"].items())
            lines.append(f"{x['operator']} ({x['post'] or '-'}): {stages}")
    return "\n".join([*lines, ""])


def month_table(m: dict[str, Any], tz_name: str) -> str:
    """A month: the days that missed a target (and which), then the month's totals."""
    lines = [f"Service standard for {m['month']} ({tz_name}): days that missed a target", ""]
    for d in m["days"]:
        missed = m["missed"].get(d["day"])
        if missed:
            lines.append(f"{d['day']}  {', '.join(missed)}")
    if not m["missed"]:
        lines.append("none")
    totals = table({**m["totals"], "day": m["month"]}, tz_name).split("\n")
    return "\n".join([*lines, "", *totals])


def read_events(path: str) -> list[Any]:
    """Events from a JSON-lines file; raise UsageError naming the first bad line."""
    import json

    from agent.domain.events import Event
    from agent.errors import UsageError

    try:
        handle = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror}); check the path") from None
    events = []
    with handle:
        try:
            for n, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    if not isinstance(d, dict):
                        raise ValueError("it is not a JSON object")
                    events.append(Event.from_dict(d))
                except ValueError as exc:
                    reason = "it is not JSON" if isinstance(exc, json.JSONDecodeError) else exc
                    raise UsageError(
                        f"{path} line {n} is not an event envelope ({reason});"
                        " fix or remove that line"
                    ) from None
        except UnicodeDecodeError:
            raise UsageError(f"{path} is not UTF-8 text; export it as UTF-8") from None
    return events


def _trucks(n: int) -> str:
    return "1 truck" if n == 1 else f"{n} trucks"


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def _status(met: bool | None) -> str:
    return "no data" if met is None else ("met" if met else "NOT MET")


def table(r: dict[str, Any], tz_name: str) -> str:
    """The report as a table a shift manager can read."""
    ww, bl, bt, sl = r["weigh_wait"], r["bag_load_wait"], r["bulk_turnaround"], r["seal_lag"]
    rr, br, pr, dc = r["return_rate"], r["broken_rate"], r["packer_rate"], r["daily_completion"]

    def each(k: dict[str, Any]) -> tuple[str, str]:
        if not k["count"]:
            return "no trucks", "no data"
        text = (
            f"{k['within_target']} of {k['count']} in time ({_pct(k['share'])}),"
            f" longest {k['max_min']:.1f} min"
        )
        return text, _status(k["within_target"] == k["count"])

    rows = [
        ("Weighbridge wait", *each(ww), f"each ≤ {ww['target_min']:g} min"),
        (
            "Bagged loading wait",
            f"{bl['within_target']} of {bl['count']} in time ({_pct(bl['share'])})"
            if bl["count"]
            else "no trucks",
            _status(bl["met"]),
            f"≥ {bl['target_share'] * 100:g} % within {bl['target_min']:g} min",
        ),
        (
            "Bulk turnaround",
            f"mean {bt['mean_min']:.1f} min over {_trucks(bt['count'])}"
            if bt["count"]
            else "no trucks",
            _status(bt["met"]),
            f"mean ≤ {bt['target_min']:g} min",
        ),
        ("Bulk seal lag", *each(sl), f"each ≤ {sl['target_min']:g} min"),
        (
            "Returned bags",
            f"{rr['returned']} of {rr['bags']} bags ({_pct(rr['value'], 2)})",
            _status(rr["met"]),
            f"≤ {_pct(rr['target'], 2)}",
        ),
        (
            "Broken bags",
            f"{br['broken']} of {br['bags']} bags ({_pct(br['value'], 2)})",
            _status(br["met"]),
            f"≤ {_pct(br['target'], 2)}",
        ),
        (
            "Packer rate",
            f"{pr['tonnes']:.1f} t in {pr['running_h']:.2f} h"
            + (f" = {pr['t_per_h']:.1f} t/h" if pr["t_per_h"] is not None else ""),
            _status(pr["met"]),
            f"≥ {pr['target']:g} t/h",
        ),
        (
            "Daily completion",
            f"{dc['completed_t']:.1f} of {dc['planned_t']:.1f} t planned ({_pct(dc['value'])})",
            _status(dc["met"]),
            "the whole plan",
        ),
    ]
    head = ("KPI", "MEASURED", "STATUS", "TARGET")
    widths = [max(_width(row[i]) for row in [head, *rows]) for i in range(4)]
    lines = [f"Service standard for {r['day']} ({tz_name})", ""]
    for row in [head, *rows]:
        cells = [cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    flags = ", ".join(f"{k} {v}" for k, v in r["flags"].items())
    lines += ["", f"Weighing exceptions: {flags}", ""]
    return "\n".join(lines)


def _width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

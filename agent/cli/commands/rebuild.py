"""`tally rebuild`: rebuild the visit projection and today's KPIs from the stored events."""

from __future__ import annotations

import argparse
from typing import Any

from agent.config import DEFAULT_PATH

HELP = "rebuild every projection from the events (asks the daemon when it runs) and summarise"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally rebuild`."""
    p.add_argument("--config", default=DEFAULT_PATH, help="the tally.toml to use")
    p.add_argument(
        "--json", action="store_true", help="print the summary, visits and KPIs as one JSON object"
    )


def main(args: argparse.Namespace) -> int:
    """Rebuild in the running daemon (which compares with its live projection) or offline."""
    import json
    from zoneinfo import ZoneInfo

    from agent import config as cfg
    from agent.daemon.client import DaemonUnavailable, request
    from agent.daemon.services.visits import load_events, rebuild_from, summary, today
    from agent.daemon.store import Store
    from agent.domain import kpis

    config = cfg.load(args.config, check_paths=False)
    tz = ZoneInfo(config.terminal.timezone)
    try:
        result: dict[str, Any] = request(config.terminal.socket, "visits.rebuild", timeout=120)
        result["kpi"] = request(config.terminal.socket, "kpi.report", timeout=120)
    except DaemonUnavailable:
        store = Store(config.terminal.database)
        try:
            p = rebuild_from(store, config)
            result = {
                "source": "offline",
                "matched": None,
                "summary": summary(p),
                "visits": p.snapshot(live=False),
                "kpi": kpis.compute(load_events(store, kpi=True), today(tz), tz, config.kpi),
            }
        finally:
            store.close()
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(describe(result))
    return 1 if result["matched"] is False else 0


def describe(result: dict[str, Any]) -> str:
    """A few lines saying what was rebuilt."""
    s, k = result["summary"], result["kpi"]
    if result["source"] == "daemon":
        how = "in the running daemon; " + (
            "it matched the live projection"
            if result["matched"]
            else "it DIFFERED from the live projection, which the daemon has replaced"
        )
    else:
        how = "offline (no daemon is running)"
    flags = ", ".join(f"{name} {n}" for name, n in k["flags"].items())
    return "\n".join(
        [
            f"rebuilt {how}",
            f"events folded:        {s['events']} (through seq {s['last_seq']})",
            f"visits:               {s['visits']} ({s['open']} open)",
            f"gate queue:           {s['queue']}",
            f"scale queue:          {s['scale_queue']}",
            f"unassigned weighings: {s['unassigned']}",
            f"flags:                {s['flags']}",
            f"KPIs of {k['day']}:   weigh_wait {k['weigh_wait']['count']},"
            f" bag_load_wait {k['bag_load_wait']['count']},"
            f" bulk_turnaround {k['bulk_turnaround']['count']},"
            f" seal_lag {k['seal_lag']['count']}; {flags}",
        ]
    )

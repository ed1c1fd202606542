"""`tally status`: one screen of health from the running daemon; exit 1 when unhealthy."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent.config import DEFAULT_PATH

HELP = "show the daemon's health (devices, sync, disk, clock); exit 1 when unhealthy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally status`."""
    p.add_argument("--config", default=DEFAULT_PATH, help="the tally.toml to use")
    p.add_argument("--json", action="store_true", help="print the daemon's summary as JSON")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def render(summary: dict[str, Any]) -> str:
    """The summary of the `status` op as one screen of plain text."""
    lines = [
        f"tally {summary['terminal']}: {'healthy' if summary['healthy'] else 'UNHEALTHY'}",
        f"  version   {summary['version']}, up {_duration(summary['uptime_s'])}, "
        f"last seq {summary['last_seq']}",
    ]
    devices = summary["devices"]
    if not devices:
        lines.append("  devices   none configured or none reported yet")
    for i, (name, dev) in enumerate(sorted(devices.items())):
        state = "online" if dev.get("online") else "OFFLINE"
        why = f" ({dev['reason']})" if dev.get("reason") and not dev.get("online") else ""
        head = "  devices   " if i == 0 else "            "
        lines.append(f"{head}{name}: {state} since {dev.get('since')}{why}")
    sync = summary["sync"]
    if not sync.get("enabled"):
        lines.append("  sync      off")
    else:
        oldest = sync.get("oldest_unsent_s")
        backlog = sync.get("backlog")
        text = (
            f"  sync      backlog {'?' if backlog is None else backlog}, oldest unsent "
            f"{_duration(oldest) if oldest is not None else 'none'}, state {sync.get('state')}"
        )
        if sync.get("last_error"):
            text += f", last error: {sync['last_error']}"
        lines.append(text)
    for i, peer in enumerate(summary.get("replicas", [])):
        head = "  plant     " if i == 0 else "            "
        lag = peer.get("lag_s")
        text = (
            f"{head}{peer['name']}: {peer.get('state')}, lag "
            f"{'?' if lag is None else _duration(lag)}, "
            f"{'?' if peer.get('events_behind') is None else peer['events_behind']} events behind,"
            f" last contact {peer.get('last_contact') or 'never'}"
        )
        if peer.get("last_error"):
            text += f", last error: {peer['last_error']}"
        lines.append(text)
    disk = summary["disk"]
    lines.append(
        f"  disk      {disk['free_mb']} MiB free of {disk['total_mb']} MiB at {disk['path']} "
        f"(floor {disk['min_free_mb']} MiB){', FULL' if disk['full'] else ''}"
    )
    clock = summary["clock"]
    lines.append(
        f"  clock     offset {clock['offset_ms']} ms since start, last step "
        f"{clock['stepped_at'] or 'never'}"
    )
    lw = summary["last_weighing"]
    if lw:
        lines.append(f"  weighing  {lw['weight_kg']} kg on {lw['scale']} at {lw['at']}")
    else:
        lines.append("  weighing  none yet")
    for i, alert in enumerate(summary["alerts"]):
        head = "  alerts    " if i == 0 else "            "
        lines.append(f"{head}{alert['alert']}: {alert.get('detail', '')}")
    for i, problem in enumerate(summary["problems"]):
        head = "  problems  " if i == 0 else "            "
        lines.append(f"{head}{problem}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Ask the daemon for its status; 0 when healthy, 1 when not or when it does not answer."""
    from agent import config as cfg
    from agent.daemon.client import DaemonUnavailable, RequestRefused, request

    config = cfg.load(args.config, check_paths=False)
    try:
        summary = request(config.terminal.socket, "status", timeout=5)
    except (DaemonUnavailable, RequestRefused) as exc:
        if args.json:
            print(json.dumps({"healthy": False, "problems": [str(exc)]}, ensure_ascii=False))
        print(f"tally: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(render(summary))
    return 0 if summary.get("healthy") else 1

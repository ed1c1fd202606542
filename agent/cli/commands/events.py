"""`tally events`: list stored events."""

from __future__ import annotations

import argparse
import json
import sys

from agent.config import DEFAULT_PATH

HELP = "list stored events (JSON lines of the envelope with --json)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally events`."""
    p.add_argument("--config", default=DEFAULT_PATH, help="the tally.toml to use")
    p.add_argument(
        "--kind", help="only kinds equal to or under this prefix, e.g. visit or visit.weighed"
    )
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="only events after this seq")
    p.add_argument("--json", action="store_true", help="one JSON envelope per line")


def main(args: argparse.Namespace) -> int:
    """Print the events."""
    from agent import config as cfg
    from agent.daemon.store import Store

    config = cfg.load(args.config, check_paths=False)
    store = Store(config.terminal.database)
    out = sys.stdout
    try:
        if not args.json:
            out.write(f"{'SEQ':>7}  {'AT (UTC)':<24}  {'KIND':<24}  DATA\n")
        for ev in store.iter_events(args.kind, after=args.after):
            if args.json:
                out.write(ev.to_json() + "\n")
            else:
                data = json.dumps(ev.data, ensure_ascii=False, separators=(",", ":"))
                out.write(f"{ev.seq:>7}  {ev.at:<24}  {ev.kind:<24}  {data}\n")
    finally:
        store.close()
    return 0

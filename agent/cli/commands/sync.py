"""`tally sync status`: the sync backlog and health, read from the database (daemon up or not)."""

from __future__ import annotations

import argparse

from agent.config import DEFAULT_PATH

HELP = "show the sync backlog, last acknowledgement, last error and dead letters"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally sync` and its `status` subcommand."""
    sub = p.add_subparsers(dest="sync_command", metavar="status", required=True)
    status = sub.add_parser("status", help=HELP, description=HELP)
    status.add_argument("--config", default=DEFAULT_PATH, help="the tally.toml to use")
    status.add_argument("--json", action="store_true", help="print JSON")


def main(args: argparse.Namespace) -> int:
    """Print the status of sync; it reads the database, so it works with the daemon stopped."""
    import json
    from datetime import UTC, datetime

    from agent import config as cfg
    from agent.daemon.store import Store
    from sync.sender.status import read_status, recent_dead_letters

    config = cfg.load(args.config, check_paths=False)
    store = Store(config.terminal.database)
    try:
        status = read_status(store, datetime.now(UTC), enabled=config.sync is not None)
        status["url"] = config.sync.url if config.sync else None
        status["recent_dead_letters"] = recent_dead_letters(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
        return 0
    oldest = status["oldest_unsent_s"]
    print(f"sync          {status['url'] or 'not configured (no [sync] section)'}")
    print(f"state         {status['state']}")
    age = f", oldest unsent {oldest:g} s ago" if oldest is not None else ""
    print(f"backlog       {status['backlog']} events{age}")
    acked_at = f" at {status['last_ack_at']}" if status["last_ack_at"] else ""
    print(f"acknowledged  through seq {status['acked_through']}{acked_at}")
    print(f"last error    {status['last_error'] or 'none'}")
    print(f"dead letters  {status['dead_letters']}")
    for d in status["recent_dead_letters"]:
        print(f"  seq {d['seq']} {d['kind'] or '?'}: {d['error']} ({d['at']})")
    return 0

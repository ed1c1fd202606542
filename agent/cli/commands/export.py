"""`tally export`: a day's ledger as CSV or Excel."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

from agent.config import DEFAULT_PATH

if TYPE_CHECKING:
    from agent.domain.events import Event

HELP = (
    "export a day's ledger (gate, weighings, seals, checks, packers, tickets, stops, operators)"
    " as CSV or Excel"
)
LEDGERS = ["gate", "weighings", "seals", "checks", "packers", "tickets", "stops", "operators"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally export`."""
    p.add_argument("--config", default=DEFAULT_PATH, help="the tally.toml to use")
    p.add_argument("--day", required=True, help="the plant-local day, YYYY-MM-DD")
    p.add_argument("--ledger", required=True, choices=LEDGERS)
    p.add_argument("--format", default="csv", choices=["csv", "xlsx"])
    p.add_argument("--out", help="the file to write (default: stdout for csv, LEDGER-DAY.xlsx)")
    p.add_argument("--language", choices=["zh", "en"], help="headings language (default: config)")


def parse_day(text: str) -> date:
    """The date of a YYYY-MM-DD argument, or UsageError."""
    from datetime import date

    from agent.errors import UsageError

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--day {text!r} is not a date; write it as YYYY-MM-DD") from None


def export(events: Iterable[Event], args: argparse.Namespace, tz_name: str, language: str) -> int:
    """Build the ledger from `events` and write it as asked (shared with `tally serve export`)."""
    import sys
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from agent.cli import ledger_files
    from agent.domain import ledgers

    day = parse_day(args.day)
    rows = ledgers.build(args.ledger, events, day, ZoneInfo(tz_name))
    heads, body = ledgers.table(args.ledger, rows, args.language or language)
    if args.format == "csv":
        if args.out:
            ledger_files.write_csv(Path(args.out), heads, body)
        else:
            sys.stdout.write(ledger_files.write_csv(None, heads, body) or "")
    else:
        out = Path(args.out or f"{args.ledger}-{args.day}.xlsx")
        ledger_files.write_xlsx(out, f"{args.ledger} {args.day}", heads, body)
    if args.out or args.format == "xlsx":
        print(
            f"wrote {len(body)} rows to {args.out or f'{args.ledger}-{args.day}.xlsx'}",
            file=sys.stderr,
        )
    return 0


def main(args: argparse.Namespace) -> int:
    """Export one ledger of one day from the plant timeline this terminal holds: its own
    events and the other terminals' (docs/replication.md)."""
    import itertools

    from agent import config as cfg
    from agent.daemon.store import Store

    config = cfg.load(args.config, check_paths=False)
    parse_day(args.day)
    store = Store(config.terminal.database)
    try:
        events = itertools.chain(store.iter_events(), store.foreign_events())
        return export(events, args, config.terminal.timezone, config.terminal.language)
    finally:
        store.close()

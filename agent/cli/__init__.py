"""The `tally` command line: a thin dispatcher; each subcommand lives in agent.cli.commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from agent.cli.commands import (
    board,
    check_config,
    ctl,
    demo,
    events,
    export,
    kpi,
    rebuild,
    run,
    scale,
    serve,
    simulate,
    status,
    sync,
    ticket,
    tui,
)
from agent.errors import ConfigError, TallyError, UsageError
from drivers.errors import DriverError

# httpx imports its own command line when click, rich and pygments are installed (they are, for
# sqlite-utils and Textual): 7 MiB in every daemon for a program Tally never runs. A None here
# makes that optional import fail as it does where they are missing, and httpx goes on without.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__all__ = ["UsageError", "main"]

# (name, module). Each module defines HELP, add_arguments(parser) and main(args) -> int and
# imports nothing heavy at module level, so `tally --help` stays fast.
COMMANDS: list[tuple[str, ModuleType]] = [
    ("run", run),
    ("tui", tui),
    ("demo", demo),
    ("check-config", check_config),
    ("events", events),
    ("ctl", ctl),
    ("scale", scale),
    ("simulate", simulate),
    ("kpi", kpi),
    ("rebuild", rebuild),
    ("sync", sync),
    ("status", status),
    ("board", board),
    ("ticket", ticket),
    ("export", export),
    ("serve", serve),
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="tally",
        description="Tally: weighbridge and packing-line edge agent for a cement plant.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS:
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tally` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not hasattr(args, "_main"):
        parser.print_help()
        return 2
    from agent.daemon import lifeline

    try:
        lifeline.watch_from_env()  # started by a tally that may die: end with it
        return int(args._main(args))
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except TallyError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return exc.exit_code
    except DriverError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

"""The `tally` command line: a thin dispatcher; each subcommand lives in agent.commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# (name, module). Each module defines HELP, add_arguments(parser) and main(args) -> int and
# imports nothing heavy at module level, so `tally --help` stays fast.
COMMANDS: list[tuple[str, str]] = [
    ("run", "agent.commands.run"),
    ("tui", "agent.commands.tui"),
    ("demo", "agent.commands.demo"),
    ("check-config", "agent.commands.check_config"),
    ("events", "agent.commands.events"),
    ("ctl", "agent.commands.ctl"),
    ("scale", "agent.commands.scale"),
    ("simulate", "agent.commands.simulate"),
    ("kpi", "agent.commands.kpi"),
    ("rebuild", "agent.commands.rebuild"),
    ("sync", "agent.commands.sync"),
    ("status", "agent.commands.status"),
    ("board", "agent.commands.board"),
    ("export", "agent.commands.export"),
    ("serve", "agent.commands.serve"),
]


class UsageError(Exception):
    """Bad usage or bad input: printed as one sentence, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="tally",
        description="Tally: weighbridge and packing-line edge agent for a cement plant.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
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
    from agent.client import DaemonUnavailable, RequestRefused
    from agent.config import ConfigError
    from agent.store import StoreError

    try:
        return int(args._main(args))
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except (UsageError, RequestRefused, StoreError) as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return 2
    except DaemonUnavailable as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    # Run the importable module: under `python -m agent.cli` this file is `__main__`, and the
    # UsageError that commands import from agent.cli would otherwise not be the one caught here.
    from agent import cli

    sys.exit(cli.main())

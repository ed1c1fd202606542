"""The `tally` command line: a thin dispatcher; each subcommand lives in agent.cli.commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from agent.errors import UsageError

__all__ = ["UsageError", "main"]

# (name, module). Each module defines HELP, add_arguments(parser) and main(args) -> int and
# imports nothing heavy at module level, so `tally --help` stays fast.
COMMANDS: list[tuple[str, str]] = [
    ("run", "agent.cli.commands.run"),
    ("tui", "agent.cli.commands.tui"),
    ("demo", "agent.cli.commands.demo"),
    ("check-config", "agent.cli.commands.check_config"),
    ("events", "agent.cli.commands.events"),
    ("ctl", "agent.cli.commands.ctl"),
    ("scale", "agent.cli.commands.scale"),
    ("simulate", "agent.cli.commands.simulate"),
    ("kpi", "agent.cli.commands.kpi"),
    ("rebuild", "agent.cli.commands.rebuild"),
    ("sync", "agent.cli.commands.sync"),
    ("status", "agent.cli.commands.status"),
    ("board", "agent.cli.commands.board"),
    ("export", "agent.cli.commands.export"),
    ("serve", "agent.cli.commands.serve"),
]


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
    from agent.config import ConfigError
    from agent.daemon import lifeline
    from agent.daemon.api import StartupError
    from agent.daemon.client import DaemonUnavailable, RequestRefused
    from agent.daemon.store import StoreError

    try:
        lifeline.watch_from_env()  # started by a tally that may die: end with it
        return int(args._main(args))
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except (UsageError, RequestRefused, StoreError) as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return 2
    except (DaemonUnavailable, StartupError) as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

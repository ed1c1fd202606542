"""The `tally` command line: a thin dispatcher; each subcommand lives in agent.cli.commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from agent.errors import ConfigError, TallyError, UsageError
from drivers.errors import DriverError

# httpx imports its own command line when click, rich and pygments are installed (they are, for
# sqlite-utils and Textual): 7 MiB in every daemon for a program Tally never runs. A None here
# makes that optional import fail as it does where they are missing, and httpx goes on without.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__all__ = ["UsageError", "main"]

# (name, module). Each module defines HELP, add_arguments(parser) and main(args) -> int and
# imports nothing heavy at module level, so `tally --help` stays fast. A command line that names
# its command imports that command's module alone: the daemon (`tally run`) carries no other
# command's code and imports for its whole life.
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
    ("ticket", "agent.cli.commands.ticket"),
    ("export", "agent.cli.commands.export"),
    ("serve", "agent.cli.commands.serve"),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand, or with the command `only` alone."""
    parser = argparse.ArgumentParser(
        prog="tally",
        description="Tally: weighbridge and packing-line edge agent for a cement plant.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS:
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def command_named(argv: Sequence[str]) -> str | None:
    """The command `argv` names, or None when its first word (after -v) is no command, such as
    -h or a typo: then the full parser is built, so help and errors list every command."""
    names = {name for name, _ in COMMANDS}
    for arg in argv:
        if arg in ("-v", "--verbose"):
            continue
        return arg if arg in names else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tally` console script; returns the exit code."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(command_named(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not hasattr(args, "_main"):
        parser.print_help()
        return 2
    del parser  # the daemon runs inside this frame for its whole life
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

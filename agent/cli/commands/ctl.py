"""`tally ctl`: send an operator command to the running daemon."""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.config import DEFAULT_PATH

HELP = "send an operator command to the running daemon (arrive, gate-in, ...)"

# Modules that contribute operator commands; each has OPS: list[CtlOp]. Light imports only.
CTL_MODULES = [
    "agent.cli.ctl.visits",
    "agent.cli.ctl.packers",
    "agent.cli.ctl.window_services",
    "agent.cli.ctl.checks",
    "agent.cli.ctl.notes",
]


@dataclass(frozen=True, slots=True)
class Arg:
    """One option of a ctl operation, passed to argparse as is."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CtlOp:
    """A command-line operation: its name, options and how it becomes an API request."""

    name: str
    help: str
    api_op: str
    args: tuple[Arg, ...] = ()
    to_request: Callable[[argparse.Namespace], dict[str, Any]] | None = None


def _ops() -> list[CtlOp]:
    ops: list[CtlOp] = []
    for name in CTL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        ops.extend(module.OPS)
    return ops


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally ctl` and one subcommand per operation."""
    p.add_argument("--config", default=DEFAULT_PATH, help="the tally.toml to use")
    p.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    sub = p.add_subparsers(dest="ctl_op", metavar="OP", required=True)
    ping = sub.add_parser("ping", help="check that the daemon answers")
    ping.set_defaults(_ctl=CtlOp("ping", "check that the daemon answers", "ping"))
    for op in _ops():
        sp = sub.add_parser(op.name, help=op.help, description=op.help)
        for a in op.args:
            sp.add_argument(*a.flags, **a.kwargs)
        sp.set_defaults(_ctl=op)


def main(args: argparse.Namespace) -> int:
    """Send the request and print the daemon's answer."""
    from agent import config as cfg
    from agent.daemon.client import request
    from agent.domain import text_rules
    from agent.errors import UsageError

    op: CtlOp = args._ctl
    config = cfg.load(args.config, check_paths=False)
    body = op.to_request(args) if op.to_request else {}
    problem = text_rules.request_problem(body)
    if problem:  # e.g. bytes that are not UTF-8 in an argument (surrogate-escaped by Python)
        raise UsageError(problem)
    result = request(config.terminal.socket, op.api_op, **body)
    if args.json or not isinstance(result, str):
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(result)
    return 0

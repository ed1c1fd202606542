"""`tally ctl`: send an operator command to the running daemon."""

from __future__ import annotations

import argparse
import json
import sys

from agent.cli.ctl import checks, notes, operators, packers, plans, visits, window_services
from agent.cli.ctl.op import CtlOp
from agent.config import DEFAULT_PATH

HELP = "send an operator command to the running daemon (arrive, gate-in, ...)"

# Every operation, in the order `tally ctl --help` lists them.
OPS: list[CtlOp] = [
    *visits.OPS,
    *packers.OPS,
    *window_services.OPS,
    *checks.OPS,
    *notes.OPS,
    *operators.OPS,
    *plans.OPS,
]


OPERATOR_HELP = "who records it (name or badge number); default: the one signed in on the terminal"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally ctl` and one subcommand per operation."""
    p.add_argument("--config", default=DEFAULT_PATH, help="the tally.toml to use")
    p.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    sub = p.add_subparsers(dest="ctl_op", metavar="OP", required=True)
    ping = sub.add_parser("ping", help="check that the daemon answers")
    ping.set_defaults(_ctl=CtlOp("ping", "check that the daemon answers", "ping"))
    for op in OPS:
        sp = sub.add_parser(op.name, help=op.help, description=op.help)
        for a in op.args:
            sp.add_argument(*a.flags, **a.kwargs)
        if not any("--operator" in a.flags for a in op.args):
            sp.add_argument("--operator", help=OPERATOR_HELP)
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
    if getattr(args, "operator", None):
        body["operator"] = args.operator
    problem = text_rules.request_problem(body)
    if problem:  # e.g. bytes that are not UTF-8 in an argument (surrogate-escaped by Python)
        raise UsageError(problem)
    result = request(config.terminal.socket, op.api_op, **body)
    if isinstance(result, dict):
        # recorded all the same, but a fact of another terminal was missing (docs/replication.md)
        for warning in result.get("warnings") or []:
            print(f"tally: warning: {warning}", file=sys.stderr)
    if args.json or not isinstance(result, str):
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(result)
    return 0

"""`tally ctl` operations of who is on duty: sign-in, sign-out, who."""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.ctl.op import Arg, CtlOp


def _sign_in(args: argparse.Namespace) -> dict[str, Any]:
    return {"name": args.name, "post": args.post or ""}


OPS = [
    CtlOp(
        "sign-in",
        "sign in on this terminal with a name or badge number (挂牌上岗)",
        "operator.sign_in",
        (
            Arg(("--name",), {"required": True, "metavar": "NAME", "help": "name or badge number"}),
            Arg(("--post",), {"metavar": "POST", "help": "the post, e.g. weighbridge, gate, qc"}),
        ),
        _sign_in,
    ),
    CtlOp("sign-out", "sign the operator on duty out (end of shift)", "operator.sign_out"),
    CtlOp("who", "show who is signed in on this terminal", "operator.who"),
]

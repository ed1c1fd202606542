"""`tally ctl plan`: enter the day's bagged dispatch plan (the sales office's figure)."""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.ctl.op import Arg, CtlOp


def _request(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "day": args.day,
        "tonnes": args.tonnes,
        "product": args.product,
        "operator": args.operator,
    }


OPS = [
    CtlOp(
        "plan",
        "enter the day's bagged dispatch plan in tonnes (a plan.set event; a new one replaces it)",
        "plan.set",
        (
            Arg(("--day",), {"required": True, "metavar": "YYYY-MM-DD", "help": "the day"}),
            Arg(("--tonnes",), {"required": True, "help": "the planned tonnes, e.g. 1200"}),
            Arg(("--product",), {"default": "", "help": "the product (default: the whole day)"}),
            Arg(("--operator",), {"default": "", "help": "who enters it"}),
        ),
        _request,
    )
]

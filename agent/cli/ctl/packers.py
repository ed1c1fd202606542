"""`tally ctl` operations of the packing lines: the reason a packer stopped."""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.ctl.op import Arg, CtlOp


def _reason(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "packer": args.packer,
        "reason": args.reason,
        "expected_repair_min": args.repair_min,
    }


OPS = [
    CtlOp(
        "packer-reason",
        "record why a packer stopped and how many minutes the repair should take",
        "packer.reason",
        (
            Arg(("--packer",), {"required": True, "metavar": "NAME", "help": "the packer's name"}),
            Arg(("--reason",), {"required": True, "metavar": "TEXT", "help": "why it stopped"}),
            Arg(
                ("--repair-min",),
                {
                    "required": True,
                    "type": int,
                    "metavar": "N",
                    "dest": "repair_min",
                    "help": "expected minutes until it runs again (shown to waiting drivers)",
                },
            ),
        ),
        _reason,
    )
]

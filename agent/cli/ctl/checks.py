"""`tally ctl` operations for packing-line spot checks (check-bags, check-print)."""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.ctl.op import Arg, CtlOp


def _bags(a: argparse.Namespace) -> dict[str, Any]:
    from agent.daemon.client import split_weights

    return {
        "packer": a.packer,
        "samples_kg": split_weights(" ".join(a.kg)),
        "operator": a.operator or "",
    }


def _print(a: argparse.Namespace) -> dict[str, Any]:
    return {
        "packer": a.packer,
        "result": a.result,
        "note": a.note or "",
        "operator": a.operator or "",
    }


OPS = [
    CtlOp(
        "check-bags",
        "record a bag-weight spot check (each bag's weight in kg)",
        "check.bag_weight",
        (
            Arg(("--packer",), {"required": True}),
            Arg(
                ("--kg",), {"required": True, "action": "append", "help": "weights, e.g. 50.1,49.9"}
            ),
            Arg(("--operator",), {}),
        ),
        _bags,
    ),
    CtlOp(
        "check-print",
        "record a print-code check on a packer",
        "check.print_code",
        (
            Arg(("--packer",), {"required": True}),
            Arg(("--result",), {"required": True, "choices": ["pass", "fail"]}),
            Arg(("--note",), {}),
            Arg(("--operator",), {}),
        ),
        _print,
    ),
]

"""`tally ctl` operations for packing-line spot checks (check-bags, check-print, calibrated)."""

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
        "by": a.by,
    }


def _print(a: argparse.Namespace) -> dict[str, Any]:
    return {
        "packer": a.packer,
        "result": a.result,
        "note": a.note or "",
        "operator": a.operator or "",
        "by": a.by,
    }


BY = Arg(
    ("--by",),
    {
        "choices": ["crew", "qc"],
        "default": "crew",
        "help": "crew: the packing crew's check; qc: the quality office's check of the shift",
    },
)

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
            BY,
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
            BY,
        ),
        _print,
    ),
    CtlOp("checks", "the spot checks due now (crew and quality office)", "checks.due"),
    CtlOp(
        "packer-calibrated",
        "mark a packer calibrated at start-up (开机校正): its bag-weight check is due",
        "packer.calibrated",
        (Arg(("--packer",), {"required": True, "metavar": "NAME"}),),
        lambda a: {"packer": a.packer},
    ),
]

"""`tally ctl note`: record a shift note."""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.ctl.op import Arg, CtlOp


def _request(args: argparse.Namespace) -> dict[str, Any]:
    return {"text": args.text, "operator": args.operator}


OPS = [
    CtlOp(
        "note",
        "record a shift note (an operator.note event)",
        "note.add",
        (
            Arg(("--text",), {"required": True, "help": "the note, at most 500 characters"}),
            Arg(("--operator",), {"default": "", "help": "who writes it"}),
        ),
        _request,
    )
]

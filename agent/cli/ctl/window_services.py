"""`tally ctl` operations for the service windows (window-arrive, window-serve)."""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.ctl.op import Arg, CtlOp

_SERVICES = ["plan_order", "payment", "transport_letter", "no_letter"]


def _arrive(a: argparse.Namespace) -> dict[str, Any]:
    req: dict[str, Any] = {"window": a.window, "service": a.service}
    if a.ticket:
        req["ticket"] = a.ticket
    return req


def _serve(a: argparse.Namespace) -> dict[str, Any]:
    return {
        k: v for k, v in (("ticket", a.ticket), ("window", a.window), ("service", a.service)) if v
    }


OPS = [
    CtlOp(
        "window-arrive",
        "someone came to a window for a service (starts the window timer)",
        "window.arrive",
        (
            Arg(("--window",), {"required": True, "help": "the window: sales, finance, gate ..."}),
            Arg(("--service",), {"required": True, "choices": _SERVICES}),
            Arg(("--ticket",), {"help": "a ticket number (default: made up)"}),
        ),
        _arrive,
    ),
    CtlOp(
        "window-serve",
        "the person at a window was served (stops the timer)",
        "window.serve",
        (
            Arg(("--ticket",), {"help": "the ticket; default the longest waiting"}),
            Arg(("--window",), {}),
            Arg(("--service",), {"choices": _SERVICES}),
        ),
        _serve,
    ),
]

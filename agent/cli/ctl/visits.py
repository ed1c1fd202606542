"""`tally ctl` operations for vehicle visits: arrive, gate-in, queue, weigh, ... correct."""

from __future__ import annotations

import argparse
from typing import Any

from agent.cli.ctl.op import Arg, CtlOp

_WHICH = (
    Arg(("--visit",), {"metavar": "ID", "help": "the visit's id"}),
    Arg(("--plate",), {"help": "the plate of the vehicle's open visit"}),
    Arg(
        ("--order",),
        {
            "help": "with --plate: the visit of this order; on a plant, recorded by plate and"
            " order when the arrival has not reached this terminal yet"
        },
    ),
)


def _which(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.visit:
        out["visit"] = args.visit
    if args.plate:
        out["plate"] = args.plate
    if getattr(args, "order", None):
        out["order"] = args.order
    return out


def _with(*names: str) -> Any:
    """A to_request that names the visit and passes the given options when set."""

    def to_request(args: argparse.Namespace) -> dict[str, Any]:
        out = _which(args)
        for name in names:
            value = getattr(args, name)
            if value is not None:
                out[name] = value
        return out

    return to_request


def _arrive(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "plate": args.plate,
        "order": args.order,
        "product": args.product,
        "load": args.load,
        "planned_kg": args.planned_kg,
    }


def _seal(args: argparse.Namespace) -> dict[str, Any]:
    seals = [s.strip() for item in args.seal for s in item.split(",") if s.strip()]
    return {**_which(args), "seals": seals}


def _exit(args: argparse.Namespace) -> dict[str, Any]:
    out = _which(args)
    if args.seals_seen:
        out["seals_seen"] = [
            s.strip() for item in args.seals_seen for s in item.split(",") if s.strip()
        ]
    if args.product_seen:
        out["product_seen"] = args.product_seen
    if args.reason:
        out["reason"] = args.reason
    return out


def _correct(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "target_event": args.event,
        "field": args.field,
        "new": args.new,
        "reason": args.reason,
        "operator": args.operator,
    }


def _list(args: argparse.Namespace) -> dict[str, Any]:
    return {"visit": args.visit} if args.visit else {}


OPS: list[CtlOp] = [
    CtlOp(
        "arrive",
        "record a vehicle's arrival (it joins the gate queue)",
        "visit.arrive",
        (
            Arg(("--plate",), {"required": True, "help": "plate, e.g. 苏A12345"}),
            Arg(("--order",), {"required": True, "help": "the sales order number"}),
            Arg(("--product",), {"required": True, "help": 'the product, e.g. "P.O 42.5"'}),
            Arg(("--load",), {"required": True, "choices": ["bagged", "bulk"]}),
            Arg(
                ("--planned-kg",),
                {"required": True, "type": int, "metavar": "KG", "help": "planned kg (1-100000)"},
            ),
        ),
        _arrive,
    ),
    CtlOp(
        "gate-in",
        "the vehicle passed the gate (released in arrival order)",
        "visit.gate_in",
        (
            *_WHICH,
            Arg(("--reason",), {"help": "why it is released before vehicles that came earlier"}),
        ),
        _with("reason"),
    ),
    CtlOp(
        "queue",
        "the vehicle joined the scale queue",
        "visit.queue",
        (*_WHICH, Arg(("--scale",), {"help": "the scale (default: terminal.scale_queue)"})),
        _with("scale"),
    ),
    CtlOp(
        "weigh",
        "assign a captured weighing to the visit (default: the newest unassigned one)",
        "visit.weigh",
        (
            *_WHICH,
            Arg(("--weighing",), {"metavar": "ID", "help": "the captured weighing's id"}),
            Arg(
                ("--role",),
                {"choices": ["tare", "gross"], "help": "default: tare first, then gross"},
            ),
        ),
        _with("weighing", "role"),
    ),
    CtlOp(
        "loading-start",
        "loading started at a point (a packer's name counts its bags for this truck)",
        "visit.loading_start",
        (*_WHICH, Arg(("--point",), {"required": True, "help": "the loading point"})),
        _with("point"),
    ),
    CtlOp(
        "loading-finish",
        "loading finished (bags and bag mass for bagged loads)",
        "visit.loading_finish",
        (
            *_WHICH,
            Arg(("--point",), {"help": "the loading point (default: where it started)"}),
            Arg(("--bags",), {"type": int, "help": "bags loaded (default: the counter's count)"}),
            Arg(("--bag-kg",), {"type": int, "metavar": "KG", "help": "kg per bag"}),
        ),
        _with("point", "bags", "bag_kg"),
    ),
    CtlOp(
        "seal",
        "record the seal numbers",
        "visit.seal",
        (
            *_WHICH,
            Arg(
                ("--seal",),
                {
                    "required": True,
                    "action": "append",
                    "metavar": "NO",
                    "help": "a seal number; repeat it or give a comma list",
                },
            ),
        ),
        _seal,
    ),
    CtlOp(
        "exit",
        "the vehicle left the plant (a sealed bulk truck: with the seals the gate sees)",
        "visit.exit",
        (
            *_WHICH,
            Arg(
                ("--seals-seen",),
                {"action": "append", "metavar": "NO", "help": "seal numbers seen at the gate"},
            ),
            Arg(
                ("--product-seen",),
                {
                    "metavar": "PRODUCT",
                    "help": "the product the gate sees (checked against the order)",
                },
            ),
            Arg(
                ("--reason",),
                {"help": "why it may leave although an exit check fails (recorded as a flag)"},
            ),
        ),
        _exit,
    ),
    CtlOp(
        "broken-bags",
        "broken bags found and/or replaced while loading a bagged truck",
        "visit.broken_bags",
        (
            *_WHICH,
            Arg(("--found",), {"type": int, "metavar": "N", "help": "broken bags found now"}),
            Arg(("--replaced",), {"type": int, "metavar": "N", "help": "broken bags replaced now"}),
        ),
        _with("found", "replaced"),
    ),
    CtlOp(
        "cancel",
        "cancel the visit",
        "visit.cancel",
        (*_WHICH, Arg(("--reason",), {"required": True})),
        _with("reason"),
    ),
    CtlOp(
        "correct",
        "correct a field of an earlier visit event (a new event; nothing is edited)",
        "visit.correct",
        (
            Arg(("--event",), {"required": True, "metavar": "ID", "help": "terminal:epoch:seq"}),
            Arg(("--field",), {"required": True}),
            Arg(("--new",), {"required": True, "metavar": "VALUE"}),
            Arg(("--reason",), {"required": True}),
            Arg(("--operator",), {"help": "who corrects it (default: the one signed in)"}),
        ),
        _correct,
    ),
    CtlOp(
        "visits",
        "the open visits, the gate and scale queues and unassigned weighings",
        "visits.list",
        (Arg(("--visit",), {"metavar": "ID", "help": "one visit instead"}),),
        _list,
    ),
]

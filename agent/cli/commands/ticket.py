"""`tally ticket print|reprint|show`: weigh tickets (磅单) through the running daemon."""

from __future__ import annotations

import argparse
from typing import Any

from agent.config import DEFAULT_PATH

HELP = "weigh tickets (磅单): print, reprint (marked 副本) or show (offline too)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally ticket` and its three actions."""
    p.add_argument("--config", default=DEFAULT_PATH, help="the tally.toml to use")
    p.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    sub = p.add_subparsers(dest="ticket_op", metavar="ACTION", required=True)
    pr = sub.add_parser("print", help="print the ticket of a visit, a weighing or a number")
    pr.add_argument("number", nargs="?", help="a ticket number (an issued ticket not printed yet)")
    pr.add_argument("--visit", help="the visit id")
    pr.add_argument("--plate", help="the plate of an open visit")
    pr.add_argument("--weighing", help="a single weighing no visit claimed")
    pr.add_argument("--operator", default="", help="who prints it (printed on the ticket)")
    re = sub.add_parser("reprint", help="print a copy marked 副本 of a printed ticket")
    re.add_argument("number", nargs="?", help="the ticket number")
    re.add_argument("--visit", help="the visit id (its newest ticket)")
    re.add_argument("--operator", default="", help="who reprints it")
    sh = sub.add_parser(
        "show",
        help="show a ticket, or list a day's tickets (read from the database when the daemon"
        " is not running)",
    )
    sh.add_argument("number", nargs="?", help="the ticket number")
    sh.add_argument("--visit", help="the visit id (its newest ticket)")
    sh.add_argument("--day", help="list the tickets of this plant-local day (default today)")
    sh.add_argument("--pdf", help="also write the ticket as a PDF to this file")


def _request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from agent.errors import UsageError

    names = {k: getattr(args, k, None) for k in ("number", "visit", "plate", "weighing")}
    given = {k: v for k, v in names.items() if v}
    if args.ticket_op != "show" and len(given) != 1:
        raise UsageError(
            f"name one ticket: a NUMBER or --visit{', --plate or --weighing' if args.ticket_op == 'print' else ''}"
        )
    if len(given) > 1:
        raise UsageError("name one ticket: a NUMBER or --visit")
    body: dict[str, Any] = dict(given)
    if args.ticket_op != "show":
        body["operator"] = args.operator
    elif args.day:
        from agent.cli.commands.export import parse_day

        body["day"] = parse_day(args.day).isoformat()
    return f"ticket.{args.ticket_op}", body


def offline_show(config: Any, body: dict[str, Any]) -> dict[str, Any]:
    """`ticket.show` answered from the database, read only, as the daemon would answer it."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from agent.daemon.store import Store
    from agent.domain import tickets
    from agent.errors import Refused

    store = Store(config.terminal.database)
    try:
        book = tickets.fold(store.iter_events("ticket"))
    finally:
        store.close()
    tz = ZoneInfo(config.terminal.timezone)
    day = body.get("day") or tickets.local_day(datetime.now(UTC), tz).isoformat()
    try:
        return tickets.show(book, day, body.get("number") or "", body.get("visit") or "")
    except tickets.TicketRefused as exc:
        raise Refused(str(exc)) from None


def _line(status: dict[str, Any]) -> str:
    t = status["ticket"]
    what = t["plate"] or t["weighing"]
    net = t["net_kg"] if t["net_kg"] is not None else t["weight_kg"]
    state = (
        "waiting for the printer"
        if status["waiting"]
        else f"printed {len(status['prints'])}x"
        if status["prints"]
        else "not printed"
    )
    kg = f"{net} kg" if net is not None else "-"
    return f"{t['number']}  {what}  {kg}  {state}"


def _ticket(status: dict[str, Any]) -> Any:
    from agent.domain.tickets import Ticket

    t = status["ticket"]
    return Ticket(**{**t, "seals": tuple(t["seals"]), "flags": tuple(t["flags"])})


def main(args: argparse.Namespace) -> int:
    """Send the request and print the answer (the ticket as text for `show NUMBER`)."""
    import json
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from agent import config as cfg
    from agent.daemon.client import DaemonUnavailable, request
    from agent.domain import tickets

    config = cfg.load(args.config, check_paths=False)
    op, body = _request(args)
    try:
        result = request(config.terminal.socket, op, **body)
    except DaemonUnavailable:
        if op != "ticket.show":
            raise
        result = offline_show(config, body)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    elif "tickets" in result:
        n = len(result["tickets"])
        print(f"{n} ticket{'' if n == 1 else 's'} on {result['day']}")
        for status in result["tickets"]:
            print(_line(status))
    elif args.ticket_op == "show":
        doc = tickets.document(_ticket(result), config.tickets, ZoneInfo(config.terminal.timezone))
        print(tickets.text(doc))
        print(_line(result).split("  ")[-1])
    else:
        print(_line(result))
    if getattr(args, "pdf", None) and "ticket" in result:
        from drivers.printers import pdf

        doc = tickets.document(_ticket(result), config.tickets, ZoneInfo(config.terminal.timezone))
        try:
            data = pdf.render(doc, paper="A5", font=config.tickets.font)
        except pdf.FontMissing as exc:
            from agent.errors import UsageError

            raise UsageError(str(exc)) from None
        Path(args.pdf).write_bytes(data)
    return 0

"""Ticket numbers stay gapless and unique across a SIGKILL of the real daemon; with the daemon
stopped, `tally ticket show` reads the same tickets from the database."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

from agent.daemon.client import RequestRefused
from tests.daemon import Daemon, scale_simulator, tally, wait_for, write_config
from tests.drivers.fake_escpos import FakeEscposPrinter

N = 6


def test_ticket_numbers_are_gapless_across_a_sigkill(tmp_path: Path) -> None:
    printer = FakeEscposPrinter()  # off: tickets are issued and wait, so none is lost either
    with scale_simulator(
        "--protocol",
        "xk3190",
        "--seed",
        "2",
        "--rate",
        "40",
        "--weights",
        "16000,17000",
        "--empty-s",
        "0.4",
        "--ramp-s",
        "0.1",
        "--settle-s",
        "0.8",
        "--noise-kg",
        "0",
    ) as port:
        config = write_config(
            tmp_path,
            f'[[scale]]\nname = "scale1"\nport = "{port}"\nprotocol = "xk3190"\n'
            "hold_s = 0.3\nmin_samples = 3\nclear_s = 0.1\n\n"
            '[tickets]\nprinter = "gate"\nretry_s = 0.5\n\n'
            f'[[printer]]\nname = "gate"\nkind = "escpos"\ndevice = "{printer.device}"\n',
        )
        d = Daemon(config).start()
        try:
            captures: list[str] = wait_for(
                lambda: (
                    (u := d.request("visits.list")["unassigned"])
                    and len(u) >= N
                    and [c["weighing"] for c in u]
                ),
                timeout=60,
            )[:N]
        except TimeoutError:
            held = len(d.request("visits.list")["unassigned"])
            raise AssertionError(
                f"{held} of {N} weighings captured within 60 s; the daemon's log:\n{d.log()[-4000:]}"
            ) from None
        answered = threading.Event()
        answers: list[Any] = []

        def ask(weighing: str) -> None:
            try:
                answers.append(d.request("ticket.print", weighing=weighing))
                answered.set()
            except Exception as exc:  # the daemon dies under some of them
                answers.append(exc)

        threads = [threading.Thread(target=ask, args=(w,)) for w in captures]
        for t in threads:
            t.start()
        answered.wait(30)
        d.stop(signal.SIGKILL)
        for t in threads:
            t.join(30)

        d = Daemon(config).start()
        try:
            for w in captures:  # ask again: the issued ones answer with their ticket
                try:
                    d.request("ticket.print", weighing=w)
                except RequestRefused as exc:
                    raise AssertionError(f"{w}: {exc}") from None
            shown = d.request("ticket.show")
            first = shown["tickets"][0]["ticket"]["number"]
            online = tally("ticket", "--config", str(config), "show", first)
        finally:
            d.stop()
    # With the daemon stopped, `tally ticket show` reads the database and answers the same.
    offline = tally("ticket", "--config", str(config), "--json", "show")
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout) == shown
    again = tally("ticket", "--config", str(config), "show", first)
    assert (again.returncode, again.stdout) == (0, online.stdout)
    missing = tally("ticket", "--config", str(config), "show", "wb1-20000101-0001")
    assert (missing.returncode, missing.stderr) == (
        2,
        "tally: there is no ticket wb1-20000101-0001; `tally ticket show` lists them\n",
    )
    issued = [
        json.loads(line)["data"]
        for line in tally(
            "events", "--config", str(config), "--kind", "ticket.issued", "--json"
        ).stdout.splitlines()
    ]
    assert sorted(t["serial"] for t in issued) == list(range(1, N + 1))
    assert sorted(t["weighing"] for t in issued) == sorted(captures)
    assert len({t["number"] for t in issued}) == N
    assert sorted(s["ticket"]["serial"] for s in shown["tickets"]) == list(range(1, N + 1))

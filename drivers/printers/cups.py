"""A CUPS queue: the ticket rendered as an A5/A4 PDF and handed to `lp`."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from drivers.printers import PrinterOffline
from drivers.printers import pdf as pdf_render
from drivers.printers.document import Document

TIMEOUT_S = 30.0
_JOB = re.compile(r"request id is (\S+)")


@dataclass(frozen=True, slots=True)
class CupsPrinter:
    """The CUPS queue `queue` (on `server`, "" = the local CUPS), paper A5 or A4."""

    name: str
    queue: str
    paper: str = "A5"
    font: str = ""
    server: str = ""

    def _run(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        cmd = [args[0], *(["-h", self.server] if self.server else []), *args[1:]]
        try:
            return subprocess.run(cmd, input=data, capture_output=True, timeout=TIMEOUT_S)
        except FileNotFoundError:
            raise PrinterOffline(
                f"the printer {self.name}: `{args[0]}` is not installed; install cups-bsd"
            ) from None
        except subprocess.TimeoutExpired:
            raise PrinterOffline(
                f"the printer {self.name}: CUPS did not answer within {TIMEOUT_S:g} s;"
                " check that cupsd runs"
            ) from None

    def state(self) -> str:
        """`lpstat -p`'s line for the queue; raise PrinterOffline when the queue cannot print."""
        r = self._run("lpstat", "-p", self.queue)
        out = r.stdout.decode(errors="replace").strip()
        if r.returncode != 0 or not out:
            err = r.stderr.decode(errors="replace").strip() or "no answer"
            raise PrinterOffline(
                f"the printer {self.name}: CUPS has no usable queue {self.queue!r} ({err});"
                " check `lpstat -p` and [[printer]] queue"
            )
        if " disabled" in out.splitlines()[0]:
            raise PrinterOffline(
                f"the printer {self.name}: the CUPS queue {self.queue!r} is stopped"
                f" ({out.splitlines()[-1].strip()}); fix the printer, then `cupsenable {self.queue}`"
            )
        return out

    def print_document(self, doc: Document) -> str:
        """Render and submit; return the CUPS job id (e.g. `tickets-12`)."""
        try:
            data = pdf_render.render(doc, paper=self.paper, font=self.font)
        except pdf_render.FontMissing as exc:
            raise PrinterOffline(f"the printer {self.name}: {exc}") from None
        self.state()
        r = self._run(
            "lp",
            "-d",
            self.queue,
            "-t",
            doc.number,
            "-o",
            f"media={self.paper}",
            data=data,
        )
        out = r.stdout.decode(errors="replace")
        match = _JOB.search(out)
        if r.returncode != 0 or match is None:
            err = r.stderr.decode(errors="replace").strip() or out.strip() or "no job id"
            raise PrinterOffline(f"the printer {self.name}: lp refused the ticket ({err})")
        return match.group(1)

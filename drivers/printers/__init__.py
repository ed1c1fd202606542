"""Ticket printers: a CUPS queue (A5/A4 PDF sent with `lp`) and ESC/POS receipt printers."""

from __future__ import annotations

from typing import Protocol

from drivers.printers.document import Document


class PrinterOffline(Exception):
    """The printer cannot take the document now (offline, stopped, out of paper); the
    message says which, so the operator can fix it. The document was not printed."""


class Printer(Protocol):
    """One printer: `print_document` blocks until the printer (or its spooler) has the job."""

    @property
    def name(self) -> str:
        """The printer's configured name (in alerts and `ticket.printed`)."""

    def print_document(self, doc: Document) -> str:
        """Print `doc`; return the spooler's job reference; raise PrinterOffline."""


__all__ = ["Document", "Printer", "PrinterOffline"]

"""A printable ticket as the printers see it: a title, labelled rows, notes and a QR payload."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Document:
    """What every printer renders, in its own way (PDF page or receipt lines)."""

    title: str
    number: str  # the ticket number, printed large under the title
    rows: tuple[tuple[str, str], ...]  # (label, value), in print order
    qr: str = ""  # the QR code's payload ("" = no code)
    company: str = ""  # printed above the title
    notes: tuple[str, ...] = ()  # flag lines, printed under the rows
    copy_mark: str = ""  # e.g. 副本 on a reprint ("" = the original)
    footer: str = ""

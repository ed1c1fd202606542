"""ESC/POS receipt printers: the ticket as command bytes (GB18030 text, the printer's own QR
code) sent to a network (tcp://HOST:9100), USB (/dev/usb/lp0) or serial printer.

The bytes are generated here rather than with python-escpos: Chinese receipt printers take
GB18030 text after FS & (Chinese mode), which that library's code-page tables do not do, and
generating them ourselves keeps the output checkable byte for byte.
"""

from __future__ import annotations

import contextlib
import socket
import unicodedata
from dataclasses import dataclass
from typing import Any

from drivers.printers import PrinterOffline
from drivers.printers.document import Document

ESC, GS, FS, DLE, EOT, LF = b"\x1b", b"\x1d", b"\x1c", b"\x10", b"\x04", b"\n"
INIT = ESC + b"@"
CHINESE_ON = FS + b"&"
CENTER, LEFT = ESC + b"a\x01", ESC + b"a\x00"
BOLD_ON, BOLD_OFF = ESC + b"E\x01", ESC + b"E\x00"
BIG, NORMAL = GS + b"!\x11", GS + b"!\x00"
CUT = GS + b"VB\x00"  # feed to the cutter and cut (partially)
PAPER_STATUS = DLE + EOT + b"\x04"  # real-time status: roll paper sensor
PAPER_END = 0x60  # bits 5 and 6 of the answer: the paper has run out
ENCODING = "gb18030"
CONNECT_TIMEOUT_S = 5.0
STATUS_TIMEOUT_S = 1.0


def width(text: str) -> int:
    """Columns `text` takes on a receipt: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def wrap(text: str, columns: int) -> list[str]:
    """`text` in lines of at most `columns` columns, broken at spaces where it can be and
    inside a word (CJK text has no spaces) where it must."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if width(candidate) <= columns:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:
            if width(line + ch) > columns:
                lines.append(line)
                line = ""
            line += ch
    return [*lines, line]


def _qr(payload: str) -> bytes:
    data = payload.encode("utf-8")
    store = len(data) + 3

    def fn(body: bytes) -> bytes:
        return GS + b"(k" + len(body).to_bytes(2, "little") + body

    return (
        fn(b"1A2\x00")  # model 2
        + fn(b"1C\x06")  # module size 6 dots
        + fn(b"1E1")  # error correction M
        + GS
        + b"(k"
        + store.to_bytes(2, "little")
        + b"1P0"
        + data
        + fn(b"1Q0")  # print it
    )


def render(doc: Document, *, columns: int = 48) -> bytes:
    """The ESC/POS bytes of `doc` for a printer of `columns` characters per line
    (48 on 80 mm paper, 32 on 58 mm)."""

    def text(s: str) -> bytes:
        return s.encode(ENCODING, errors="replace")

    out = bytearray(INIT + CHINESE_ON + CENTER)
    if doc.company:
        out += text(doc.company) + LF
    out += BIG + text(doc.title) + NORMAL + LF
    if doc.copy_mark:
        out += BOLD_ON + text(f"【{doc.copy_mark}】") + BOLD_OFF + LF
    out += text(f"No. {doc.number}") + LF + LEFT
    rule = text("-" * columns) + LF
    out += rule
    label_w = max((width(label) for label, _ in doc.rows), default=0) + 2
    for label, value in doc.rows:
        pad = " " * (label_w - width(label))
        for i, part in enumerate(wrap(value, max(8, columns - label_w))):
            head = label + pad if i == 0 else " " * label_w
            out += text(head + part) + LF
    out += rule
    for note in doc.notes:
        for part in wrap(f"! {note}", columns):
            out += text(part) + LF
    if doc.qr:
        out += CENTER + _qr(doc.qr) + LF + text(doc.qr) + LF + LEFT
    if doc.footer:
        for part in wrap(doc.footer, columns):
            out += text(part) + LF
    out += LF * 3 + CUT
    return bytes(out)


@dataclass(frozen=True, slots=True)
class EscposPrinter:
    """An ESC/POS printer at `device`: tcp://HOST:PORT, a USB printer device (/dev/usb/lp0)
    or a serial port (a device path or pyserial URL, at `baudrate`)."""

    name: str
    device: str
    columns: int = 48
    baudrate: int = 9600

    def print_document(self, doc: Document) -> str:
        """Send the ticket; raise PrinterOffline when the printer cannot be reached or says
        its paper has run out."""
        data = render(doc, columns=self.columns)
        if self.device.startswith("tcp://"):
            self._tcp(data)
        elif self.device.startswith(("/dev/usb/", "/dev/lp")):
            self._file(data)
        else:
            self._serial(data)
        return f"{self.name}:{len(data)}B"

    def _tcp(self, data: bytes) -> None:
        host, _, port = self.device.removeprefix("tcp://").rpartition(":")
        try:
            with socket.create_connection((host, int(port)), CONNECT_TIMEOUT_S) as s:
                s.sendall(PAPER_STATUS)
                s.settimeout(STATUS_TIMEOUT_S)
                answer = b""
                with contextlib.suppress(TimeoutError):
                    answer = s.recv(1)
                self._check_paper(answer)
                s.settimeout(CONNECT_TIMEOUT_S)
                s.sendall(data)
        except (OSError, ValueError) as exc:
            raise PrinterOffline(f"the printer {self.name} at {self.device} {_why(exc)}") from None

    def _file(self, data: bytes) -> None:
        try:
            with open(self.device, "wb", buffering=0) as f:
                f.write(data)
        except OSError as exc:
            raise PrinterOffline(f"the printer {self.name} at {self.device} {_why(exc)}") from None

    def _serial(self, data: bytes) -> None:
        import serial

        port: Any = None
        try:
            port = serial.serial_for_url(
                self.device, baudrate=self.baudrate, timeout=STATUS_TIMEOUT_S, write_timeout=10
            )
            port.write(PAPER_STATUS)
            self._check_paper(port.read(1))
            port.write(data)
            port.flush()
        except (OSError, ValueError, serial.SerialException) as exc:
            raise PrinterOffline(f"the printer {self.name} at {self.device} {_why(exc)}") from None
        finally:
            if port is not None:
                with contextlib.suppress(Exception):
                    port.close()

    def _check_paper(self, answer: bytes) -> None:
        """A printer that answers the paper-sensor query with the paper-end bits set is out
        (one that does not answer is assumed fine: many never do)."""
        if answer and answer[0] & 0x93 == 0x12 and answer[0] & PAPER_END:
            raise PrinterOffline(f"the printer {self.name} is out of paper; load a new roll")


def _why(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code > 0:
        import os

        return f"cannot be reached ({os.strerror(code)}); check its power, cable and paper"
    return f"cannot be reached ({exc or type(exc).__name__}); check its power, cable and paper"

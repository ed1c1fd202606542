"""Comma-separated line formats (A&D, Dini Argeo, Kern, Tiger and clones): `ST,GS,+0012.34kg`."""

from __future__ import annotations

import re
from decimal import Decimal

from drivers.scale.reading import Corrupt, Item, Reading, Splitter
from drivers.scale.registry import Protocol, register

NAME = "ascii"
MAX_LINE = 64
_LINE = re.compile(
    rb"(?:\d\d,?)?(?P<status>ST|WT|QT|US|OL|LO|UL),(?:(?P<mode>GS|NT|TR),)?"
    rb" *(?P<sign>[+-])? *(?P<number>\d+(?:\.\d*)?|\.\d+)? *,? *(?P<unit>kg|g|t|lb) *",
    re.IGNORECASE,
)
_STABLE = {b"ST": True, b"WT": True, b"QT": True, b"US": False}
_MODE = {b"GS": "gross", b"NT": "net"}


def parse_line(line: bytes) -> Item:
    """Parse one line without its terminator; anything off the grammar is Corrupt."""
    match = _LINE.fullmatch(line)
    if match is None:
        return Corrupt(line, "fields")
    status = match.group("status").upper()
    number = match.group("number")
    overload = status not in _STABLE
    if not overload and number is None:
        return Corrupt(line, "no number")
    weight: Decimal | None = None
    if not overload and number is not None:
        weight = Decimal(number.decode())
        if match.group("sign") == b"-" and weight:
            weight = -weight
    mode = match.group("mode")
    return Reading(
        weight=weight,
        unit=match.group("unit").decode().lower(),
        stable=_STABLE.get(status),
        mode=_MODE.get(mode.upper()) if mode else None,
        overload=overload,
        raw=line,
    )


class AsciiSplitter(Splitter):
    """Splits on CR or LF; lines longer than MAX_LINE are dropped up to the next terminator."""

    def __init__(self, checksum: bool = True) -> None:
        super().__init__()
        self._skipping = False

    def reset(self) -> None:
        """Forget buffered bytes; counters are kept."""
        super().reset()
        self._skipping = False

    def feed(self, data: bytes) -> list[Item]:
        """Take the next bytes; return parsed lines and corrupt markers."""
        buf = self._buf
        buf += data
        out: list[Item] = []
        pos, n = 0, len(buf)
        while pos < n:
            cr, lf = buf.find(b"\r", pos), buf.find(b"\n", pos)
            k = min(x for x in (cr, lf, n) if x >= 0)
            if k == n:
                if n - pos > MAX_LINE:
                    self._skip(out, bytes(buf[pos:n]))
                    self._skipping = True
                    pos = n
                break
            line = bytes(buf[pos:k])
            pos = k + 1
            if self._skipping:
                self._skipping = False
                continue
            if not line:
                continue
            if len(line) > MAX_LINE:
                self._skip(out, line)
                continue
            self._framed(out, parse_line(line))
        del buf[:pos]
        return out

    def finish(self) -> list[Item]:
        """A last line without its terminator is a truncated tail."""
        if self._skipping:
            self._buf.clear()
            self._skipping = False
        return super().finish()


def encode(
    weight: Decimal | None,
    *,
    stable: bool = True,
    net: bool = False,
    unit: str = "kg",
    address: str = "",
) -> bytes:
    """One CRLF-terminated line; `weight=None` sends an out-of-range line."""
    mode = "NT" if net else "GS"
    if weight is None:
        return f"{address}OL,{mode},        {unit}\r\n".encode()
    sign = "-" if weight < 0 else "+"
    decimals = max(0, -int(weight.as_tuple().exponent))
    width = 7 if decimals == 0 else 8
    text = f"{abs(weight):0{width}.{decimals}f}"
    return f"{address}{'ST' if stable else 'US'},{mode},{sign}{text}{unit}\r\n".encode()


def frame(
    weight: Decimal | None,
    *,
    stable: bool = True,
    net: bool = False,
    checksum: bool = True,
    parity: bool = False,
) -> bytes:
    """The simulator's line: `weight` None sends an out-of-range line."""
    return encode(weight, stable=stable, net=net)


PROTOCOL = register(
    Protocol(NAME, AsciiSplitter, frame, has_stable_flag=True, has_checksum=False, order=40)
)

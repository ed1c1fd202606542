"""Mettler Toledo standard continuous output: 18-byte frames (17 without the checksum)."""

from __future__ import annotations

from decimal import Decimal

from drivers.scale.reading import Corrupt, FixedSplitter, Item, Reading, scaled
from drivers.scale.registry import Protocol, register

NAME = "toledo"
STX, CR = 0x02, 0x0D
_MASK = bytes(b & 0x7F for b in range(256))


def checksum(body: bytes) -> int:
    """The checksum byte of the first 17 bytes: all 18 sum to 0 in the low 7 bits."""
    return (-sum(body[:17])) & 0x7F


def _digits(field: bytes) -> int | None:
    stripped = field.lstrip(b" ")
    if not stripped:
        return 0
    if stripped.isdigit():
        return int(stripped)
    return None


def parse_frame(frame: bytes, *, with_checksum: bool = True) -> Item:
    """Parse one frame (masked, STX first, CR at byte 17); a bad check or field is Corrupt."""
    if with_checksum and (sum(frame[:18]) & 0x7F) != 0:
        return Corrupt(frame, "checksum")
    a, b, c = frame[1], frame[2], frame[3]
    if not (a & 0x20 and b & 0x20 and c & 0x20):
        return Corrupt(frame, "status")
    code = a & 0x07
    weight = _digits(frame[4:10])
    tare = _digits(frame[10:16])
    if weight is None or tare is None:
        return Corrupt(frame, "digits")
    override = c & 0x07
    if override == 0:
        unit = "kg" if b & 0x10 else "lb"
    elif override == 1:
        unit = "g"
    elif override == 2:
        unit = "t"
    else:
        return Corrupt(frame, "unit")
    decimals = max(0, code - 2)
    overload = bool(b & 0x04)
    return Reading(
        weight=None if overload else scaled(weight, decimals, negative=bool(b & 0x02)),
        unit=unit,
        stable=not b & 0x08,
        mode="net" if b & 0x01 else "gross",
        overload=overload,
        raw=frame,
        tare=scaled(tare, decimals),
    )


class ToledoSplitter(FixedSplitter):
    """Syncs on STX, requires CR at byte 17 and (by default) a valid checksum byte 18."""

    start = STX
    end = CR
    end_index = 16

    def __init__(self, checksum: bool = True) -> None:
        super().__init__()
        self.with_checksum = checksum
        self.length = 18 if checksum else 17

    def prepare(self, data: bytes) -> bytes:
        """7E1 read as 8N1 puts parity in bit 7: drop it."""
        return data.translate(_MASK)

    def parse(self, frame: bytes) -> Item:
        """Parse one framed Toledo frame."""
        return parse_frame(frame, with_checksum=self.with_checksum)


def _field(value: int) -> bytes:
    text = str(value).rjust(6)
    if len(text) > 6:
        raise ValueError(f"{value} does not fit in six digits")
    return text.encode()


def encode(
    weight: Decimal,
    *,
    code: int | None = None,
    unit: str = "kg",
    stable: bool = True,
    net: bool = False,
    tare: Decimal = Decimal(0),
    overload: bool = False,
    increment: int = 1,
    checksum: bool = True,
    parity: bool = False,
    zero_pad: bool = False,
) -> bytes:
    """One Toledo frame for `weight` (digits must fit the decimal code; default from `weight`).

    `parity=True` sets bit 7 to even parity, as a 7E1 line read at 8N1 shows it.
    """
    if code is None:
        exp = weight.as_tuple().exponent
        code = 2 + max(0, -int(exp))
    places = max(0, code - 2)
    digits = int(abs(weight).scaleb(places))
    tare_digits = int(abs(tare).scaleb(places))
    a = 0x20 | code | ({1: 1, 2: 2, 5: 3}[increment] << 3)
    b = 0x20 | (0x01 if net else 0) | (0x02 if weight < 0 else 0) | (0x04 if overload else 0)
    b |= (0 if stable else 0x08) | (0x10 if unit in ("kg", "g", "t") else 0)
    c = 0x20 | {"kg": 0, "lb": 0, "g": 1, "t": 2}[unit]
    w, t = _field(digits), _field(tare_digits)
    if zero_pad:
        w, t = w.replace(b" ", b"0"), t.replace(b" ", b"0")
    body = bytes([STX, a, b, c]) + w + t + bytes([CR])
    frame = body + bytes([checksum_byte(body)]) if checksum else body
    if parity:
        frame = bytes(x | 0x80 if bin(x).count("1") % 2 else x for x in frame)
    return frame


def checksum_byte(body: bytes) -> int:
    """Alias of `checksum` for encoders."""
    return checksum(body)


def frame(
    weight: Decimal | None,
    *,
    stable: bool = True,
    net: bool = False,
    checksum: bool = True,
    parity: bool = False,
) -> bytes:
    """The simulator's frame: `weight` None shows overload."""
    return encode(
        weight if weight is not None else Decimal(0),
        stable=stable,
        net=net,
        overload=weight is None,
        checksum=checksum,
        parity=parity,
    )


PROTOCOL = register(
    Protocol(
        NAME,
        ToledoSplitter,
        frame,
        has_stable_flag=True,
        has_checksum=True,
        optional_checksum=True,
        seven_bit=True,
        order=10,
    )
)

"""Yaohua XK3190 (and Keli clones) continuous mode tF=0: 12-byte frames with an XOR check."""

from __future__ import annotations

from decimal import Decimal

from drivers.scale.reading import Corrupt, FixedSplitter, Item, Reading, scaled
from drivers.scale.registry import Protocol, register

NAME = "xk3190"
STX, ETX = 0x02, 0x03


def nibble(byte: int) -> int | None:
    """Decode one check nibble: '0'-'9', 'A'-'F' and the ':'-'?' variant some firmware sends."""
    if 0x30 <= byte <= 0x3F:
        return byte - 0x30
    if 0x41 <= byte <= 0x46:
        return byte - 0x37
    return None


def check(body: bytes) -> int:
    """XOR of the sign, six digits and decimals byte (bytes 2-9 of the frame)."""
    x = 0
    for byte in body[1:9]:
        x ^= byte
    return x


def parse_frame(frame: bytes) -> Item:
    """Parse one frame (STX first, ETX at byte 12); a bad check or field is Corrupt."""
    hi, lo = nibble(frame[9]), nibble(frame[10])
    if hi is None or lo is None or (hi << 4 | lo) != check(frame):
        return Corrupt(frame, "check")
    sign, digits, places = frame[1], frame[2:8], frame[8]
    stripped = digits.lstrip(b" ")
    if sign not in b"+-" or not (stripped.isdigit() or not stripped) or not 0x30 <= places <= 0x34:
        return Corrupt(frame, "fields")
    value = int(stripped) if stripped else 0
    return Reading(
        weight=scaled(value, places - 0x30, negative=sign == ord("-")),
        unit="kg",
        stable=None,
        mode=None,
        overload=False,
        raw=frame,
    )


class Xk3190Splitter(FixedSplitter):
    """Syncs on STX and requires ETX at byte 12 and a matching check."""

    start = STX
    end = ETX
    end_index = 11
    length = 12

    def __init__(self, checksum: bool = True) -> None:
        super().__init__()

    def parse(self, frame: bytes) -> Item:
        """Parse one framed XK3190 frame."""
        return parse_frame(frame)


def _hex(n: int, alt: bool) -> int:
    return 0x30 + n if n <= 9 or alt else 0x37 + n


def encode(weight: Decimal, *, decimals: int | None = None, alt_nibbles: bool = False) -> bytes:
    """One XK3190 frame for `weight` (decimals from the Decimal unless given)."""
    if decimals is None:
        decimals = max(0, -int(weight.as_tuple().exponent))
    digits = int(abs(weight).scaleb(decimals))
    text = str(digits).rjust(6, "0")
    if len(text) > 6 or not 0 <= decimals <= 4:
        raise ValueError(f"{weight} does not fit an XK3190 frame")
    body = bytes([STX, ord("-" if weight < 0 else "+")]) + text.encode() + bytes([0x30 + decimals])
    x = check(body)
    return body + bytes([_hex(x >> 4, alt_nibbles), _hex(x & 0xF, alt_nibbles), ETX])


def frame(
    weight: Decimal | None,
    *,
    stable: bool = True,
    net: bool = False,
    checksum: bool = True,
    parity: bool = False,
) -> bytes:
    """The simulator's frame (the format has no flags; it cannot show out of range)."""
    if weight is None:
        raise ValueError(f"{NAME} cannot express out of range")
    return encode(weight)


PROTOCOL = register(
    Protocol(NAME, Xk3190Splitter, frame, has_stable_flag=False, has_checksum=True, order=20)
)

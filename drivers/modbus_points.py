"""Pure decoding of Modbus registers and bits into point values, and read planning."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

_FORMATS = {"uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "float32": "f"}
TYPES = (*_FORMATS, "bool")
MAX_REGISTERS = 125  # per read request (Modbus limit for functions 3 and 4)
MAX_BITS = 2000  # per read request (functions 1 and 2)

Value = int | float | bool


@dataclass(frozen=True, slots=True)
class Point:
    """Where one value sits on a Modbus device and how its words decode.

    `function` is 1 (coils), 2 (discrete inputs), 3 (holding registers) or 4 (input
    registers); `type` one of TYPES; `word_order` "big" or "little" for 32-bit values;
    `byte_swap` swaps the two bytes of each word; `scale` multiplies the raw value; `label`
    names the point in messages.
    """

    function: int
    address: int
    type: str = "uint16"
    word_order: str = "big"
    byte_swap: bool = False
    scale: float = 1.0
    label: str = ""


def width(point: Point) -> int:
    """How many registers (or bits, for functions 1 and 2) the point occupies."""
    if point.function in (1, 2):
        return 1
    return 2 if point.type in ("uint32", "int32", "float32") else 1


def _swap(reg: int) -> int:
    return ((reg & 0xFF) << 8) | (reg >> 8)


def decode(point: Point, words: Sequence[int] | Sequence[bool]) -> Value:
    """The raw (unscaled) value of a point from its registers or bits.

    Registers are 16-bit words as read; `byte_swap` swaps the two bytes of each word before
    the words are put in `word_order`. Raises ValueError when the word count is wrong.
    """
    n = width(point)
    if len(words) != n:
        raise ValueError(f"point {point.label} needs {n} words, got {len(words)}")
    if point.function in (1, 2):
        bit = bool(words[0])
        return bit if point.type == "bool" else int(bit)
    regs = [int(w) & 0xFFFF for w in words]
    if point.byte_swap:
        regs = [_swap(r) for r in regs]
    if point.type == "bool":
        return regs[0] != 0
    if point.word_order == "little":
        regs.reverse()
    value: int | float = struct.unpack(
        ">" + _FORMATS[point.type], b"".join(r.to_bytes(2, "big") for r in regs)
    )[0]
    return value


def scaled(point: Point, raw: Value) -> Value:
    """The raw value times the point's scale (bools and scale 1 are returned as they are)."""
    if isinstance(raw, bool) or point.scale == 1.0:
        return raw
    return raw * point.scale


def encode(point: Point, value: Value) -> list[int]:
    """The registers (function 3/4) or 0/1 bits (function 1/2) a device holds for `value`.

    The inverse of `decode`; used by the simulator and the tests. Raises struct.error or
    OverflowError when the value does not fit the type.
    """
    if point.function in (1, 2):
        return [1 if value else 0]
    if point.type == "bool":
        regs = [1 if value else 0]
    else:
        fmt = _FORMATS[point.type]
        data = struct.pack(">" + fmt, float(value) if fmt == "f" else int(value))
        regs = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        if point.word_order == "little":
            regs.reverse()
    if point.byte_swap:
        regs = [_swap(r) for r in regs]
    return regs


@dataclass(frozen=True, slots=True)
class ReadGroup:
    """One read request: a function, a start address and count, and the points it covers."""

    function: int
    address: int
    count: int
    points: tuple[tuple[str, Point], ...]
    # the reads this one joins across words no point names; () when it spans no gap
    parts: tuple[ReadGroup, ...] = ()

    def values(self, words: Sequence[int] | Sequence[bool]) -> dict[str, Value]:
        """Decode every point of the group from the words of one response."""
        out: dict[str, Value] = {}
        for key, pt in self.points:
            off = pt.address - self.address
            out[key] = decode(pt, list(words[off : off + width(pt)]))
        return out

    def names(self) -> str:
        """The point keys, for messages."""
        return ", ".join(k for k, _ in self.points)


def plan(points: Sequence[tuple[str, Point]], span: int = 0) -> list[ReadGroup]:
    """Group points into as few reads as possible, up to the Modbus limit per request.

    Points of one function whose words touch or overlap share a read (both words of a 32-bit
    value are always in the same read). With `span` > 0, two such reads whose gap is at most
    `span` words (or bits) are joined into one that also reads the gap; it keeps the reads it
    joined as its `parts`, for a device that refuses an address no point names.
    """
    groups: list[ReadGroup] = []
    by_fn: dict[int, list[tuple[str, Point]]] = {}
    for key, pt in points:
        by_fn.setdefault(pt.function, []).append((key, pt))
    for fn in sorted(by_fn):
        limit = MAX_BITS if fn in (1, 2) else MAX_REGISTERS
        items = sorted(by_fn[fn], key=lambda kp: kp[1].address)
        runs: list[ReadGroup] = []
        cur: list[tuple[str, Point]] = []
        start = end = 0
        for key, pt in items:
            p_end = pt.address + width(pt)
            if cur and pt.address <= end and max(end, p_end) - start <= limit:
                cur.append((key, pt))
                end = max(end, p_end)
                continue
            if cur:
                runs.append(ReadGroup(fn, start, end - start, tuple(cur)))
            cur, start, end = [(key, pt)], pt.address, p_end
        if cur:
            runs.append(ReadGroup(fn, start, end - start, tuple(cur)))
        groups.extend(_spanned(runs, span, limit))
    return groups


def _spanned(runs: list[ReadGroup], span: int, limit: int) -> list[ReadGroup]:
    """Join consecutive reads of one function across gaps of at most `span` words."""
    out: list[list[ReadGroup]] = []
    for run in runs:
        if out:
            last = out[-1]
            gap = run.address - (last[-1].address + last[-1].count)
            if gap <= span and run.address + run.count - last[0].address <= limit:
                last.append(run)
                continue
        out.append([run])
    joined: list[ReadGroup] = []
    for parts in out:
        if len(parts) == 1:
            joined.append(parts[0])
            continue
        first, final = parts[0], parts[-1]
        joined.append(
            ReadGroup(
                first.function,
                first.address,
                final.address + final.count - first.address,
                tuple(p for part in parts for p in part.points),
                tuple(parts),
            )
        )
    return joined

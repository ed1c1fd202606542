"""What every indicator format produces: readings, corrupt-frame markers and a splitter base."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

UNITS = ("kg", "t", "g", "lb")
_TO_KG = {
    "kg": Decimal(1),
    "t": Decimal(1000),
    "g": Decimal("0.001"),
    "lb": Decimal("0.45359237"),
}


@dataclass(frozen=True, slots=True)
class Reading:
    """One accepted frame: the displayed value with its decimals, in the indicator's unit.

    `weight` is None when the indicator reports out of range (then `overload` is True);
    `stable` and `mode` are None where the format carries no such flag. `raw` is the frame.
    """

    weight: Decimal | None
    unit: str
    stable: bool | None
    mode: str | None
    overload: bool
    raw: bytes
    tare: Decimal | None = None

    def kg(self) -> int | None:
        """The weight in whole kilograms (rounded half up), or None when out of range."""
        if self.weight is None or self.overload:
            return None
        return to_kg(self.weight, self.unit)

    def as_dict(self) -> dict[str, object]:
        """The decode output fields (weight kept as Decimal)."""
        return {
            "weight": self.weight,
            "unit": self.unit,
            "stable": self.stable,
            "mode": self.mode,
            "overload": self.overload,
        }


@dataclass(frozen=True, slots=True)
class Corrupt:
    """Bytes that did not make a valid frame: a failed check, a bad field, or skipped garbage."""

    raw: bytes
    reason: str


Item = Reading | Corrupt


def kg_value(weight: Decimal, unit: str) -> Decimal:
    """A displayed value in `unit` as kilograms, exactly."""
    return weight * _TO_KG[unit]


def to_kg(weight: Decimal, unit: str) -> int:
    """Convert a displayed value in `unit` to whole kilograms, rounding half away from zero."""
    return int((weight * _TO_KG[unit]).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def scaled(digits: int, decimals: int, negative: bool = False) -> Decimal:
    """`digits` with `decimals` implied decimal places, e.g. (2550, 2) -> 25.50; never -0."""
    value = Decimal(digits).scaleb(-decimals)
    return -value if negative and digits else value


class Splitter:
    """Base of the streaming frame splitters: counters, resync bookkeeping, never raises.

    `frames` counts accepted readings, `corrupt` framed frames that failed their check or
    fields, `resyncs` the times bytes had to be skipped to find the next frame (garbage, false
    start bytes, truncated frames, overlong lines). Skipping is reported once per run of
    skipped bytes as a `Corrupt` item with reason "resync", so a capture window breaks on it.
    """

    MAX_SKIPPED_KEPT = 64

    def __init__(self) -> None:
        self.frames = 0
        self.corrupt = 0
        self.resyncs = 0
        self._buf = bytearray()
        self._in_sync = True

    def feed(self, data: bytes) -> list[Item]:
        """Take the next bytes from the line; return the items they complete, in order."""
        raise NotImplementedError

    def finish(self) -> list[Item]:
        """End of input: a leftover partial frame counts as a truncated tail."""
        out: list[Item] = []
        if self._buf:
            self._skip(out, bytes(self._buf), "truncated")
            self._buf.clear()
        return out

    def reset(self) -> None:
        """Forget buffered bytes (after a reconnect); the counters are kept."""
        self._buf.clear()
        self._in_sync = True

    def _skip(self, out: list[Item], skipped: bytes, reason: str = "resync") -> None:
        if self._in_sync and skipped:
            self.resyncs += 1
            self._in_sync = False
            out.append(Corrupt(skipped[: self.MAX_SKIPPED_KEPT], reason))

    def _framed(self, out: list[Item], item: Item) -> None:
        self._in_sync = True
        if isinstance(item, Reading):
            self.frames += 1
        else:
            self.corrupt += 1
        out.append(item)


class FixedSplitter(Splitter):
    """Frames of fixed length that begin with a start byte and hold an end byte at a position."""

    start = 0x02
    end = 0x03
    end_index = 11
    length = 12

    def parse(self, frame: bytes) -> Item:
        """Parse one framed frame (start and end bytes already checked)."""
        raise NotImplementedError

    def prepare(self, data: bytes) -> bytes:
        """Transform incoming bytes before framing (Toledo masks the parity bit)."""
        return data

    def feed(self, data: bytes) -> list[Item]:
        """Take the next bytes; return completed readings and corrupt markers."""
        buf = self._buf
        buf += self.prepare(data)
        out: list[Item] = []
        pos, n = 0, len(buf)
        start, length, end_index = self.start, self.length, self.end_index
        while pos < n:
            i = buf.find(start, pos)
            if i < 0:
                self._skip(out, bytes(buf[pos:n]))
                pos = n
                break
            if i > pos:
                self._skip(out, bytes(buf[pos:i]))
                pos = i
            # a start byte inside the body means this one was false or its frame truncated
            j = buf.find(start, pos + 1, min(n, pos + end_index))
            if j >= 0:
                self._skip(out, bytes(buf[pos:j]))
                pos = j
                continue
            if n - pos < length:
                break
            if buf[pos + end_index] != self.end:
                self._skip(out, bytes(buf[pos : pos + 1]))
                pos += 1
                continue
            self._framed(out, self.parse(bytes(buf[pos : pos + length])))
            pos += length
        del buf[:pos]
        return out

"""The XK3190 "=" stream: reversed displayed value, no check; a value counts once it repeats."""

from __future__ import annotations

import re
from decimal import Decimal

from drivers.scale.reading import Corrupt, Item, Reading, Splitter
from drivers.scale.registry import Protocol, register

NAME = "xk3190-eq"
EQ = ord("=")
MAX_CHUNK = 12
REPEATS = 2
_VALUE = re.compile(rb"(-)?(\d+(?:\.\d+)?|\.\d+)")


def parse_chunk(chunk: bytes) -> Item:
    """Parse the bytes between two '=' (reversed value, optional trailing sign '0' or '-')."""
    match = _VALUE.fullmatch(chunk[::-1])
    if match is None:
        return Corrupt(b"=" + chunk, "fields")
    value = Decimal(match.group(2).decode())
    if match.group(1) and value:
        value = -value
    return Reading(
        weight=value, unit="kg", stable=None, mode=None, overload=False, raw=b"=" + chunk
    )


class EqSplitter(Splitter):
    """Splits on '='; a chunk is complete when the next '=' arrives and is accepted on repeat."""

    def __init__(self, checksum: bool = True, repeats: int = REPEATS) -> None:
        super().__init__()
        self.repeats = repeats
        self._last: bytes | None = None
        self._seen = 0
        self._skipping = False

    def reset(self) -> None:
        """Forget buffered bytes and the repeat count; counters are kept."""
        super().reset()
        self._last, self._seen, self._skipping = None, 0, False

    def finish(self) -> list[Item]:
        """End of input: a lone '=' is the next chunk's start, anything more was truncated."""
        if bytes(self._buf) == b"=":
            self._buf.clear()
        return super().finish()

    def feed(self, data: bytes) -> list[Item]:
        """Take the next bytes; return accepted readings and corrupt markers."""
        buf = self._buf
        buf += data
        out: list[Item] = []
        pos, n = 0, len(buf)
        while pos < n:
            if buf[pos] != EQ:
                i = buf.find(EQ, pos)
                stop = n if i < 0 else i
                if not self._skipping:
                    self._skip(out, bytes(buf[pos:stop]))
                    self._last, self._seen = None, 0
                self._skipping = False
                pos = stop
                continue
            self._skipping = False
            k = buf.find(EQ, pos + 1)
            if k < 0 or k - pos - 1 > MAX_CHUNK:
                if k < 0 and n - pos <= MAX_CHUNK + 1:
                    break
                # an overlong chunk: a lost '=' or garbage; drop it up to the next '='
                stop = n if k < 0 else k
                self._skip(out, bytes(buf[pos:stop]))
                self._last, self._seen = None, 0
                self._skipping = k < 0
                pos = stop
                continue
            chunk = bytes(buf[pos + 1 : k])
            pos = k
            item = parse_chunk(chunk)
            if isinstance(item, Corrupt):
                self._last, self._seen = None, 0
                self._framed(out, item)
                continue
            self._in_sync = True
            self._seen = self._seen + 1 if chunk == self._last else 1
            self._last = chunk
            if self._seen >= self.repeats:
                self._framed(out, item)
        del buf[:pos]
        return out


def encode(weight: Decimal, *, width: int = 7, sign: bool = True) -> bytes:
    """One '=' chunk for `weight`: the displayed text (zero-padded to `width`) reversed."""
    decimals = max(0, -int(weight.as_tuple().exponent))
    text = f"{abs(weight):0{width}.{decimals}f}"
    if sign:
        text = ("-" if weight < 0 else "0") + text
    return b"=" + text[::-1].encode()


def frame(
    weight: Decimal | None,
    *,
    stable: bool = True,
    net: bool = False,
    checksum: bool = True,
    parity: bool = False,
) -> bytes:
    """The simulator's chunk (the stream has no flags; it cannot show out of range)."""
    if weight is None:
        raise ValueError(f"{NAME} cannot express out of range")
    return encode(weight)


PROTOCOL = register(
    Protocol(
        NAME,
        EqSplitter,
        frame,
        has_stable_flag=False,
        has_checksum=False,
        repeats=3,
        order=30,
    )
)

"""The event envelope (docs/sync.md) and the clocks that stamp it."""

from __future__ import annotations

import json
import marshal
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_BOOT_ID: str | None = None


@dataclass(frozen=True, slots=True)
class Stamp:
    """One moment read from both clocks: UTC wall time and the monotonic clock."""

    at: datetime
    mono_ns: int

    @staticmethod
    def now() -> Stamp:
        """Read both clocks back to back."""
        return Stamp(datetime.now(UTC), time.monotonic_ns())


@dataclass(frozen=True, slots=True)
class Event:
    """One stored fact: the envelope of docs/sync.md."""

    terminal: str
    epoch: str
    seq: int
    kind: str
    at: str
    mono_ns: int
    boot: str
    data: dict[str, Any]
    # Made once: the projections key their maps by it, and one string per event is shared by
    # all of them (formatted on each use, a full timeline held 18,000 copies for 11,000 events).
    _id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_id", f"{self.terminal}:{self.epoch}:{self.seq}")

    def __deepcopy__(self, memo: dict[int, Any]) -> Event:
        """An event is never edited, so copies of a projection share it."""
        return self

    @property
    def id(self) -> str:
        """The idempotency identity `terminal:epoch:seq`."""
        return self._id

    def to_dict(self) -> dict[str, Any]:
        """The envelope as a JSON-ready dict, in the field order of the design."""
        return {
            "terminal": self.terminal,
            "epoch": self.epoch,
            "seq": self.seq,
            "id": self.id,
            "kind": self.kind,
            "at": self.at,
            "mono_ns": self.mono_ns,
            "boot": self.boot,
            "data": self.data,
        }

    def to_json(self) -> str:
        """One JSON line, UTF-8 characters kept as they are."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Event:
        """Build an event from its envelope dict; raise ValueError naming the bad field."""
        try:
            ev = Event.shared(
                str(d["terminal"]),
                str(d["epoch"]),
                int(d["seq"]),
                str(d["kind"]),
                str(d["at"]),
                int(d["mono_ns"]),
                str(d["boot"]),
                dict(d["data"]),
            )
        except KeyError as exc:
            raise ValueError(f"event has no {exc.args[0]!r} field") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"event has a field of the wrong type ({exc})") from None
        parse_at(ev.at)
        return ev

    @staticmethod
    def read(
        terminal: str, epoch: str, seq: int, kind: str, at: str, mono_ns: int, boot: str, data: str
    ) -> Event:
        """An event read back from a stored row (its data as JSON text), sharing its strings."""
        return Event.shared(terminal, epoch, seq, kind, at, mono_ns, boot, json.loads(data))

    @staticmethod
    def shared(
        terminal: str,
        epoch: str,
        seq: int,
        kind: str,
        at: str,
        mono_ns: int,
        boot: str,
        data: dict[str, Any],
    ) -> Event:
        """An event that arrived as text (a stored row, a peer's batch), sharing its strings.

        Every such event would otherwise bring its own copies of the stream, the kind, the boot
        and the data's field names. The data's values are not shared: they are mostly ids and
        numbers seen in a handful of events, and interning every one of them grew the
        interpreter's table of interned strings by 0.9 MiB for good in a daemon that refolded
        60 busy days (docs/performance.md, "A restart's peak, and the tail kept packed").
        """
        return Event(
            _shared(terminal), _shared(epoch), seq, _shared(kind), at, mono_ns, _shared(boot),
            shared_fields(data),
        )  # fmt: skip

    @property
    def when(self) -> datetime:
        """The wall time as a tz-aware UTC datetime."""
        return parse_at(self.at)


_shared = sys.intern


def shared_fields(data: Any) -> Any:
    """`data` with its field names shared with every other event's (a few dozen names).

    Interned strings are freed like any other once nothing refers to them, so sharing keeps
    nothing alive.
    """
    if not isinstance(data, dict):
        return data
    return {_shared(k): v for k, v in data.items()}


def plain_bytes(value: Any) -> bytes:
    """`value` (tuples, lists, dicts, str, int, float, bool, None) as `marshal` bytes.

    Data as appended may hold a str or int subclass (a `Kind`, an enum), which marshal refuses;
    such a value is kept as it is stored, plain JSON (a tuple then comes back as a list).
    """
    try:
        return marshal.dumps(value)
    except ValueError:
        return marshal.dumps(json.loads(json.dumps(value)))


def plain_fields(ev: Event) -> list[Any]:
    """An event's fields as plain values, in the order `Event.shared` takes them back (its kind
    as the text it is stored as)."""
    return [ev.terminal, ev.epoch, ev.seq, str(ev.kind), ev.at, ev.mono_ns, ev.boot, ev.data]


def pack(ev: Event) -> bytes:
    """An event as compact bytes (some 300 bytes, where its objects take some 700): what a
    timeline keeps of an event it may have to fold again."""
    return plain_bytes(plain_fields(ev))


def unpack(packed: bytes) -> Event:
    """The event `pack` kept (a new object, its strings shared)."""
    return Event.shared(*marshal.loads(packed))


def format_at(at: datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z, e.g. 2026-11-29T10:00:00.123Z."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse_at(text: str) -> datetime:
    """Parse a stored wall time; raise ValueError when it is not ISO 8601 with a zone."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {text!r} is not ISO 8601") from None
    if at.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return at.astimezone(UTC)


def boot_id() -> str:
    """The kernel's boot id (changes at every boot), or 'unknown' off Linux."""
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
                _BOOT_ID = f.read().strip()
        except OSError:
            _BOOT_ID = "unknown"
    return _BOOT_ID


def new_epoch() -> str:
    """A fresh random epoch id for a new database."""
    return uuid.uuid4().hex[:16]


def uuid7(now_ms: int | None = None) -> str:
    """A UUIDv7 string (time-ordered), used for visit and weighing ids."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(uuid.uuid4().bytes[:10], "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))

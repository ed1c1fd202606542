"""The pull protocol of the plant timeline (docs/replication.md): requests and answers, pure."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.domain import text_rules
from agent.domain.events import Event

PULL_PATH = "/v1/pull"
WAIT_MAX_S = 25.0  # under a proxy's usual 60 s read timeout
MAX_EVENTS = 2000
MAX_BYTES = 4 << 20
REQUEST_MAX_BYTES = 1 << 20
TERMINAL = re.compile(r"[a-z0-9-]{1,32}")
EPOCH = re.compile(r"[A-Za-z0-9_-]{1,64}")

Stream = tuple[str, str]


class PullError(ValueError):
    """A request or answer that does not follow the pull protocol; the message says why."""


@dataclass(frozen=True, slots=True)
class PullRequest:
    """What a reader asks: its cursor per stream, how long to wait and how much to take."""

    cursors: dict[Stream, int]
    wait_s: float = WAIT_MAX_S
    max_events: int = MAX_EVENTS
    max_bytes: int = MAX_BYTES

    def to_json(self) -> bytes:
        """The request body."""
        return json.dumps(
            {
                "cursors": [
                    {"terminal": t, "epoch": e, "through": s}
                    for (t, e), s in sorted(self.cursors.items())
                ],
                "wait_s": self.wait_s,
                "max_events": self.max_events,
                "max_bytes": self.max_bytes,
            }
        ).encode()


@dataclass(frozen=True, slots=True)
class StreamMark:
    """A stream the server holds: seqs `low`..`high` (a reader at `high` is up to date)."""

    terminal: str
    epoch: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class PullAnswer:
    """The server's answer: events past the cursors, every stream's marks and its clock."""

    events: tuple[Event, ...]
    streams: tuple[StreamMark, ...]
    now: str


def _whole(value: Any, lo: int, hi: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
        return value
    return None


def parse_request(body: bytes) -> PullRequest:
    """Validate a request body; raise PullError with one sentence."""
    try:
        obj: Any = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise PullError("the body must be a JSON object with a cursors list") from None
    if not isinstance(obj, dict):
        raise PullError("the body must be a JSON object with a cursors list")
    raw = obj.get("cursors", [])
    if not isinstance(raw, list) or len(raw) > 10_000:
        raise PullError("cursors must be a list of {terminal, epoch, through}")
    cursors: dict[Stream, int] = {}
    for i, c in enumerate(raw):
        if not isinstance(c, dict):
            raise PullError(f"cursors[{i}] must be an object with terminal, epoch and through")
        t, e, s = c.get("terminal"), c.get("epoch"), _whole(c.get("through"), 0, 2**63 - 1)
        if not isinstance(t, str) or not TERMINAL.fullmatch(t):
            raise PullError(f"cursors[{i}].terminal must be 1 to 32 characters of a-z, 0-9, '-'")
        if not isinstance(e, str) or not EPOCH.fullmatch(e):
            raise PullError(f"cursors[{i}].epoch must be 1 to 64 characters of A-Z, a-z, 0-9")
        if s is None:
            raise PullError(f"cursors[{i}].through must be a whole number from 0")
        cursors[(t, e)] = s
    wait = obj.get("wait_s", 0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 600:
        raise PullError("wait_s must be a number of seconds from 0 to 600")
    max_events = _whole(obj.get("max_events", MAX_EVENTS), 1, 1_000_000)
    max_bytes = _whole(obj.get("max_bytes", MAX_BYTES), 1024, 1 << 30)
    if max_events is None or max_bytes is None:
        raise PullError("max_events and max_bytes must be whole numbers (max_bytes from 1024)")
    return PullRequest(
        cursors,
        min(float(wait), WAIT_MAX_S),
        min(max_events, MAX_EVENTS),
        min(max_bytes, MAX_BYTES),
    )


# One event as a server holds it: terminal, epoch, seq, kind, at, mono_ns, boot, data (JSON).
HeldRow = tuple[str, str, int, str, str, int, str, str]


def envelope(row: HeldRow) -> str:
    """The envelope JSON of a held row, its data spliced in as stored."""
    t, e, seq, kind, at, mono_ns, boot, data = row
    return (
        f'{{"terminal":{json.dumps(t)},"epoch":{json.dumps(e)},"seq":{int(seq)},'
        f'"id":{json.dumps(f"{t}:{e}:{seq}")},"kind":{json.dumps(kind, ensure_ascii=False)},'
        f'"at":{json.dumps(at)},"mono_ns":{int(mono_ns)},"boot":{json.dumps(boot)},'
        f'"data":{data}}}'
    )


def encode_answer(envelopes: Sequence[str], streams: Sequence[StreamMark], now: str) -> bytes:
    """The answer body from envelope texts (see `envelope`)."""
    marks = json.dumps(
        [{"terminal": s.terminal, "epoch": s.epoch, "low": s.low, "high": s.high} for s in streams]
    )
    return (
        f'{{"events":[{",".join(envelopes)}],"streams":{marks},"now":{json.dumps(now)}}}'
    ).encode()


def parse_answer(body: bytes) -> PullAnswer:
    """Parse and check a server's answer; raise PullError naming the first problem.

    Every event must be a whole envelope whose id is terminal:epoch:seq and whose data
    follows the input rule; the marks must be whole numbers.
    """
    try:
        obj: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PullError("the answer is not JSON") from None
    if not isinstance(obj, dict):
        raise PullError("the answer is not a JSON object")
    raw_events, raw_streams, now = obj.get("events"), obj.get("streams"), obj.get("now")
    if not isinstance(raw_events, list) or not isinstance(raw_streams, list):
        raise PullError("the answer has no events and streams lists")
    if not isinstance(now, str):
        raise PullError("the answer has no server time (now)")
    events = []
    for i, d in enumerate(raw_events):
        if not isinstance(d, dict):
            raise PullError(f"events[{i}] is not an object")
        try:
            ev = Event.from_dict(d)
        except ValueError as exc:
            raise PullError(f"events[{i}]: {exc}") from None
        if d.get("id") != ev.id or not TERMINAL.fullmatch(ev.terminal) or ev.seq < 1:
            raise PullError(f"events[{i}] has an id that is not terminal:epoch:seq")
        problem = text_rules.data_problem(ev.data)
        if problem:
            raise PullError(f"events[{i}] ({ev.id}): {problem}")
        events.append(ev)
    streams = []
    for i, s in enumerate(raw_streams):
        if not isinstance(s, dict):
            raise PullError(f"streams[{i}] is not an object")
        t, e = s.get("terminal"), s.get("epoch")
        low, high = _whole(s.get("low"), 0, 2**63), _whole(s.get("high"), 0, 2**63)
        if not isinstance(t, str) or not isinstance(e, str) or low is None or high is None:
            raise PullError(f"streams[{i}] needs terminal, epoch, low and high")
        streams.append(StreamMark(t, e, low, high))
    return PullAnswer(tuple(events), tuple(streams), now)

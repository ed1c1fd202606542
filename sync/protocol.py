"""The sync wire protocol (docs/sync.md): batch encoding and the server's answer, pure."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

EVENTS_PATH = "/api/v1/events"
KPI_PATH = "/api/v1/kpi"
HEALTH_PATH = "/api/v1/health"
GZIP_LEVEL = 6
KEY = re.compile(r"([a-z0-9-]{1,32}):([A-Za-z0-9_-]{1,64}):([0-9]{1,19})-([0-9]{1,19})")

# One stored row as the sender reads it: seq, kind, at, mono_ns, boot, data (JSON text).
Row = tuple[int, str, str, int, str, str]


def idempotency_key(terminal: str, epoch: str, first: int, last: int) -> str:
    """The `Idempotency-Key` header of a batch: `{terminal}:{epoch}:{first}-{last}`."""
    return f"{terminal}:{epoch}:{first}-{last}"


def encode_batch(terminal: str, epoch: str, rows: Sequence[Row]) -> bytes:
    """The JSON body `{"terminal","epoch","events":[envelope...]}` of stored rows, as UTF-8.

    The payload column is already JSON text, so it is spliced in as is rather than parsed and
    dumped again (the envelope is the one of docs/sync.md, field order included).
    """
    t = json.dumps(terminal)
    e = json.dumps(epoch)
    parts = []
    for seq, kind, at, mono_ns, boot, data in rows:
        ident = json.dumps(f"{terminal}:{epoch}:{seq}")
        parts.append(
            f'{{"terminal":{t},"epoch":{e},"seq":{int(seq)},"id":{ident},'
            f'"kind":{json.dumps(kind, ensure_ascii=False)},"at":{json.dumps(at)},'
            f'"mono_ns":{int(mono_ns)},"boot":{json.dumps(boot)},"data":{data}}}'
        )
    body = f'{{"terminal":{t},"epoch":{e},"events":[{",".join(parts)}]}}'
    return body.encode("utf-8")


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """`data` as a gzip member (what `Content-Encoding: gzip` means)."""
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


class BodyTooLarge(Exception):
    """The decompressed body exceeds the cap."""


def gunzip_capped(data: bytes, cap: int) -> bytes:
    """Decompress a gzip body, never producing more than `cap` bytes.

    Raises BodyTooLarge past the cap and ValueError when the bytes are not valid gzip.
    """
    d = zlib.decompressobj(31)
    try:
        out = d.decompress(data, cap + 1)
        if len(out) > cap or d.unconsumed_tail:
            raise BodyTooLarge
        out += d.flush()
    except zlib.error as exc:
        raise ValueError(f"the body is not valid gzip ({exc})") from None
    if len(out) > cap:
        raise BodyTooLarge
    if not d.eof:
        raise ValueError("the gzip body is truncated")
    if d.unused_data:
        raise ValueError("the gzip body has bytes after its end; send one gzip member")
    return out


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event the server refused, with its reason."""

    seq: int
    error: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A well-formed 200 answer of the server."""

    acked_through: int
    rejected: tuple[Rejection, ...]


def parse_answer(body: bytes) -> Answer:
    """Parse the server's 200 body; raise ValueError with a sentence when it is malformed."""
    try:
        obj: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the server's 200 answer is not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError("the server's 200 answer is not a JSON object")
    acked = obj.get("acked_through")
    if not isinstance(acked, int) or isinstance(acked, bool) or acked < 0:
        raise ValueError("the server's 200 answer has no whole-number acked_through")
    raw = obj.get("rejected", [])
    if not isinstance(raw, list):
        raise ValueError("the server's 200 answer has a rejected field that is not a list")
    rejected = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("the server's 200 answer lists a rejection that is not an object")
        seq = item.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError("the server's 200 answer lists a rejection without a valid seq")
        rejected.append(Rejection(seq, str(item.get("error", ""))[:500]))
    return Answer(acked, tuple(rejected))

"""The wire protocol's pure parts: batch encoding, capped gunzip, answers, Retry-After, judging."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import SyncConfig
from agent.domain.events import Event
from sync.protocol import (
    Answer,
    BodyTooLarge,
    Rejection,
    encode_batch,
    gunzip_capped,
    gzip_bytes,
    parse_answer,
)
from sync.receiver.app import BatchError, parse_batch
from sync.sender.forwarder import judge, retry_after

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
CFG = SyncConfig(url="http://x", token_file="t", retry_after_max_s=60.0)


def test_encode_batch_is_the_envelope_of_each_stored_row() -> None:
    rows = [
        (7, "visit.arrived", "2026-11-29T10:00:00.123Z", 5, "boot", '{"plate":"京A12345"}'),
        (8, "operator.note", "2026-11-29T10:00:01.000Z", 6, "boot", '{"text":"a \\"quote\\""}'),
    ]
    body = json.loads(gzip.decompress(gzip_bytes(encode_batch("wb1", "ep", rows))))
    assert body == {
        "terminal": "wb1",
        "epoch": "ep",
        "events": [
            Event(
                "wb1", "ep", 7, "visit.arrived", rows[0][2], 5, "boot", {"plate": "京A12345"}
            ).to_dict(),
            Event(
                "wb1", "ep", 8, "operator.note", rows[1][2], 6, "boot", {"text": 'a "quote"'}
            ).to_dict(),
        ],
    }
    assert parse_batch(body, "wb1").rows == tuple(
        (
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            json.dumps(json.loads(r[5]), ensure_ascii=False, separators=(",", ":")),
        )
        for r in rows
    )


def test_gunzip_capped() -> None:
    assert gunzip_capped(gzip_bytes(b"x" * 100), 100) == b"x" * 100
    with pytest.raises(BodyTooLarge):
        gunzip_capped(gzip_bytes(b"x" * 101), 100)
    with pytest.raises(BodyTooLarge):  # a gzip bomb stops at the cap, not at the end
        gunzip_capped(gzip_bytes(b"\0" * (50 << 20)), 1 << 20)
    with pytest.raises(ValueError, match="truncated"):
        gunzip_capped(gzip_bytes(b"hello")[:-4], 100)
    with pytest.raises(ValueError, match="bytes after its end"):
        gunzip_capped(gzip_bytes(b"a") + gzip_bytes(b"b"), 100)
    with pytest.raises(ValueError, match="not valid gzip"):
        gunzip_capped(zlib.compress(b"zlib, not gzip"), 100)


@given(st.binary(max_size=300))
def test_gunzip_never_raises_anything_else(data: bytes) -> None:
    try:
        out = gunzip_capped(data, 1000)
    except (ValueError, BodyTooLarge):
        return
    assert len(out) <= 1000


def test_parse_answer() -> None:
    assert parse_answer(b'{"acked_through": 5, "rejected": [{"seq": 3, "error": "bad"}]}') == (
        Answer(5, (Rejection(3, "bad"),))
    )
    assert parse_answer(b'{"acked_through": 0}') == Answer(0, ())


@given(st.binary(max_size=200))
def test_parse_answer_never_raises_anything_but_value_error(data: bytes) -> None:
    try:
        answer = parse_answer(data)
    except ValueError:
        return
    assert answer.acked_through >= 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["terminal", "epoch", "events", "x"]),
        json_values
        | st.lists(
            st.dictionaries(
                st.sampled_from(
                    ["seq", "kind", "at", "data", "terminal", "epoch", "id", "boot", "mono_ns"]
                ),
                json_values,
            ),
            max_size=3,
        ),
    )
)
def test_parse_batch_refuses_or_rejects_but_never_crashes(body: dict[str, object]) -> None:
    try:
        batch = parse_batch(body, "wb1")
    except BatchError as exc:
        assert exc.status in (400, 403)
        return
    assert len(batch.rows) + len(batch.rejected) == len(body["events"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("12", 12.0),
        ("0", 0.0),
        ("999", 60.0),
        ("Sun, 29 Nov 2026 10:00:30 GMT", 30.0),
        ("Sun, 29 Nov 2026 09:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after(value, NOW, 60.0) == expected


@pytest.mark.parametrize(
    ("status", "headers", "body", "action", "wait"),
    [
        (200, {}, b'{"acked_through": 3, "rejected": []}', "ack", None),
        (200, {}, b"<html>", "protocol", None),
        (429, {"retry-after": "5"}, b"", "wait", 5.0),
        (503, {}, b"", "wait", None),
        (500, {}, b"", "backoff", None),
        (599, {}, b"", "backoff", None),
        (401, {}, b"", "auth", None),
        (403, {}, b"", "auth", None),
        (413, {}, b"", "shrink", None),
        (415, {}, b"", "protocol", None),
        (404, {}, b"", "protocol", None),
        (302, {}, b"", "protocol", None),
        (204, {}, b"", "protocol", None),
    ],
)
def test_judge(
    status: int, headers: dict[str, str], body: bytes, action: str, wait: float | None
) -> None:
    verdict = judge(status, headers, body, NOW, CFG)
    assert (verdict.action, verdict.retry_after_s) == (action, wait)

"""The reference receiver (`tally serve`) over HTTP on loopback: auth, limits, dedup, acks."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import tally
from tests.sync.helpers import Receiver, write_private

TOKENS = "# terminal:token\nwb1:tok-wb1-0000000001\npk1:tok-pk1-0000000002\n\n"
AUTH = {"Authorization": "Bearer tok-wb1-0000000001"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def receiver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Receiver]:
    url = request.getfixturevalue("pg_cluster").new_database() if request.param != "sqlite" else ""
    folder = tmp_path_factory.mktemp("receiver")
    with Receiver(folder, TOKENS, extra=("--max-body-mb", "1"), db_url=url) as r:
        yield r


def envelope(seq: int, epoch: str = "e1", terminal: str = "wb1", **kw: Any) -> dict[str, Any]:
    ev = {
        "terminal": terminal,
        "epoch": epoch,
        "seq": seq,
        "id": f"{terminal}:{epoch}:{seq}",
        "kind": "operator.note",
        "at": "2026-11-29T10:00:00.000Z",
        "mono_ns": 123,
        "boot": "b00t",
        "data": {"text": f"n{seq}"},
    }
    ev.update(kw)
    return ev


def post(
    r: Receiver,
    events: list[dict[str, Any]],
    *,
    epoch: str = "e1",
    terminal: str = "wb1",
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> httpx.Response:
    body = raw
    if body is None:
        doc = {"terminal": terminal, "epoch": epoch, "events": events}
        body = gzip.compress(json.dumps(doc).encode())
    h = {**AUTH, "Content-Encoding": "gzip", **(headers or {})}
    return httpx.post(f"{r.url}/api/v1/events", content=body, headers=h, timeout=10)


def test_stores_each_event_once_and_acks_through_the_first_gap(receiver: Receiver) -> None:
    ep = "dedup"
    assert post(receiver, [envelope(s, ep) for s in (3, 4)], epoch=ep).json() == {
        "acked_through": 0,
        "rejected": [],
    }
    resp = post(
        receiver,
        [envelope(s, ep) for s in (1, 2)],
        epoch=ep,
        headers={"Idempotency-Key": f"wb1:{ep}:1-2"},
    )
    assert (resp.status_code, resp.json()) == (200, {"acked_through": 4, "rejected": []})
    again = post(receiver, [envelope(s, ep) for s in (1, 2, 3, 4, 5)], epoch=ep)
    assert again.json() == {"acked_through": 5, "rejected": []}
    rows = receiver.rows("SELECT seq, data FROM events WHERE epoch = ? ORDER BY seq", (ep,))
    assert rows == [(s, json.dumps({"text": f"n{s}"}, separators=(",", ":"))) for s in range(1, 6)]
    batches = receiver.rows(
        "SELECT idempotency_key, stored, duplicates, acked_through FROM batches"
        " WHERE epoch = ? ORDER BY id",
        (ep,),
    )
    assert batches == [
        (f"wb1:{ep}:3-4", 2, 0, 0),
        (f"wb1:{ep}:1-2", 2, 0, 4),
        (f"wb1:{ep}:1-5", 1, 4, 5),
    ]


def test_a_malformed_event_is_rejected_alone_and_does_not_stall_the_ack(
    receiver: Receiver,
) -> None:
    ep = "reject"
    events = [
        envelope(1, ep),
        envelope(2, ep, kind="Not A Kind"),
        envelope(3, ep, at="yesterday"),
        envelope(4, ep, data=[1, 2]),
        envelope(5, ep, id="wb1:other:5"),
        envelope(6, ep),
    ]
    resp = post(receiver, events, epoch=ep)
    assert resp.json() == {
        "acked_through": 6,
        "rejected": [
            {"seq": 2, "error": "kind must be a dotted lower-case name such as visit.weighed"},
            {"seq": 3, "error": "at must be UTC ISO 8601 with milliseconds and Z"},
            {"seq": 4, "error": "data must be a JSON object"},
            {"seq": 5, "error": "id must be terminal:epoch:seq"},
        ],
    }
    assert receiver.rows("SELECT seq FROM events WHERE epoch = ?", (ep,)) == [(1,), (6,)]


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({"Authorization": ""}, 401, "send the terminal's token as `Authorization: Bearer TOKEN`"),
        (
            {"Authorization": "Basic abc"},
            401,
            "send the terminal's token as `Authorization: Bearer TOKEN`",
        ),
        (
            {"Authorization": "Bearer tok-wb1-0000000009"},
            401,
            "the token is not known to this server; check the token file",
        ),
        (
            {"Authorization": "Bearer tok-pk1-0000000002"},
            403,
            "this token is not valid for terminal 'wb1'",
        ),
        (
            {"Content-Encoding": "identity"},
            415,
            "the body must be gzip-compressed (Content-Encoding: gzip)",
        ),
        (
            {"Content-Encoding": "br"},
            415,
            "the body must be gzip-compressed (Content-Encoding: gzip)",
        ),
        ({"Idempotency-Key": "wb1:e1:1-9"}, 400, "Idempotency-Key must be wb1:e1:1-1"),
    ],
)
def test_refusals(receiver: Receiver, headers: dict[str, str], status: int, error: str) -> None:
    resp = post(receiver, [envelope(1)], headers=headers)
    assert (resp.status_code, resp.json()) == (status, {"error": error})
    if status == 401:
        assert resp.headers["www-authenticate"] == 'Bearer realm="tally"'


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b"not gzip at all", 400, "the body is not valid gzip"),
        (gzip.compress(b"{not json"), 400, "the body is not JSON"),
        (
            gzip.compress(b"[1, 2]"),
            400,
            "the body must be a JSON object with terminal, epoch and events",
        ),
        (
            gzip.compress(b'{"terminal": "wb1", "epoch": "e1", "events": [{"kind": "x"}]}'),
            400,
            "events[0] has no seq (a whole number from 1)",
        ),
        (
            gzip.compress(b'{"terminal": "wb1", "epoch": "e 1", "events": []}'),
            400,
            "epoch must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'",
        ),
        (
            gzip.compress(b" " * (2 << 20)),
            413,
            "the body is larger than 1048576 bytes; send smaller batches",
        ),
    ],
    # gzip stamps its time into the bytes: ids of their own keep every worker's collection equal
    ids=["not-gzip", "not-json", "not-object", "no-seq", "bad-epoch", "too-large"],
)
def test_bad_bodies(receiver: Receiver, raw: bytes, status: int, error: str) -> None:
    resp = post(receiver, [], raw=raw)
    assert resp.status_code == status
    assert resp.json()["error"].startswith(error)
    assert receiver.rows("SELECT count(*) FROM events WHERE epoch = 'e1'") == [(0,)]


def test_health_and_stats(receiver: Receiver) -> None:
    ep, gap = "stats", "stats-rejected"
    post(receiver, [envelope(s, ep) for s in (1, 2, 3)], epoch=ep)
    # a stream whose middle event was rejected: 2 events held, through seq 3
    post(
        receiver,
        [envelope(1, gap), envelope(2, gap, kind="Not A Kind"), envelope(3, gap)],
        epoch=gap,
    )
    assert httpx.get(f"{receiver.url}/api/v1/health").json() == {"ok": True, "version": "0.1.0"}
    out = tally("serve", "stats", "--db", receiver.db_arg, "--json")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)["terminals"]
    assert {"terminal": "wb1", "epoch": ep, "events": 3, "max_seq": 3} in stats
    assert {"terminal": "wb1", "epoch": gap, "events": 2, "max_seq": 3} in stats


KPI_AUTH = {"Authorization": "Bearer tok-pk1-0000000002"}  # any terminal's token


def test_kpi_endpoint(receiver: Receiver) -> None:
    url = f"{receiver.url}/api/v1/kpi"
    bad = httpx.get(url, params={"day": "29/11/2026"}, headers=KPI_AUTH)
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "pass the day as ?day=YYYY-MM-DD or the month as ?month=YYYY-MM"},
    )
    zone = httpx.get(
        url, params={"day": "2026-11-29", "timezone": "Mars/Olympus"}, headers=KPI_AUTH
    )
    assert (zone.status_code, zone.json()) == (
        400,
        {"error": "timezone 'Mars/Olympus' is not a known IANA zone"},
    )
    resp = httpx.get(url, params={"day": "2026-11-29"}, headers=KPI_AUTH)
    assert resp.status_code == 200
    assert resp.json()["day"] == "2026-11-29"


def test_kpi_endpoint_needs_a_token(receiver: Receiver) -> None:
    url = f"{receiver.url}/api/v1/kpi"
    anonymous = httpx.get(url, params={"day": "2026-11-29"})
    wrong = httpx.get(
        url, params={"day": "2026-11-29"}, headers={"Authorization": "Bearer not-a-known-token"}
    )
    assert (anonymous.status_code, anonymous.json()) == (
        401,
        {"error": "send the terminal's token as `Authorization: Bearer TOKEN`"},
    )
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"error": "the token is not known to this server; check the token file"},
    )


def test_kpi_of_an_impossible_day_is_a_400(receiver: Receiver) -> None:
    resp = httpx.get(f"{receiver.url}/api/v1/kpi", params={"day": "9999-12-31"}, headers=KPI_AUTH)
    assert (resp.status_code, resp.json()) == (
        400,
        {"error": "day must be between the years 1970 and 2199"},
    )


def test_serve_refuses_an_open_tokens_file(tmp_path: Path) -> None:
    tokens = write_private(tmp_path / "tokens", "wb1:tok-wb1-0000000001\n")
    tokens.chmod(0o644)
    out = tally(
        "serve", "--db", str(tmp_path / "r.db"), "--listen", "127.0.0.1:0", "--tokens", str(tokens)
    )
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == (
        f"tally: the tokens file {tokens} is open to group or others (mode 0644);"
        f" run `chmod 600 {tokens}`\n"
    )


def test_serve_refuses_a_malformed_tokens_file(tmp_path: Path) -> None:
    tokens = write_private(tmp_path / "tokens", "wb1 tok-wb1-0000000001\n")
    out = tally("serve", "--db", str(tmp_path / "r.db"), "--tokens", str(tokens))
    assert out.returncode == 2
    assert out.stderr == (
        f"tally: line 1 of the tokens file {tokens} is not `terminal:token`,"
        " `plant/terminal:token` or `@reader:token` (names of a-z, 0-9 and '-',"
        " token of 8 to 512 visible ASCII characters)\n"
    )
    assert "tok-wb1" not in out.stderr

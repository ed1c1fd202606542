"""Bad input at the real receiver (issue 16): refused per event or with a 4xx, never a 500."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.receiver.store import ReceiverStore
from tests.sync.helpers import Receiver
from tests.sync.test_receiver import AUTH, TOKENS, envelope, post

KPI_AUTH = {"Authorization": "Bearer tok-pk1-0000000002"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def receiver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Receiver]:
    url = request.getfixturevalue("pg_cluster").new_database() if request.param != "sqlite" else ""
    with Receiver(tmp_path_factory.mktemp("receiver"), TOKENS, db_url=url) as r:
        yield r


def post_text(r: Receiver, text: str) -> httpx.Response:
    """POST a body given as JSON text (so it may hold NaN, 1e999 or escaped surrogates)."""
    headers = {**AUTH, "Content-Encoding": "gzip"}
    return httpx.post(
        f"{r.url}/api/v1/events", content=gzip.compress(text.encode()), headers=headers, timeout=30
    )


def batch_text(epoch: str, events: list[str]) -> str:
    return f'{{"terminal":"wb1","epoch":"{epoch}","events":[{",".join(events)}]}}'


def event_text(epoch: str, seq: int, data: str, at: str = "2026-11-29T10:00:00.000Z") -> str:
    ev = envelope(seq, epoch, at=at, data={})
    return json.dumps(ev).replace('"data": {}', f'"data": {data}')


def test_non_finite_numbers_and_far_years_are_rejected_per_event(receiver: Receiver) -> None:
    ep = "numbers"
    resp = post_text(
        receiver,
        batch_text(
            ep,
            [
                event_text(ep, 1, '{"bags": NaN}'),
                event_text(ep, 2, '{"bags": Infinity}'),
                event_text(ep, 3, '{"bags": 1e999}'),
                event_text(ep, 4, '{"bags": 5}', at="9999-12-31T23:59:59.000Z"),
                event_text(ep, 5, '{"bags": -3}'),
                event_text(ep, 6, '{"bags": 5}'),
            ],
        ),
    )
    assert resp.status_code == 200
    assert resp.json() == {
        "acked_through": 6,
        "rejected": [
            {"seq": 1, "error": "data.bags must be a finite number, not nan"},
            {"seq": 2, "error": "data.bags must be a finite number, not inf"},
            {"seq": 3, "error": "data.bags must be a finite number, not inf"},
            {"seq": 4, "error": "at must be a time between the years 1970 and 2199"},
            {"seq": 5, "error": "data.bags must be a number from 0 to 1e+15"},
        ],
    }
    assert receiver.rows("SELECT seq FROM events WHERE epoch = ?", (ep,)) == [(6,)]
    kpi = httpx.get(f"{receiver.url}/api/v1/kpi", params={"day": "2026-11-29"}, headers=KPI_AUTH)
    assert kpi.status_code == 200


def test_lone_surrogates_and_control_characters_are_rejected_per_event(
    receiver: Receiver,
) -> None:
    ep = "texts"
    resp = post_text(
        receiver,
        batch_text(
            ep,
            [
                event_text(ep, 1, '{"text": "a\\ud800b"}'),
                event_text(ep, 2, '{"operator": "ann\\u0000"}'),
                event_text(ep, 3, '{"order": "' + "x" * 65 + '"}'),
                event_text(ep, 4, '{"\\udfff": 1}'),
                event_text(ep, 5, '{"text": "two\\nlines"}'),
            ],
        ),
    )
    assert resp.status_code == 200
    rejected = resp.json()["rejected"]
    assert rejected == [
        {
            "seq": 1,
            "error": "data.text is not valid Unicode text (it holds a lone surrogate or"
            " undecodable bytes); type it again as UTF-8",
        },
        {
            "seq": 2,
            "error": "data.operator holds the control character U+0000; it must be one line;"
            " remove it",
        },
        {"seq": 3, "error": "data.order has 65 characters; keep it to at most 64"},
        {
            "seq": 4,
            "error": "a key of data is not valid Unicode text (it holds a lone surrogate or"
            " undecodable bytes); type it again as UTF-8",
        },
    ]
    assert receiver.rows("SELECT seq, data FROM events WHERE epoch = ?", (ep,)) == [
        (5, '{"text":"two\\nlines"}')
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("[" * 100_000 + "]" * 100_000, "the body nests too deep"),
        ('{"terminal":"wb1\\ud800","epoch":"e","events":[]}', "terminal must be"),
        (
            batch_text("deep", [event_text("deep", 1, '{"a":' * 40 + "1" + "}" * 40)]),
            "",  # a 200 with a per-event rejection, checked below
        ),
    ],
)
def test_nesting_and_surrogates_are_4xx_not_500(receiver: Receiver, body: str, error: str) -> None:
    resp = post_text(receiver, body)
    if error:
        assert resp.status_code == 400
        assert resp.json()["error"].startswith(error)
    else:
        assert resp.status_code == 200
        assert resp.json()["rejected"] == [
            {
                "seq": 1,
                "error": "data.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a nests deeper than 16 levels;"
                " send a flatter value",
            }
        ]


def test_a_resent_id_with_other_content_is_a_conflict(receiver: Receiver) -> None:
    ep = "conflict"
    assert post(receiver, [envelope(1, ep), envelope(2, ep)], epoch=ep).json() == {
        "acked_through": 2,
        "rejected": [],
    }
    changed = envelope(2, ep, data={"text": "rewritten"})
    resp = post(receiver, [envelope(1, ep), changed, envelope(3, ep)], epoch=ep)
    assert resp.json() == {
        "acked_through": 3,
        "rejected": [
            {
                "seq": 2,
                "error": f"event wb1:{ep}:2 was already stored with other content;"
                " the first version is kept",
            }
        ],
    }
    assert receiver.rows("SELECT seq, data FROM events WHERE epoch = ? ORDER BY seq", (ep,)) == [
        (1, '{"text":"n1"}'),
        (2, '{"text":"n2"}'),
        (3, '{"text":"n3"}'),
    ]
    assert receiver.rows(
        "SELECT stored, duplicates, conflicts FROM batches WHERE epoch = ? ORDER BY id", (ep,)
    ) == [(2, 0, 0), (1, 1, 1)]


def test_a_slow_request_head_is_cut_off(receiver: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=60) as s:
        s.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        deadline = time.monotonic() + 60
        closed = False
        while time.monotonic() < deadline and not closed:
            closed = s.recv(1024) == b""
    assert closed
    assert httpx.get(f"{receiver.url}/api/v1/health").status_code == 200


def test_day_events_reads_the_day_and_its_visits_only(tmp_path: Path) -> None:
    store = ReceiverStore(str(tmp_path / "r.db"))

    def row(seq: int, kind: str, at: str, data: dict[str, Any]) -> tuple[Any, ...]:
        return (seq, kind, at, seq, "b", json.dumps(data))

    rows = [
        row(1, "visit.arrived", "2026-11-27T10:00:00.000Z", {"visit": "old"}),
        row(2, "visit.arrived", "2026-11-28T23:00:00.000Z", {"visit": "v1"}),
        row(3, "window.arrived", "2026-11-28T20:00:00.000Z", {"ticket": "t1"}),
        row(4, "visit.gate_in", "2026-11-29T01:00:00.000Z", {"visit": "v1"}),
        row(5, "packer.tally", "2026-11-29T02:00:00.000Z", {"bags": 3}),
        row(6, "visit.exited", "2026-11-30T02:00:00.000Z", {"visit": "v1"}),
        row(7, "operator.note", "2026-11-28T20:00:00.000Z", {"text": "yesterday"}),
    ]
    store.ingest("wb1", "e", rows, [], "wb1:e:1-7")
    events = store.day_events(
        "2026-11-29T00:00:00.000Z", "2026-11-30T00:00:00.000Z", "2026-11-28T00:00:00.000Z"
    )
    store.close()
    assert sorted(e.seq for e in events) == [2, 3, 4, 5]

"""Fuzz (hypothesis): arbitrary JSON at every local API op of a real daemon and arbitrary batches
at the real receiver; both stay up, answer one sentence, and nothing stored before changes."""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemon import Daemon, write_config
from tests.e2e.test_bad_input_daemon import Line, stored
from tests.sync.helpers import Receiver
from tests.sync.test_receiver import AUTH, TOKENS, envelope, post

# The suite's profile (tests/conftest.py), plus function-scoped fixtures: the daemon and the
# receiver are started once per test and every example talks to them.
FUZZ = settings(
    max_examples=120,
    suppress_health_check=[
        *settings.default.suppress_health_check,
        HealthCheck.function_scoped_fixture,
    ],
)

texts = st.text(
    alphabet=st.characters(codec=None, categories=None, exclude_categories=()), max_size=80
) | st.sampled_from(
    ["\ud800", "a\udfffb", "\x00", "\x1b[2J", "=cmd|' /C calc'!A0", "\u2028", "x" * 5000]
)
numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e308, -0.0, 2**63, 10**15 + 1])
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "text", "operator", "order", "product", "plate", "ticket", "window", "service", "packer",
    "visit", "reason", "note", "samples_kg", "seals", "planned_kg", "weight_kg", "bags", "bag_kg",
    "day", "target_event", "field", "new", "load", "role", "result", "point", "scale", "kind",
    "data", "expected_repair_min", "live",
]  # fmt: skip


def encode(value: Any) -> bytes:
    """JSON as a careless client sends it: NaN/Infinity allowed, surrogates escaped."""
    return json.dumps(value, allow_nan=True).encode()


def one_sentence(error: Any) -> bool:
    return (
        isinstance(error, str)
        and 0 < len(error) < 2000
        and "\n" not in error
        and "Traceback" not in error
    )


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(write_config(tmp_path_factory.mktemp("fuzz"))) as d:
        d.request("note.add", text="stored before the fuzz", operator="ann")
        d.request(
            "visit.arrive", plate="苏A12345", order="O-1", product="P.O 42.5", load="bulk",
            planned_kg=30000,
        )  # fmt: skip
        yield d


def known_ops(d: Daemon) -> list[str]:
    line = Line(d.socket)
    try:
        error = line.ask(b'{"id":1,"op":"no-such-op"}')["error"]
    finally:
        line.close()
    return error.split("known ops: ", 1)[1].split(", ")


@pytest.fixture(scope="module")
def ops(daemon: Daemon) -> list[str]:
    names = known_ops(daemon)
    assert "note.add" in names and "window.arrive" in names
    return [op for op in names if op != "subscribe"]


@pytest.fixture(scope="module")
def before(daemon: Daemon) -> list[tuple[int, str, dict[str, Any]]]:
    return stored(daemon.config)


NASTY = st.sampled_from(
    ["\ud800", "a\udfffb", "\x00", "\x1b[2J", "=cmd|' /C calc'!A0", "\u2028", "x" * 5000, "1e999"]
)
bodies = st.dictionaries(
    st.sampled_from(FIELDS) | texts,
    NASTY | json_values | st.lists(NASTY | numbers, max_size=3),
    min_size=1,
    max_size=6,
)


@FUZZ
@given(body=bodies)
def test_every_op_survives_arbitrary_json(
    daemon: Daemon,
    ops: list[str],
    before: list[tuple[int, str, dict[str, Any]]],
    body: dict[str, Any],
) -> None:
    line = Line(daemon.socket)
    try:
        for i, op in enumerate(ops):  # the same body at every op
            answer = line.ask(encode({**body, "id": i, "op": op}))
            assert set(answer) in ({"id", "ok", "result"}, {"id", "ok", "error"}), answer
            if not answer["ok"]:
                assert one_sentence(answer["error"]), (op, answer)
                assert "the daemon failed to run" not in answer["error"], (op, answer)
        assert line.ask(b'{"id":-1,"op":"ping"}')["ok"] is True
    finally:
        line.close()
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()
    now = stored(daemon.config)
    assert now[: len(before)] == before


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    with Receiver(tmp_path_factory.mktemp("fuzz-receiver"), TOKENS) as r:
        assert post(r, [envelope(1, "kept"), envelope(2, "kept")], epoch="kept").status_code == 200
        yield r


def event_values(epoch: str) -> st.SearchStrategy[Any]:
    good = st.builds(
        lambda seq, data, kind: {**envelope(seq, epoch), "data": data, "kind": kind},
        st.integers(min_value=1, max_value=50),
        st.dictionaries(st.sampled_from(FIELDS) | texts, json_values, max_size=4),
        st.sampled_from(["operator.note", "visit.arrived", "packer.tally", "window.served"]),
    )
    tweaked = st.builds(
        lambda ev, key, value: {**ev, key: value},
        good,
        st.sampled_from(["at", "mono_ns", "boot", "kind", "id", "seq", "terminal"]),
        json_values,
    )
    return good | tweaked | json_values


@FUZZ
@given(data=st.data())
def test_the_receiver_survives_arbitrary_batches(receiver: Receiver, data: st.DataObject) -> None:
    every = "SELECT epoch, seq, kind, at, data FROM events"
    kept = set(receiver.rows(every))
    epoch = data.draw(st.sampled_from(["f1", "f2", "kept"]), label="epoch")
    events = data.draw(st.lists(event_values(epoch), max_size=6), label="events")
    body = {"terminal": "wb1", "epoch": epoch, "events": events}
    if data.draw(st.booleans(), label="mangle top level"):
        body = data.draw(
            st.dictionaries(st.sampled_from(["terminal", "epoch", "events"]), json_values)
        )
    resp = httpx.post(
        f"{receiver.url}/api/v1/events",
        content=gzip.compress(encode(body)),
        headers={**AUTH, "Content-Encoding": "gzip"},
        timeout=60,
    )
    assert resp.status_code in (200, 400, 403), resp.text
    answer = resp.json()
    if resp.status_code == 200:
        assert all(one_sentence(r["error"]) for r in answer["rejected"])
    else:
        assert one_sentence(answer["error"])
    kpi = httpx.get(
        f"{receiver.url}/api/v1/kpi",
        params={"day": "2026-11-29"},
        headers={"Authorization": "Bearer tok-pk1-0000000002"},
        timeout=60,
    )
    assert kpi.status_code == 200
    assert kept <= set(receiver.rows(every))  # every event stored before is there, unchanged
    assert receiver.proc is not None and receiver.proc.poll() is None


def test_stored_numbers_are_finite(receiver: Receiver, tmp_path: Path) -> None:
    """After the fuzz: no stored number is NaN or infinite (the export reads every event)."""
    for (data,) in receiver.rows("SELECT data FROM events"):

        def finite(value: Any) -> None:
            if isinstance(value, float):
                assert math.isfinite(value)
            elif isinstance(value, dict):
                for v in value.values():
                    finite(v)
            elif isinstance(value, list):
                for v in value:
                    finite(v)

        finite(json.loads(data))

"""The central server: reports per plant and for the group equal the pure KPI engine on both
engines, kept day reports follow late events, and two processes on one PostgreSQL store
every event once."""

from __future__ import annotations

import gzip
import json
import random
import socket
import threading
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from agent.config import KpiConfig
from agent.domain import kpis
from agent.domain.events import Event
from sync.receiver import reports
from sync.tokens import TokenFileError, parse_entries
from tests.agent.timeline import Timeline
from tests.pgcluster import PgCluster
from tests.sync.helpers import Receiver, write_private
from tests.sync.month import (
    FIRST,
    PLANTS,
    READER_TOKEN,
    envelope,
    month_events,
    token,
    tokens_file,
)

TZ = ZoneInfo("Asia/Shanghai")
DAYS = 6
READER = {"Authorization": f"Bearer {READER_TOKEN}"}


def post(url: str, terminal: str, events: list[Event]) -> httpx.Response:
    doc = {"terminal": terminal, "epoch": "e1", "events": [envelope(e) for e in events]}
    return httpx.post(
        f"{url}/api/v1/events",
        content=gzip.compress(json.dumps(doc).encode()),
        headers={"Authorization": f"Bearer {token(terminal)}", "Content-Encoding": "gzip"},
        timeout=30,
    )


def post_all(url: str, streams: dict[str, list[Event]], batch: int = 40) -> None:
    for terminal, events in streams.items():
        for i in range(0, len(events), batch):
            r = post(url, terminal, events[i : i + batch])
            assert r.status_code == 200, r.text
            assert r.json() == {"acked_through": events[i : i + batch][-1].seq, "rejected": []}


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    url = request.getfixturevalue("pg_cluster").new_database() if request.param != "sqlite" else ""
    with Receiver(tmp_path / "r", tokens_file(), db_url=url) as r:
        yield r


def test_reports_equal_the_pure_engine_per_plant_and_for_the_group(server: Receiver) -> None:
    streams = month_events(FIRST, DAYS)
    post_all(server.url, streams)
    everything = [e for es in streams.values() for e in es]
    cfg = KpiConfig()
    scopes: list[tuple[str | None, set[str]]] = [(None, set(streams))]
    scopes += [(p, set(ts)) for p, ts in PLANTS.items()]
    for d in range(DAYS + 1):
        day = FIRST.date() + timedelta(days=d)
        for plant, terminals in scopes:
            pure = kpis.compute([e for e in everything if e.terminal in terminals], day, TZ, cfg)
            params = {"day": day.isoformat()} | ({"plant": plant} if plant else {})
            for _ in range(2):  # computed, then kept
                got = httpx.get(f"{server.url}/api/v1/report", params=params, headers=READER)
                assert got.status_code == 200, got.text
                assert got.json() == json.loads(json.dumps(pure))
    month = FIRST.strftime("%Y-%m")
    got = httpx.get(f"{server.url}/api/v1/report", params={"month": month}, headers=READER)
    pure_days = [
        kpis.compute(everything, FIRST.date().replace(day=n), TZ, cfg) for n in range(1, 32)
    ]
    assert got.json()["days"] == json.loads(json.dumps(pure_days))
    assert got.json()["total"] == json.loads(json.dumps(reports.month_total(pure_days, cfg)))
    assert got.json()["total"]["return_rate"]["bags"] > 0


def test_a_kept_day_report_follows_a_late_event(server: Receiver) -> None:
    streams = month_events(FIRST, 2)
    pk1 = streams.pop("pk1")
    post_all(server.url, streams)
    day = FIRST.date()
    params = {"day": day.isoformat(), "plant": "north"}
    before = httpx.get(f"{server.url}/api/v1/report", params=params, headers=READER).json()
    assert before["return_rate"]["bags"] == 0
    post_all(server.url, {"pk1": pk1})  # a terminal that was offline syncs the next day
    after = httpx.get(f"{server.url}/api/v1/report", params=params, headers=READER).json()
    north = [e for t in PLANTS["north"] for e in (pk1 if t == "pk1" else streams[t])]
    assert after == json.loads(json.dumps(kpis.compute(north, day, TZ, KpiConfig())))
    assert after["return_rate"]["bags"] > 0


def test_a_kept_day_report_follows_a_visit_event_days_older(server: Receiver) -> None:
    """A visit's arrival synced late from another terminal, five days before its exit, refreshes
    the kept report of the day the visit ended."""
    gate = Timeline(terminal="wb1", epoch="e1", boot="b1", start=FIRST)
    arrived = gate.event("visit.arrived", visit="v-old", plate="苏A12345", order="SO1",
                         product="P.O 42.5", load="bulk", planned_kg=30000)  # fmt: skip
    scale = Timeline(terminal="wb2", epoch="e1", boot="b2", start=FIRST + timedelta(days=5))
    rest = [scale.event("visit.gate_in", visit="v-old")]
    for kind, data in (
        ("visit.loading_started", {"point": "line1"}),
        ("visit.loading_finished", {"point": "line1"}),
        ("visit.sealed", {"seals": ["S1"]}),
        ("visit.exited", {}),
    ):
        scale.advance(10)
        rest.append(scale.event(kind, visit="v-old", **data))
    post_all(server.url, {"wb2": rest})
    day = (FIRST + timedelta(days=5)).date()
    url, params = f"{server.url}/api/v1/report", {"day": day.isoformat()}
    before = httpx.get(url, params=params, headers=READER).json()
    post_all(server.url, {"wb1": [arrived]})
    after = httpx.get(url, params=params, headers=READER).json()
    assert after == json.loads(json.dumps(kpis.compute([arrived, *rest], day, TZ, KpiConfig())))
    assert after != before


def test_a_stage_by_plate_and_order_joins_an_arrival_of_the_day_before(server: Receiver) -> None:
    """wb2 loaded a truck by plate and order (wb1's arrival had not reached it); the arrival was
    the day before: the day's report joins them, as every terminal's projection does."""
    day = (FIRST + timedelta(days=5)).date()
    midnight = datetime.combine(day, time(0), TZ)  # the arrival at 23:30, the loading at 00:30
    gate = Timeline(terminal="wb1", epoch="e1", boot="b1", start=midnight - timedelta(minutes=30))
    arrived = gate.event("visit.arrived", visit="v-eve", plate="苏A12345", order="SO7",
                         product="P.O 42.5", load="bagged", planned_kg=30000)  # fmt: skip
    line = Timeline(terminal="wb2", epoch="e1", boot="b2", start=midnight + timedelta(minutes=30))
    stages = [line.event("visit.loading_started", plate="苏A12345", order="SO7", point="line1")]
    line.advance(1800)
    stages.append(
        line.event("visit.loading_finished", plate="苏A12345", order="SO7", point="line1", bags=600)
    )
    post_all(server.url, {"wb1": [arrived], "wb2": stages})
    got = httpx.get(
        f"{server.url}/api/v1/report", params={"day": day.isoformat()}, headers=READER
    ).json()
    joined = kpis.compute([arrived, *stages], day, TZ, KpiConfig())
    assert joined != kpis.compute(stages, day, TZ, KpiConfig())  # the arrival matters to the day
    assert got == json.loads(json.dumps(joined))


def test_a_day_reads_its_plan_whenever_it_was_entered(server: Receiver) -> None:
    streams = month_events(FIRST, 4)
    post_all(server.url, streams)
    day = FIRST.date() + timedelta(days=3)
    office = Timeline(terminal="wb2", start=FIRST)  # three days before the day it plans
    office.seq = streams["wb2"][-1].seq
    early = office.event("plan.set", day=day.isoformat(), tonnes="500", product="", operator="w")
    office.wall = FIRST + timedelta(days=6)  # three days after: the office corrects it
    late = office.event("plan.set", day=day.isoformat(), tonnes="400", product="", operator="w")
    everything = [e for es in streams.values() for e in es]
    params = {"day": day.isoformat()}
    for plan, tonnes in ((early, 500.0), (late, 400.0)):
        post_all(server.url, {"wb2": [plan]})
        everything.append(plan)
        got = httpx.get(f"{server.url}/api/v1/report", params=params, headers=READER).json()
        assert got == json.loads(json.dumps(kpis.compute(everything, day, TZ, KpiConfig())))
        assert (got["daily_completion"]["basis"], got["daily_completion"]["planned_t"]) == (
            "plan",
            tonnes,
        )


def test_reports_need_a_reader_and_a_known_plant(server: Receiver) -> None:
    url = f"{server.url}/api/v1/report"
    assert httpx.get(url, params={"day": "2026-10-01"}).status_code == 401
    bad = httpx.get(url, params={"day": "2026-10-01"}, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    unknown = httpx.get(url, params={"day": "2026-10-01", "plant": "east"}, headers=READER)
    assert unknown.status_code == 400
    assert (
        unknown.json()["error"] == "plant 'east' is not in the tokens file; known: 'north', 'south'"
    )
    assert httpx.get(url, params={"month": "2026-13"}, headers=READER).status_code == 400
    # A reader's token reads reports but cannot post events.
    doc = {"terminal": "wb1", "epoch": "e1", "events": []}
    refused = httpx.post(
        f"{server.url}/api/v1/events",
        content=gzip.compress(json.dumps(doc).encode()),
        headers={**READER, "Content-Encoding": "gzip"},
    )
    assert refused.status_code == 403
    assert refused.json() == {"error": "this token may only read; it cannot post events"}


def test_tokens_file_plants_and_readers() -> None:
    entries = parse_entries(tokens_file() + "wb9:tok-wb9-0000000001\n", "tokens")
    assert [(e.name, e.plant, e.reader) for e in entries] == [
        ("wb1", "north", False),
        ("pk1", "north", False),
        ("wb2", "south", False),
        ("kaoping", "", True),
        ("wb9", "", False),
    ]
    with pytest.raises(TokenFileError, match="puts terminal 'wb1' in plant 'south', line 1"):
        parse_entries("north/wb1:tok-1-00000000\nsouth/wb1:tok-2-00000000\n", "tokens")
    with pytest.raises(TokenFileError, match="line 1 of the tokens file tokens is not"):
        parse_entries("@north/kaoping:tok-1-00000000\n", "tokens")
    with pytest.raises(TokenFileError, match="has no `terminal:token` line"):
        parse_entries("@kaoping:tok-1-00000000\n", "tokens")


def test_token_scopes_in_the_tokens_file() -> None:
    entries = parse_entries(
        "north/wb1:tok-a-00000001\nnorth/pk1[push]:tok-b-00000001\n"
        "south/ro[read]:tok-c-00000001\n@kaoping:tok-d-00000001\n",
        "tokens",
    )
    assert [(e.name, e.plant, e.scopes) for e in entries] == [
        ("wb1", "north", ("push", "read")),
        ("pk1", "north", ("push",)),
        ("ro", "south", ("read",)),
        ("kaoping", "", ("read",)),
    ]
    with pytest.raises(TokenFileError, match=r"gives the scopes \[write\]; a terminal's scopes"):
        parse_entries("wb1[write]:tok-a-00000001\n", "tokens")
    with pytest.raises(TokenFileError, match=r"gives the scopes \[push\]"):
        parse_entries("wb1:tok-a-00000001\n@kaoping[push]:tok-d-00000001\n", "tokens")


def test_a_token_pushes_its_own_streams_and_reads_its_plants(tmp_path: Path) -> None:
    tokens = (
        "north/wb1:tok-wb1-0000000001\nnorth/pk1[push]:tok-pk1-0000000001\n"
        "south/wb2:tok-wb2-0000000001\nsouth/ro[read]:tok-ro-00000001\n"
        f"@kaoping:{READER_TOKEN}\n"
    )
    streams = month_events(FIRST, 1)
    with Receiver(tmp_path / "r", tokens) as server:
        post_all(server.url, {t: es[:5] for t, es in streams.items()})
        doc = {"terminal": "ro", "epoch": "e1", "events": []}
        refused = httpx.post(
            f"{server.url}/api/v1/events",
            content=gzip.compress(json.dumps(doc).encode()),
            headers={"Authorization": "Bearer tok-ro-00000001", "Content-Encoding": "gzip"},
        )
        assert (refused.status_code, refused.json()) == (
            403,
            {"error": "this token may only read; it cannot post events"},
        )

        def pulled(tok: str) -> httpx.Response:
            return httpx.post(
                f"{server.url}/v1/pull",
                json={"cursors": [], "wait_s": 0},
                headers={"Authorization": f"Bearer {tok}"},
            )

        for tok, plant in (("tok-wb1-0000000001", "north"), ("tok-ro-00000001", "south")):
            answer = pulled(tok)
            assert answer.status_code == 200, answer.text
            seen = {s["terminal"] for s in answer.json()["streams"]}
            assert seen == set(PLANTS[plant]), plant
        assert pulled("tok-pk1-0000000001").status_code == 401  # push only: cannot read
        url = f"{server.url}/api/v1/report"
        mine = {"Authorization": "Bearer tok-wb1-0000000001"}
        other = httpx.get(url, params={"day": "2026-10-01", "plant": "south"}, headers=mine)
        assert (other.status_code, other.json()) == (
            403,
            {"error": "this token reads only the plant 'north'"},
        )
        own = httpx.get(url, params={"day": "2026-10-01"}, headers=mine)
        north = [e for t in PLANTS["north"] for e in streams[t][:5]]
        want = kpis.compute(north, date(2026, 10, 1), TZ, KpiConfig())
        assert own.json() == json.loads(json.dumps(want))


def test_workers_share_one_socket_on_postgresql_and_not_on_sqlite(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """`--workers 2` on PostgreSQL stores every event once through either process; on SQLite
    it is refused with one sentence."""
    refused = Receiver(tmp_path / "s", tokens_file(), extra=("--workers", "2"))
    with pytest.raises(RuntimeError, match="--workers above 1 needs PostgreSQL"):
        refused.start()
    url = pg_cluster.new_database()
    streams = month_events(FIRST, 1)
    with Receiver(tmp_path / "p", tokens_file(), db_url=url, extra=("--workers", "2")) as server:
        threads = [
            threading.Thread(target=post_all, args=(server.url, {t: es}, 5))
            for t, es in streams.items()
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        rows = server.rows("SELECT terminal, count(*), max(seq) FROM events GROUP BY terminal"
                           " ORDER BY terminal")  # fmt: skip
        assert rows == sorted((t, len(es), len(es)) for t, es in streams.items())
        assert server.proc is not None
        parent = server.proc.pid
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        assert len(children) == 2


def test_a_port_in_use_is_refused_with_one_sentence_and_nothing_opened(tmp_path: Path) -> None:
    from tests.daemon import tally

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        listen = f"127.0.0.1:{holder.getsockname()[1]}"
        db, tokens = tmp_path / "central.db", write_private(tmp_path / "tokens", tokens_file())
        out = tally("serve", "--db", str(db), "--listen", listen, "--tokens", str(tokens))
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == (
        f"tally: cannot listen on {listen} (Address already in use); stop the program holding"
        " that port or set --listen to a free one\n"
    )
    assert not db.exists()


def test_two_processes_on_one_postgresql_store_each_event_once(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """Five terminals post overlapping, resent batches through a random process each time;
    one process is SIGKILLed mid-stream and restarted."""
    url = pg_cluster.new_database()
    terminals = ["t1", "t2", "t3", "t4", "t5"]
    tokens = "".join(f"p/{t}:{token(t)}\n" for t in terminals)
    n = 300
    a = Receiver(tmp_path / "a", tokens, db_url=url).start()
    b = Receiver(tmp_path / "b", tokens, db_url=url).start()
    procs = [a, b]
    acks: dict[str, list[int]] = {t: [] for t in terminals}
    errors: list[str] = []
    killed = threading.Event()

    def run(terminal: str, seed: int) -> None:
        rng = random.Random(seed)
        events = [
            Event(terminal, "e1", s, "operator.note", "2026-10-01T02:00:00.000Z", s, "b", {"n": s})
            for s in range(1, n + 1)
        ]
        sent = 0
        while sent < n:
            lo = max(0, sent - rng.randint(0, 10))  # resend some already-sent events
            hi = min(n, sent + rng.randint(1, 25))
            target = rng.choice(procs)
            try:
                r = post(target.url, terminal, events[lo:hi])
            except httpx.HTTPError:
                continue  # the process was killed: retry elsewhere
            if r.status_code != 200:
                errors.append(r.text)
                return
            acks[terminal].append(r.json()["acked_through"])
            sent = max(sent, r.json()["acked_through"])
            if terminal == "t1" and sent > n // 2 and not killed.is_set():
                killed.set()
                a.kill()

    threads = [threading.Thread(target=run, args=(t, i)) for i, t in enumerate(terminals)]
    # The same batch through both processes at the same moment.
    for r in (a, b):
        dup = threading.Thread(target=post, args=(r.url, "t5", []))
        dup.start()
        dup.join()
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    a.start()
    try:
        again = [
            Event("t1", "e1", s, "operator.note", "2026-10-01T02:00:00.000Z", s, "b", {"n": s})
            for s in range(1, n + 1)
        ]
        same = [threading.Thread(target=post, args=(r.url, "t1", again)) for r in (a, b)]
        for th in same:
            th.start()
        for th in same:
            th.join(60)
        assert errors == []
        assert killed.is_set()
        rows = a.rows("SELECT terminal, count(*), count(DISTINCT seq), max(seq) FROM events"
                      " GROUP BY terminal ORDER BY terminal")  # fmt: skip
        assert rows == [(t, n, n, n) for t in terminals]
        assert a.rows("SELECT terminal, acked_through FROM streams ORDER BY terminal") == [
            (t, n) for t in terminals
        ]
        for t in terminals:
            assert acks[t] and max(acks[t]) == n and all(0 < x <= n for x in acks[t])
    finally:
        a.stop()
        b.stop()


def test_the_day_of_an_event_reaches_the_days_that_read_it() -> None:
    from sync.receiver.days import revision_span, touched_days

    day = date(2026, 10, 1)
    start = FIRST.replace(hour=16, minute=0)  # 00:00 on 10-02 in Shanghai, 16:00 UTC 10-01
    first, last = revision_span(start, start + timedelta(days=1))
    assert (first, last) == (date(2026, 9, 30), date(2026, 10, 2))
    assert touched_days(["2026-10-01T01:00:00.000Z"]) == ["2026-10-01", "2026-10-02", "2026-10-03"]
    assert day.isoformat() in touched_days(["2026-09-30T23:59:59.999Z"])


def test_the_vendored_chart_library_is_the_pinned_npm_build() -> None:
    """`echarts.min.js` is `package/dist/echarts.min.js` of echarts@6.1.0, unchanged, with its
    licences beside it (docs/server.md says how to upgrade it)."""
    import hashlib

    static = Path(reports.__file__).with_name("static")
    data = (static / "echarts.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == (
        "b66b25aeb4df84e33199dc21694014d336d222cbd9deb0e5a7c14bd6aa0d0fd0"
    )
    for name in ("echarts.LICENSE", "echarts.NOTICE", "zrender.LICENSE", "d3.LICENSE"):
        assert (static / name).stat().st_size > 100, name


def test_users_file_keeps_salted_scrypt_hashes_only(tmp_path: Path) -> None:
    from sync.receiver.users import UserError, UserTable, add_user

    path = str(tmp_path / "users")
    assert add_user(path, "li", "reader", "north", "睡莲-pass-2026") is True
    assert add_user(path, "wang", "admin", "", "睡莲-pass-2026") is True
    text = Path(path).read_text()
    assert "睡莲" not in text and (tmp_path / "users").stat().st_mode & 0o077 == 0
    li, wang = (line.split(":")[3] for line in text.splitlines()[1:])
    assert li.startswith("scrypt$16384$8$1$") and li != wang  # each its own salt
    table = UserTable.load(path)
    user = table.check("li", "睡莲-pass-2026")
    assert user is not None and (user.role, user.plant) == ("reader", "north")
    assert table.check("li", "wrong-password") is None
    assert table.check("nobody", "睡莲-pass-2026") is None
    with pytest.raises(UserError, match="the password must be at least 8 characters"):
        add_user(path, "zhao", "reader", "", "short")
    Path(path).write_text("li:reader:north:plain-text-password\n")
    with pytest.raises(UserError, match=r"line 1 of the users file .* is not `name:role:plant"):
        UserTable.load(path)

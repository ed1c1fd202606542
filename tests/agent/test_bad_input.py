"""Bad input never stops the store, never poisons a ledger or a report (issue 16), in process."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from agent.cli import ledger_files
from agent.config import ConfigError, KpiConfig, StorageConfig, parse
from agent.daemon.alerts import Alerts
from agent.daemon.api import ApiServer, StartupError
from agent.daemon.hub import Hub
from agent.daemon.store import Store, Writer, _Append, set_state
from agent.domain import kpis, text_rules
from agent.domain.events import Event, Stamp
from sync.sender.forwarder import Retention, redact_url
from sync.sender.status import ACKED
from sync.tokens import TokenFileError, parse_table

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


async def test_one_unstorable_event_fails_alone_and_the_store_goes_on(tmp_path: Path) -> None:
    writer = Writer(str(tmp_path / "a.db"), "wb1")
    try:
        futures = [
            writer.submit("operator.note", {"text": "before"}),
            writer.submit("operator.note", {"text": "bad \ud800"}),
            writer.submit("weighing.captured", {"weight_kg": float("nan")}),
            writer.submit("operator.note", {"text": "after"}),
        ]
        results = await asyncio.gather(*map(asyncio.wrap_future, futures), return_exceptions=True)
        assert [type(r).__name__ for r in results] == [
            "Event",
            "InvalidInput",
            "InvalidInput",
            "Event",
        ]
        assert str(results[1]) == (
            "data.text is not valid Unicode text (it holds a lone surrogate or undecodable"
            " bytes); type it again as UTF-8"
        )
        assert writer.failed is None
        ev = await writer.append("operator.note", {"text": "later"})
        assert ev.seq == 3
    finally:
        writer.close()
    store = Store(str(tmp_path / "a.db"))
    assert [e.data["text"] for e in store.iter_events()] == ["before", "after", "later"]
    store.close()


async def test_a_row_that_slips_past_validation_is_isolated(tmp_path: Path) -> None:
    """Defence in depth: an item that reaches the writer thread unchecked fails alone."""
    writer = Writer(str(tmp_path / "a.db"), "wb1")
    try:
        good = writer.submit("operator.note", {"text": "good"})
        sneaky = _Append("operator.note", {"text": "\udcff"}, Stamp.now(), None)
        writer._q.put(sneaky)  # as if validation had been bypassed
        also_good = writer.submit("operator.note", {"text": "also good"})
        results = await asyncio.gather(
            *map(asyncio.wrap_future, (good, sneaky.future, also_good)), return_exceptions=True
        )
        assert [type(r).__name__ for r in results] == ["Event", "InvalidInput", "Event"]
        assert writer.failed is None
        assert (await writer.append("operator.note", {"text": "still"})).seq == 3
    finally:
        writer.close()


async def test_the_socket_path_is_never_deleted_unless_it_is_a_socket(tmp_path: Path) -> None:
    precious = tmp_path / "tally.db"
    precious.write_bytes(b"the open database")
    server = ApiServer(str(precious), Hub())
    with pytest.raises(StartupError) as err:
        await server.start()
    assert str(err.value) == (
        f"terminal.socket {precious} is an existing file that is not a socket;"
        " point terminal.socket at a free path (Tally never deletes it)"
    )
    assert precious.read_bytes() == b"the open database"


def terminal_toml(**extra: str) -> dict[str, object]:
    return {"terminal": {"id": "wb1", "database": "/var/lib/tally/tally.db", **extra}}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            terminal_toml(socket="/var/lib/tally/tally.db"),
            "terminal.socket: '/var/lib/tally/tally.db' is the file of terminal.database;"
            " give the socket a path of its own",
        ),
        (
            terminal_toml(socket="/run/" + "s" * 120),
            "terminal.socket: is 125 bytes long; a Unix socket path has at most 107, not '/run/"
            + "s" * 120
            + "'",
        ),
        (
            {
                **terminal_toml(),
                "scale": [{"name": "line1", "port": "/dev/ttyS0", "protocol": "xk3190"}],
                "packer": [{"name": "line1", "host": "127.0.0.1"}],
            },
            "packer[0].name: 'line1' is also a scale's name; scales and packers need different"
            " names",
        ),
        (
            {**terminal_toml(), "sync": {"url": "https://h:99999", "token_file": "/t"}},
            "sync.url: has a port that is not a number from 1 to 65535, not 'https://h:99999'",
        ),
        (
            {**terminal_toml(), "sync": {"url": "https://u:secret@h", "token_file": "/t"}},
            "sync.url: must not hold a user or password (user:pass@); the token file"
            " authenticates, not 'https://u:secret@h'",
        ),
    ],
)
def test_config_refuses(data: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(data)
    assert problem in err.value.problems


def test_the_sync_url_handed_to_local_clients_has_no_password() -> None:
    assert redact_url("https://user:secret@plant.example:8443/x") == "https://plant.example:8443/x"
    assert redact_url("http://plant.example/x") == "http://plant.example/x"


def test_a_token_listed_for_two_terminals_is_an_error() -> None:
    with pytest.raises(TokenFileError) as err:
        parse_table("wb1:tok-shared-000001\npk1:tok-shared-000001\n", "tokens")
    assert str(err.value) == (
        "line 2 of the tokens file tokens gives terminal 'pk1' the token of terminal 'wb1'"
        " (line 1); give each terminal its own token"
    )
    assert parse_table("wb1:tok-a-00000001\nwb1:tok-b-00000001\n", "t") == [
        ("wb1", "tok-a-00000001"),
        ("wb1", "tok-b-00000001"),
    ]


async def test_retention_keeps_dead_letters(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    writer = Writer(db, "wb1")
    store = Store(db)
    try:
        for i in range(4):
            await writer.append(
                "operator.note", {"text": str(i)}, stamp=Stamp(NOW - timedelta(days=200), i)
            )

        def dead(conn: object) -> None:
            conn.execute("INSERT INTO dead_letters VALUES (2, 'refused', 'x')")  # type: ignore[attr-defined]
            set_state(conn, {ACKED: 4})  # type: ignore[arg-type]

        await writer.run(dead)
        retention = Retention(
            StorageConfig(retention_days=90), writer, db, Alerts(writer, Hub(), store)
        )
        assert await retention.prune(NOW) == 3
        assert [(e.seq, e.data) for e in store.iter_events()] == [(2, {"text": "1"})]
    finally:
        store.close()
        writer.close()


def test_ledger_cells_are_never_formulas_nor_unwritable(tmp_path: Path) -> None:
    heads = ["order", "note", "n"]
    body = [['=HYPERLINK("http://x","y")', "+1\x00ok", 5], ["@SUM(A1)", "-2\tx", -3]]
    text = ledger_files.write_csv(None, heads, body)
    assert text is not None
    assert list(csv.reader(io.StringIO(text))) == [
        heads,
        ['\'=HYPERLINK("http://x","y")', "'+1\ufffdok", "5"],
        ["'@SUM(A1)", "'-2\tx", "-3"],
    ]
    out = tmp_path / "l.xlsx"
    ledger_files.write_xlsx(out, "gate", heads, body)
    ws = load_workbook(out).active
    assert [[(c.value, c.data_type) for c in row] for row in ws.iter_rows(min_row=2)] == [
        [('=HYPERLINK("http://x","y")', "s"), ("+1\ufffdok", "s"), (5, "n")],
        [("@SUM(A1)", "s"), ("-2\tx", "s"), (-3, "n")],
    ]


def test_kpis_survive_rows_stored_before_the_rule() -> None:
    bad = Event("wb1", "e", 1, "packer.tally", "2026-11-29T02:00:00.000Z", 1, "b", {"bags": 1e999})
    window = Event(
        "wb1", "e", 2, "window.served", "2026-11-29T02:00:00.000Z", 2, "b", {"ticket": ["x"]}
    )
    report = kpis.compute([bad, window], date(2026, 11, 29), ZoneInfo("Asia/Shanghai"), KpiConfig())
    assert report["return_rate"]["bags"] == 0


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        ({"op": "window.arrive", "service": ["sales"]}, "service must be text, not a list"),
        ({"op": "window.serve", "ticket": {"a": 1}}, "ticket must be text, not an object"),
        (
            {"op": "note.add", "operator": "x" * 900_000},
            "operator has 900000 characters; keep it to at most 64",
        ),
        ({"op": "note.add", "operator": {"name": "ann"}}, "operator must be text, not an object"),
        (
            {"op": "note.add", "text": "a\x1bb"},
            "text holds the control character U+001B; remove it",
        ),
        (
            {"op": "visit.arrive", "order": "o\nx"},
            "order holds the control character U+000A; it must be one line; remove it",
        ),
        ({"op": "x", "planned_kg": 1e999}, "planned_kg must be a finite number, not inf"),
        (
            {"op": "x", "list": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]},
            "list[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0] nests deeper than 16 levels; send a flatter value",
        ),
    ],
)
def test_the_request_rule(request_: dict[str, object], problem: str) -> None:
    assert text_rules.request_problem(request_) == problem


def test_the_test_hooks_are_not_in_the_product() -> None:
    assert importlib.util.find_spec("agent.daemon.testhooks") is None
    product = Path(text_rules.__file__).resolve().parents[2]
    sources = [*product.glob("agent/**/*.py"), *product.glob("sync/**/*.py")]
    assert sources
    assert [p for p in sources if "debug.append" in p.read_text(encoding="utf-8")] == []

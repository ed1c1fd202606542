"""The receiver's plant-wide views: the KPI endpoint and the ledgers over every terminal."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from agent.config import KpiConfig
from agent.daemon.store import Store, Writer
from agent.domain.events import Event, Stamp
from agent.domain.kpis import compute, compute_month
from tests.agent.test_ledgers import EXPECTED_EN, T0, script_day
from tests.daemon import tally
from tests.sync.helpers import Receiver

TOKENS = "wb1:tok-wb1-0000000001\npk2:tok-pk2-0000000002\n"


def post(r: Receiver, token: str, events: list[Event]) -> None:
    doc = {
        "terminal": events[0].terminal,
        "epoch": events[0].epoch,
        "events": [e.to_dict() for e in events],
    }
    resp = httpx.post(
        f"{r.url}/api/v1/events",
        content=gzip.compress(json.dumps(doc).encode()),
        headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["acked_through"] == events[-1].seq


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[tuple[Receiver, list[Event]]]:
    """A receiver holding the scripted weighbridge day plus a second terminal's packer tallies."""
    script_day(str(tmp_path / "wb1.db"))
    w = Writer(str(tmp_path / "pk2.db"), "pk2")
    for minute in (70, 71):  # 09:10 and 09:11 local
        w.append_sync(
            "packer.tally",
            {
                "packer": "line2",
                "from": "x",
                "to": "y",
                "bags": 40,
                "returned": 2,
                "broken": 0,
                "running_s": 60,
                "bag_kg": 50,
            },
            stamp=Stamp(T0.replace(hour=1, minute=minute - 60), minute * 60 * 10**9),
        )
    w.close()
    events = [
        *Store(str(tmp_path / "wb1.db")).iter_events(),
        *Store(str(tmp_path / "pk2.db")).iter_events(),
    ]
    with Receiver(tmp_path / "receiver", TOKENS) as r:
        post(r, "tok-wb1-0000000001", [e for e in events if e.terminal == "wb1"])
        post(r, "tok-pk2-0000000002", [e for e in events if e.terminal == "pk2"])
        yield r, events


def test_kpi_endpoint_is_the_shared_engine_over_every_terminal(
    plant: tuple[Receiver, list[Event]],
) -> None:
    r, events = plant
    resp = httpx.get(
        f"{r.url}/api/v1/kpi",
        params={"day": "2026-11-29", "timezone": "Asia/Shanghai"},
        headers={"Authorization": "Bearer tok-pk2-0000000002"},
    )
    assert resp.status_code == 200
    expected = compute(events, date(2026, 11, 29), ZoneInfo("Asia/Shanghai"), KpiConfig())
    assert resp.json() == json.loads(json.dumps(expected))
    assert resp.json()["return_rate"]["bags"] == 64 + 80  # both terminals' tallies


def test_kpi_endpoint_gives_a_month_and_refuses_a_bad_one(
    plant: tuple[Receiver, list[Event]],
) -> None:
    r, events = plant
    auth = {"Authorization": "Bearer tok-pk2-0000000002"}
    resp = httpx.get(
        f"{r.url}/api/v1/kpi",
        params={"month": "2026-11", "timezone": "Asia/Shanghai"},
        headers=auth,
    )
    assert resp.status_code == 200
    expected = compute_month(events, 2026, 11, ZoneInfo("Asia/Shanghai"), KpiConfig())
    assert resp.json() == json.loads(json.dumps(expected))
    assert resp.json()["totals"]["return_rate"]["bags"] == 64 + 80
    bad = httpx.get(f"{r.url}/api/v1/kpi", params={"month": "2026-13"}, headers=auth)
    assert (bad.status_code, bad.json()["error"]) == (
        400,
        "pass the day as ?day=YYYY-MM-DD or the month as ?month=YYYY-MM",
    )


def test_serve_export_builds_the_plant_ledgers(
    plant: tuple[Receiver, list[Event]], tmp_path: Path
) -> None:
    r, _events = plant
    out = tally(
        "serve",
        "export",
        "--db",
        str(r.db),
        "--day",
        "2026-11-29",
        "--ledger",
        "packers",
        "--language",
        "en",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        ",".join(EXPECTED_EN["packers"][0]),
        "08:00,line1,64,1,1,2.0,3.2,96.0",
        "09:00,line2,80,4,0,2.0,4.0,120.0",
    ]
    out = tally(
        "serve",
        "export",
        "--db",
        str(r.db),
        "--day",
        "2026-11-29",
        "--ledger",
        "seals",
        "--format",
        "xlsx",
        "--out",
        str(tmp_path / "s.xlsx"),
        "--language",
        "en",
    )
    assert out.returncode == 0, out.stderr
    from openpyxl import load_workbook

    rows = [list(x) for x in load_workbook(tmp_path / "s.xlsx").active.iter_rows(values_only=True)]
    assert rows == EXPECTED_EN["seals"]


def test_serve_export_without_a_database_says_so(tmp_path: Path) -> None:
    out = tally(
        "serve",
        "export",
        "--db",
        str(tmp_path / "none.db"),
        "--day",
        "2026-11-29",
        "--ledger",
        "gate",
    )
    assert (out.returncode, out.stderr) == (
        2,
        f"tally: there is no receiver database at {tmp_path / 'none.db'}; check --db\n",
    )

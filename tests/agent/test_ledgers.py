"""Daily ledgers: a scripted day exported as CSV and xlsx, read back whole."""

from __future__ import annotations

import csv
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from agent.daemon.store import Writer
from agent.domain.events import Stamp
from tests.daemon import tally, write_config

T0 = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)  # 08:00 in Asia/Shanghai


def script_day(db: str) -> None:
    """Two visits (one bagged, one bulk with a seal mismatch), weighings, checks, tallies."""
    w = Writer(db, "wb1")
    t = 0

    def put(minutes: float, kind: str, **data: Any) -> None:
        nonlocal t
        at = T0 + timedelta(minutes=minutes)
        t += 1
        w.append_sync(kind, data, stamp=Stamp(at, int(minutes * 60e9)))

    put(
        0,
        "visit.arrived",
        visit="v1",
        plate="苏A12345",
        order="SO1",
        product="P.O 42.5",
        load="bagged",
        planned_kg=30000,
    )
    put(
        1,
        "visit.arrived",
        visit="v2",
        plate="苏B54321",
        order="SO2",
        product="P.O 42.5",
        load="bulk",
        planned_kg=35000,
    )
    put(5, "visit.gate_in", visit="v2", reason="bulk loader idle")
    put(6, "visit.gate_in", visit="v1")
    put(
        10,
        "weighing.captured",
        weighing="w1",
        scale="scale1",
        weight_kg=15020,
        mode="gross",
        stable_ms=3100,
        samples=31,
    )
    put(10.2, "visit.weighed", visit="v2", weighing="w1", role="tare", weight_kg=15020)
    put(
        40,
        "weighing.captured",
        weighing="w2",
        scale="scale1",
        weight_kg=50100,
        mode="gross",
        stable_ms=3000,
        samples=30,
    )
    put(40.2, "visit.weighed", visit="v2", weighing="w2", role="gross", weight_kg=50100)
    put(45, "visit.sealed", visit="v2", seals=["S001", "S002"])
    put(50, "visit.flagged", visit="v2", check="seal_mismatch", detail="seen S001 S003")
    put(50, "visit.exited", visit="v2", seals_seen=["S001", "S003"])
    put(15, "visit.broken_bags", visit="v1", found=2, replaced=1)
    put(
        60,
        "visit.arrived",
        visit="v3",
        plate="苏C33333",
        order="SO3",
        product="P.O 42.5",
        load="bulk",
        planned_kg=30000,
    )
    put(61, "visit.gate_in", visit="v3")
    put(70, "visit.flagged", visit="v3", check="exit_no_gross", detail="x", weighing="")
    put(70, "visit.flagged", visit="v3", check="exit_unsealed", detail="x", weighing="")
    put(
        70,
        "visit.exited",
        visit="v3",
        reason="loader broken, sent away",
        exit_checks=["no_gross", "unsealed"],
    )
    put(
        20,
        "check.bag_weight",
        packer="line1",
        samples_kg=[50.1, 50.0, 49.95],
        mean_kg=50.02,
        bag_kg=50,
        result="pass",
        operator="li",
    )
    put(
        21,
        "check.print_code",
        packer="line1",
        result="fail",
        note="smudged",
        operator="li",
        by="qc",
    )
    put(
        30,
        "packer.tally",
        packer="line1",
        **{"from": "x", "to": "y"},
        bags=30,
        returned=1,
        broken=0,
        running_s=60,
        bag_kg=50,
    )
    put(
        31,
        "packer.tally",
        packer="line1",
        **{"from": "x", "to": "y"},
        bags=34,
        returned=0,
        broken=1,
        running_s=60,
        bag_kg=50,
    )
    w.close()


CHECK_HEADS = ["Time", "Packer", "Check", "Result", "Bag weights (kg)", "Mean (kg)", "Note"]
CHECK_HEADS += ["Operator"]
BAG_CHECK = ["2026-11-29 08:20:00", "line1", "bag weight", "pass", "50.1 50 49.95", 50.02, None]
BAG_CHECK += ["li"]
PRINT_CHECK = ["2026-11-29 08:21:00", "line1", "print code", "fail", None, None, "smudged", "li"]
EXPECTED_EN: dict[str, list[list[Any]]] = {
    "gate": [
        [
            "No.",
            "Plate",
            "Order",
            "Product",
            "Load",
            "Planned (t)",
            "Arrived",
            "Gate in",
            "Released as no.",
            "Out-of-order reason",
            "Exited",
            "Status",
            "Exit checks let through",
            "Exit reason",
            "Broken bags (found/replaced)",
            "Plant remarks",
        ],
        [
            1,
            "苏A12345",
            "SO1",
            "P.O 42.5",
            "bagged",
            30,
            "2026-11-29 08:00:00",
            "2026-11-29 08:06:00",
            2,
            None,
            None,
            "open",
            None,
            None,
            "2/1",
            None,
        ],
        [
            2,
            "苏B54321",
            "SO2",
            "P.O 42.5",
            "bulk",
            35,
            "2026-11-29 08:01:00",
            "2026-11-29 08:05:00",
            1,
            "bulk loader idle",
            "2026-11-29 08:50:00",
            "exited",
            None,
            None,
            None,
            None,
        ],
        [
            3,
            "苏C33333",
            "SO3",
            "P.O 42.5",
            "bulk",
            30,
            "2026-11-29 09:00:00",
            "2026-11-29 09:01:00",
            3,
            None,
            "2026-11-29 09:10:00",
            "exited",
            "no_gross unsealed",
            "loader broken, sent away",
            None,
            None,
        ],
    ],
    "weighings": [
        ["Time", "Scale", "Weight (kg)", "Mode", "Plate", "Tare/Gross", "Net (kg)", "Stable (ms)"],
        ["2026-11-29 08:10:00", "scale1", 15020, "gross", "苏B54321", "tare", None, 3100],
        ["2026-11-29 08:40:00", "scale1", 50100, "gross", "苏B54321", "gross", 35080, 3000],
    ],
    "seals": [
        ["Sealed at", "Plate", "Order", "Seal numbers", "Seen at exit", "Check", "Exit reason"],
        ["2026-11-29 08:45:00", "苏B54321", "SO2", "S001 S002", "S001 S003", "mismatch", None],
        [None, "苏C33333", "SO3", None, None, "unsealed", "loader broken, sent away"],
    ],
    "checks": [
        [*CHECK_HEADS, "By", "Source"],
        [*BAG_CHECK, "crew", "typed"],
        [*PRINT_CHECK, "quality office", "typed"],
    ],
    "packers": [
        ["Hour", "Packer", "Bags", "Returned", "Broken", "Running (min)", "Tonnes", "t/h running"],
        ["08:00", "line1", 64, 1, 1, 2, 3.2, 96],
    ],
}


@pytest.fixture
def day_config(tmp_path: Path) -> Path:
    config = write_config(tmp_path)
    script_day(str(tmp_path / "tally.db"))
    return config


@pytest.mark.parametrize("ledger", list(EXPECTED_EN))
def test_each_ledger_as_xlsx_reads_back_whole(
    day_config: Path, tmp_path: Path, ledger: str
) -> None:
    out = tmp_path / f"{ledger}.xlsx"
    r = tally(
        "export",
        "--config",
        str(day_config),
        "--day",
        "2026-11-29",
        "--ledger",
        ledger,
        "--format",
        "xlsx",
        "--out",
        str(out),
        "--language",
        "en",
    )
    assert r.returncode == 0, r.stderr
    ws = load_workbook(out).active
    assert [list(row) for row in ws.iter_rows(values_only=True)] == EXPECTED_EN[ledger]


def test_csv_in_chinese_reads_back_whole(day_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "gate.csv"
    r = tally(
        "export",
        "--config",
        str(day_config),
        "--day",
        "2026-11-29",
        "--ledger",
        "gate",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel reads it as UTF-8
    with out.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        [
            "序号",
            "车牌号",
            "订单号",
            "品种",
            "装车方式",
            "计划量(吨)",
            "到厂时间",
            "进厂时间",
            "放行顺序",
            "插队原因",
            "出厂时间",
            "状态",
            "出厂异常",
            "放行原因",
            "破包(发现/更换)",
            "厂内备注",
        ],
        [
            "1",
            "苏A12345",
            "SO1",
            "P.O 42.5",
            "袋装",
            "30.0",
            "2026-11-29 08:00:00",
            "2026-11-29 08:06:00",
            "2",
            "",
            "",
            "在厂",
            "",
            "",
            "2/1",
            "",
        ],
        [
            "2",
            "苏B54321",
            "SO2",
            "P.O 42.5",
            "散装",
            "35.0",
            "2026-11-29 08:01:00",
            "2026-11-29 08:05:00",
            "1",
            "bulk loader idle",
            "2026-11-29 08:50:00",
            "已出厂",
            "",
            "",
            "",
            "",
        ],
        [
            "3",
            "苏C33333",
            "SO3",
            "P.O 42.5",
            "散装",
            "30.0",
            "2026-11-29 09:00:00",
            "2026-11-29 09:01:00",
            "3",
            "",
            "2026-11-29 09:10:00",
            "已出厂",
            "no_gross unsealed",
            "loader broken, sent away",
            "",
            "",
        ],
    ]


def test_another_day_is_empty_and_a_bad_day_is_refused(day_config: Path) -> None:
    r = tally(
        "export",
        "--config",
        str(day_config),
        "--day",
        "2026-11-30",
        "--ledger",
        "seals",
        "--language",
        "en",
    )
    assert (r.returncode, r.stdout) == (
        0,
        "Sealed at,Plate,Order,Seal numbers,Seen at exit,Check,Exit reason\n",
    )
    r = tally("export", "--config", str(day_config), "--day", "29/11/2026", "--ledger", "seals")
    assert (r.returncode, r.stderr) == (
        2,
        "tally: --day '29/11/2026' is not a date; write it as YYYY-MM-DD\n",
    )


def test_libreoffice_converts_the_xlsx_without_error(day_config: Path, tmp_path: Path) -> None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice is not installed (.ci/run installs libreoffice-calc-nogui)")
    out = tmp_path / "weighings.xlsx"
    r = tally(
        "export",
        "--config",
        str(day_config),
        "--day",
        "2026-11-29",
        "--ledger",
        "weighings",
        "--format",
        "xlsx",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    conv = subprocess.run(
        [
            soffice,
            "--headless",
            f"-env:UserInstallation=file://{tmp_path}/lo",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,UTF8",
            "--outdir",
            str(tmp_path / "lo-out"),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert conv.returncode == 0, conv.stderr
    text = (tmp_path / "lo-out" / "weighings.csv").read_text(encoding="utf-8")
    assert (
        text.splitlines()[0]
        == "时间,地磅,重量(千克),模式,车牌号,皮重/毛重,净重(千克),稳定时长(毫秒)"
    )
    assert len(text.splitlines()) == 3


def test_ledgers_show_the_operators_corrections() -> None:
    """A plate corrected after the fact is the plate every ledger prints (one fold per fact)."""
    from zoneinfo import ZoneInfo

    from agent.domain import ledgers
    from tests.agent.timeline import Timeline

    t = Timeline(start=T0)
    arrived = t.event(
        "visit.arrived",
        visit="v1",
        plate="京A12345",
        order="SO1",
        product="P.O 42.5",
        load="bulk",
        planned_kg=35000,
    )
    events = [arrived, t.advance(2).event("visit.gate_in", visit="v1")]
    for weighing, role, kg in (("w1", "tare", 15000), ("w2", "gross", 50000)):
        t.advance(10)
        events.append(
            t.event(
                "weighing.captured",
                weighing=weighing,
                scale="scale1",
                weight_kg=kg,
                mode="gross",
                stable_ms=3000,
                samples=30,
            )
        )
        events.append(
            t.event("visit.weighed", visit="v1", weighing=weighing, role=role, weight_kg=kg)
        )
    tare = events[3]
    events.append(t.advance(1).event("visit.sealed", visit="v1", seals=["S1"]))
    for target, name, old, new in (
        (arrived, "plate", "京A12345", "京B99999"),
        (tare, "weight_kg", 15000, 14000),
    ):
        events.append(
            t.advance(1).event(
                "operator.corrected",
                target_event=target.id,
                visit="v1",
                field=name,
                old=old,
                new=new,
                reason="misread",
                operator="li",
            )
        )
    tz, day = ZoneInfo("Asia/Shanghai"), T0.date()
    gate = ledgers.build("gate", events, day, tz)
    assert [(r["plate"], r["status"]) for r in gate] == [("京B99999", "open")]
    weighings = ledgers.build("weighings", events, day, tz)
    assert [(r["plate"], r["role"], r["weight_kg"], r["net_kg"]) for r in weighings] == [
        ("京B99999", "tare", 15000, ""),
        ("京B99999", "gross", 50000, 36000),
    ]
    seals = ledgers.build("seals", events, day, tz)
    assert [(r["plate"], r["seals"]) for r in seals] == [("京B99999", "S1")]


def test_stops_and_operators_ledgers() -> None:
    """A handover stop of a bulk loader with its reason, and who recorded what at which post."""
    from dataclasses import replace
    from zoneinfo import ZoneInfo

    from agent.domain import ledgers
    from agent.domain.events import Event, format_at
    from tests.agent.timeline import Timeline

    t = Timeline(start=T0 - timedelta(minutes=5))  # 07:55 local: the 08:00 shift change is near
    since = format_at(T0 - timedelta(minutes=5))
    stop = {"packer": "bulk1", "since": since, "handover": True}

    def bulk(ev: Event) -> Event:  # `kind` is also the name of Timeline.event's first argument
        return replace(ev, data={**ev.data, "kind": "bulk"})

    events = [
        t.event("operator.signed_in", operator="0173", post="packing"),
        bulk(t.advance(2).event("packer.stopped", **stop, reason=None, expected_repair_min=None)),
        bulk(
            t.advance(1).event(
                "packer.stopped",
                **stop,
                reason="斗提机故障",
                expected_repair_min=25,
                operator="0173",
            )
        ),
        t.advance(1).event("check.print_code", packer="line1", result="pass", operator="0173"),
        t.advance(1).event("operator.note", text="交接", operator="李娜"),  # named, not signed in
        t.advance(20).event("packer.started", packer="bulk1"),
        t.event("operator.signed_out", operator="0173", post="packing"),
    ]
    tz, day = ZoneInfo("Asia/Shanghai"), T0.date()
    assert ledgers.build("stops", events, day, tz) == [
        {
            "since": "2026-11-29 07:55:00",
            "packer": "bulk1",
            "kind": "bulk",
            "reason": "斗提机故障",
            "repair_min": 25,
            "handover": "yes",
            "started": "2026-11-29 08:20:00",
            "stopped_min": 25.0,
            "operator": "0173",
        }
    ]
    zero = dict.fromkeys(("visits", "windows", "checks", "reasons", "corrections", "notes"), 0)
    assert ledgers.build("operators", events, day, tz) == [
        {
            "operator": "0173",
            "post": "packing",
            "signed_in": "2026-11-29 07:55:00",
            "signed_out": "2026-11-29 08:20:00",
            **zero,
            "checks": 1,
            "reasons": 1,
            "other": 0,
        },
        {
            "operator": "李娜",
            "post": "",
            "signed_in": "",
            "signed_out": "",
            **zero,
            "notes": 1,
            "other": 0,
        },
    ]

"""The gate ledger end to end: ctl out-of-order release and a seal mismatch, then the ledgers."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.daemon import Daemon, tally


def ctl(config: Path, *args: str) -> dict[str, object]:
    r = tally("ctl", "--config", str(config), *args)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def test_gate_order_seal_mismatch_and_ledgers(config_path: Path) -> None:
    c = config_path
    with Daemon(c):
        first = ctl(
            c,
            "arrive",
            "--plate",
            "苏A11111",
            "--order",
            "SO1",
            "--product",
            "P.O 42.5",
            "--load",
            "bagged",
            "--planned-kg",
            "30000",
        )
        bulk = ctl(
            c,
            "arrive",
            "--plate",
            "苏B22222",
            "--order",
            "SO2",
            "--product",
            "P.O 42.5",
            "--load",
            "bulk",
            "--planned-kg",
            "35000",
        )
        r = tally("ctl", "--config", str(c), "gate-in", "--plate", "苏B22222")
        assert (r.returncode, r.stderr) == (
            2,
            f"tally: 苏B22222 (visit {bulk['visit']}) is not next at the gate (苏A11111 arrived earlier);"
            " give a reason to release it out of order\n",
        )
        ctl(c, "gate-in", "--plate", "苏B22222", "--reason", "bulk loader idle")
        ctl(c, "loading-start", "--plate", "苏B22222", "--point", "bulk1")
        ctl(c, "loading-finish", "--plate", "苏B22222")
        ctl(c, "seal", "--plate", "苏B22222", "--seal", "S001,S002")
        v = ctl(
            c, "exit", "--plate", "苏B22222", "--seals-seen", "S001,S003", "--reason", "scale down"
        )
        assert v["stage"] == "exited"
        assert v["flags"] == [
            {
                "check": "seal_mismatch",
                "detail": "sealed S001 S002; the gate saw S001 S003; missing S002; unknown S003",
            },
            {
                "check": "exit_no_gross",
                "detail": "has no gross weighing; the gate's reason: scale down",
            },
        ]
        ctl(c, "gate-in", "--visit", str(first["visit"]))
    day = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    r = tally("export", "--config", str(c), "--day", day, "--ledger", "seals", "--language", "en")
    rows = r.stdout.splitlines()
    assert rows[0] == "Sealed at,Plate,Order,Seal numbers,Seen at exit,Check,Exit reason"
    assert rows[1].split(",")[1:] == [
        "苏B22222",
        "SO2",
        "S001 S002",
        "S001 S003",
        "mismatch",
        "scale down",
    ]
    r = tally("export", "--config", str(c), "--day", day, "--ledger", "gate", "--language", "en")
    gate = [line.split(",") for line in r.stdout.splitlines()[1:]]
    assert [(g[1], g[8], g[9], g[11]) for g in gate] == [
        ("苏A11111", "2", "", "open"),
        ("苏B22222", "1", "bulk loader idle", "exited"),
    ]

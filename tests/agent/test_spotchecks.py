"""Packing-line spot checks: verdicts, due and overdue, and the ops through `tally ctl`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.config import ChecksConfig
from agent.domain.events import Event, format_at
from agent.domain.spotchecks import CheckError, Due, SpotChecks, bag_verdict
from tests.daemon import Daemon, tally, write_config

TZ = ZoneInfo("Asia/Shanghai")
CFG = ChecksConfig(bag_samples=3)


def at(h: int, m: int = 0) -> datetime:
    """A UTC time on 2026-11-29 (local = +8 h)."""
    return datetime(2026, 11, 29, h, m, tzinfo=UTC)


def ev(seq: int, kind: str, when: datetime, **data: object) -> Event:
    return Event("pk1", "e", seq, kind, format_at(when), seq, "b", {"packer": "line1", **data})


def test_bag_verdict_pass_and_fail_whole() -> None:
    assert bag_verdict([50.1, 50.0, "49.95"], 50, CFG) == {
        "samples_kg": [50.1, 50.0, 49.95],
        "mean_kg": 50.02,
        "bag_kg": 50,
        "result": "pass",
        "under": [],
        "over": [],
    }
    assert bag_verdict([48.5, 51.5, 50.4], 50, CFG) == {
        "samples_kg": [48.5, 51.5, 50.4],
        "mean_kg": 50.13,
        "bag_kg": 50,
        "result": "fail",
        "under": [48.5],
        "over": [51.5],
    }
    with pytest.raises(CheckError, match="needs 3 bags, 2 given"):
        bag_verdict([50, 50], 50, CFG)
    with pytest.raises(CheckError, match="'abc' is not a number"):
        bag_verdict([50, 50, "abc"], 50, CFG)
    with pytest.raises(CheckError, match="not plausible"):
        bag_verdict([50, 50, -3], 50, CFG)


def crew(check: str, reason: str, due: datetime, overdue: bool = False) -> Due:
    return Due("line1", check, reason, due, overdue)


def qc(check: str, due: datetime, overdue: bool = False) -> Due:
    return Due("line1", check, "shift", due, overdue, "qc")


def test_the_standards_schedule_over_a_scripted_day() -> None:
    """第十五条 3: the crew weighs bags after each calibration or cold start (not after every
    stop) and checks print codes every 2 h while running; the quality office checks both once a
    shift, and only its own checks count. Local time is UTC + 8; shifts start 00, 08, 16 local."""
    sc = SpotChecks(CFG, TZ, ["line1"])
    seq = iter(range(1, 100))

    def do(kind: str, when: datetime, **data: object) -> None:
        sc.apply(ev(next(seq), kind, when, **data))

    do("packer.started", at(1))  # 09:00 local: the first start known is a cold start
    assert sc.due(at(1, 10)) == [
        crew("bag_weight", "cold_start", at(1)),
        crew("print_code", "interval", at(1)),
        qc("bag_weight", at(1)),
        qc("print_code", at(1)),
    ]
    do("check.bag_weight", at(1, 5), source="typed")
    do("check.print_code", at(1, 6))
    # the crew's checks do not satisfy the quality office's
    assert sc.due(at(1, 10)) == [qc("bag_weight", at(1)), qc("print_code", at(1))]
    # a 10-minute stop is no cold start: no new bag-weight check
    do("packer.stopped", at(1, 40), since=format_at(at(1, 30)))
    do("packer.started", at(1, 40))
    assert [d.by for d in sc.due(at(1, 50))] == ["qc", "qc"]
    # a 45-minute stop is: the crew calibrates, then weighs
    do("packer.stopped", at(2, 2), since=format_at(at(2)))
    do("packer.started", at(2, 45))
    assert crew("bag_weight", "cold_start", at(2, 45)) in sc.due(at(2, 50))
    # the operator's calibrated mark makes the check due from the mark
    do("packer.calibrated", at(3))
    assert crew("bag_weight", "calibrated", at(3), True) in sc.due(at(3, 20))
    do("check.bag_weight", at(3, 5), source="typed")
    # print code every 2 h while running, overdue after the 15-minute grace
    assert sc.due(at(3, 22)) == [
        qc("bag_weight", at(1)),
        qc("print_code", at(1)),
        crew("print_code", "interval", at(3, 6), True),
    ]
    # the quality office is overdue 4 h after the packer first ran in the shift
    overdue = [d for d in sc.due(at(5, 1)) if d.overdue]
    assert [d.alert for d in overdue] == [
        "check_overdue.line1.bag_weight.qc",
        "check_overdue.line1.print_code.qc",
        "check_overdue.line1.print_code",
    ]
    do("check.bag_weight", at(5, 10), source="typed", by="qc")
    do("check.print_code", at(5, 11), by="qc")
    do("check.print_code", at(5, 12))
    assert sc.due(at(5, 20)) == []
    # 16:00 local (08:00 UTC): a new shift, the quality office owes both checks again
    do("packer.tally", at(8, 1), bags=30, bag_kg=50)
    assert sc.due(at(8, 2)) == [
        crew("print_code", "interval", at(7, 12), True),
        qc("bag_weight", at(8)),
        qc("print_code", at(8)),
    ]
    # stopped: no print code is due however long it stays stopped
    do("packer.stopped", at(8, 5), since=format_at(at(8, 3)))
    assert [d.check for d in sc.due(at(12)) if d.by == "crew"] == []


def test_checks_end_to_end_through_ctl(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[[packer]]\nname = "line1"\nhost = "127.0.0.1"\nport = 1\n\n[checks]\nbag_samples = 3\n',
    )
    with Daemon(config):
        c = str(config)
        r = tally(
            "ctl",
            "--config",
            c,
            "check-bags",
            "--packer",
            "line1",
            "--kg",
            "50.2,50.1",
            "--kg",
            "49.9",
        )
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["result"] == "pass"
        r = tally("ctl", "--config", c, "check-bags", "--packer", "line9", "--kg", "50,50,50")
        assert (r.returncode, r.stderr) == (
            2,
            "tally: there is no packer 'line9'; known packers: line1\n",
        )
        r = tally(
            "ctl",
            "--config",
            c,
            "check-print",
            "--packer",
            "line1",
            "--result",
            "fail",
            "--note",
            "smudged",
        )
        assert r.returncode == 0, r.stderr
    r = tally("events", "--config", c, "--kind", "check", "--json")
    got = [(json.loads(x)["kind"], json.loads(x)["data"]["result"]) for x in r.stdout.splitlines()]
    assert got == [("check.bag_weight", "pass"), ("check.print_code", "fail")]

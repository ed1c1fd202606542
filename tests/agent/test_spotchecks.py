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


def test_due_after_start_per_shift_and_print_interval() -> None:
    sc = SpotChecks(CFG, TZ, ["line1"])
    sc.apply(ev(1, "packer.started", at(1)))  # 09:00 local, shift began 08:00
    assert sc.due(at(1, 10)) == [
        Due("line1", "bag_weight", "after_start", at(1), False),
        Due("line1", "print_code", "interval", at(1), False),
    ]
    assert [d.overdue for d in sc.due(at(1, 20))] == [True, True]
    sc.apply(ev(2, "check.bag_weight", at(1, 5)))
    sc.apply(ev(3, "check.print_code", at(1, 6)))
    assert sc.due(at(2)) == []
    assert sc.due(at(3, 6)) == [Due("line1", "print_code", "interval", at(3, 6), False)]
    # 16:00 local = 08:00 UTC: a new shift needs a new bag-weight check once the packer runs
    sc.apply(ev(4, "check.print_code", at(3, 6)))
    sc.apply(ev(5, "packer.tally", at(8, 1), bags=30, bag_kg=50))
    assert sc.due(at(8, 2)) == [
        Due("line1", "print_code", "interval", at(5, 6), True),
        Due("line1", "bag_weight", "shift", at(8), False),
    ]


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

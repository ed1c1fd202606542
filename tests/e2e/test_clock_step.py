"""The real daemon's wall clock stepped forwards and back (libfaketime), as NTP or an operator
would: each step is recorded, and a wait across the step is measured by the monotonic clock."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bench.procs import faketime_env, faketime_library, machine_clock_ms, step_clock
from tests.daemon import Daemon, events, wait_for, write_config
from tests.e2e.test_visits_ctl import ctl

pytestmark = pytest.mark.skipif(
    faketime_library() is None, reason="needs libfaketime (.ci/run installs the Debian package)"
)

STEP_S = 3 * 3600  # beyond the bagged truck's 2 h loading target


def steps(config: Path) -> list[int]:
    return [e["data"]["delta_ms"] for e in events(config, "clock.stepped")]


def test_a_stepped_wall_clock_is_recorded_and_a_wait_across_it_keeps_its_length(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    offset = tmp_path / "clock-offset"
    machine = machine_clock_ms()
    with Daemon(config, env=faketime_env(offset)) as d:
        truck = ctl(
            config, "arrive", "--plate", "苏A12345", "--order", "SO1", "--product", "P.O 42.5",
            "--load", "bagged", "--planned-kg", "30000",
        )  # fmt: skip
        step_clock(offset, STEP_S)
        wait_for(lambda: any(s > STEP_S * 500 for s in steps(config)), timeout=60)
        ctl(config, "gate-in", "--plate", "苏A12345")
        ctl(config, "loading-start", "--plate", "苏A12345", "--point", "P1")
        stored = events(config)
        by_kind = {e["kind"]: e for e in stored}
        started = datetime.fromisoformat(by_kind["visit.loading_started"]["at"])
        # A wait counts on the plant day it ended: the loading's, by the stepped clock, which is
        # the day after the arrival's when the test runs in the plant's last three hours.
        day = started.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
        # that day's report as of the daemon's (stepped) now, which is past the loading's time
        report = d.request("kpi.report", day=day)
        step_clock(offset, 0)
        wait_for(lambda: any(s < -STEP_S * 500 for s in steps(config)), timeout=60)
        recorded = steps(config)
        # The steps as the daemon saw them (the clocks are compared every few seconds), and
        # any step of the machine's own clock meanwhile, which the daemon records as well (a
        # pause of the whole virtual machine once stepped it by 12.7 s between the two).
        machine = machine_clock_ms() - machine
        slack = 2000 + abs(machine)
        assert abs(sum(recorded) - machine) < 2000, (recorded, machine)
        assert any(abs(s - STEP_S * 1000) < slack for s in recorded), (recorded, machine)
        assert any(abs(s + STEP_S * 1000) < slack for s in recorded), (recorded, machine)
        clock = d.request("status")["clock"]  # the drift since the last step, which is none
        assert clock["stepped_at"] is not None and abs(clock["offset_ms"]) < 2000, clock
        ctl(config, "loading-finish", "--plate", "苏A12345", "--bags", "600")
        assert d.proc is not None and d.proc.poll() is None, d.log()
    stored = events(config)
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    by_kind = {e["kind"]: e for e in stored}
    assert by_kind["visit.arrived"]["data"]["visit"] == truck["visit"]
    assert "visit.loading_finished" in by_kind
    arrived = datetime.fromisoformat(by_kind["visit.arrived"]["at"])
    loading = datetime.fromisoformat(by_kind["visit.loading_started"]["at"])
    # the events carry the stepped wall time: three hours apart by the wall clock ...
    assert (loading - arrived).total_seconds() > STEP_S - 60
    # ... and the wait is what the monotonic clock measured: well within the 2 h target
    wait = report["bag_load_wait"]
    assert (wait["count"], wait["within_target"]) == (1, 1), wait
    assert wait["max_min"] < 5, wait

"""The short soak: two terminals under faults for a minute, with the long soak's checks."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from bench.procs import faketime_library
from bench.soak import YEAR, Options, Result, run, table


def test_short_soak_loses_nothing_and_counts_nothing_twice() -> None:
    """SHORT SOAK (`make soak` runs the long one): daemons SIGKILLed, the receiver down and
    killed mid-drain, the pty and the Modbus server gone and back, the disk full for a while,
    each daemon's wall clock stepped forwards or back and back to true."""
    result = run(
        Options(terminals=2, seconds=60, rate=10, kill_every_s=10, clock_every_s=8, seed=7)
    )
    assert result.faults["daemon kills"] > 0 and result.faults["receiver kills"] > 0
    # without libfaketime tests/e2e/test_clock_step.py skips, which fails a CI run
    assert result.faults["clock steps"] > 0 or faketime_library() is None, table(result)
    assert result.events > 0
    assert result.ok, table(result)


def test_make_soak_plays_the_year_and_a_given_option_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make soak` runs `--year`; an option given with it (a shorter run) wins over the year's."""
    import bench.soak

    seen: list[Options] = []

    def record(opts: Options) -> Result:
        seen.append(opts)
        return Result([["terminal"]], [], {}, 0, 0.0, "", collections.Counter())

    monkeypatch.setattr(bench.soak, "run", record)
    # main() sets its own SIGTERM and SIGHUP handlers; the test process keeps its own
    monkeypatch.setattr(bench.soak.signal, "signal", lambda *_: None)
    assert bench.soak.main(["--year", "--seconds", "60"]) == 0
    assert seen[0].terminals == YEAR["terminals"] and seen[0].rate == YEAR["rate"]
    assert (seen[0].seconds, seen[0].retention_days, seen[0].disk_mb) == (60, 30, 512)
    assert bench.soak.main(["--terminals", "2"]) == 0
    assert (seen[1].terminals, seen[1].seconds, seen[1].day_every_s) == (2, 300, 0)
    makefile = Path(__file__).resolve().parents[2] / "Makefile"
    assert "--year" in makefile.read_text(encoding="utf-8").split("SOAK_ARGS ?=")[1]


def test_a_traceback_in_a_daemons_log_fails_the_soak(tmp_path: Path) -> None:
    """A daemon logs an exception in a callback and carries on; the soak names it."""
    from bench.soak import _traceback_in

    log = tmp_path / "daemon.log"
    log.write_text("INFO tally: started\n", encoding="utf-8")
    assert _traceback_in("t1", log) is None
    assert _traceback_in("t1", tmp_path / "none.log") is None
    log.write_text(
        "ERROR asyncio: Exception in callback Hub.on_events()\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "ValueError: unmarshallable object\n"
        "INFO tally: still running\n",
        encoding="utf-8",
    )
    assert _traceback_in("t1", log) == (
        "t1: its log holds 1 traceback(s), the first ending: ValueError: unmarshallable object"
    )

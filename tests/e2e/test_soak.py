"""The short soak: two terminals under faults for a minute, with the long soak's checks."""

from __future__ import annotations

from bench.procs import faketime_library
from bench.soak import Options, run, table


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

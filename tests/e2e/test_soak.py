"""The short soak: two terminals under faults for a minute, with the long soak's checks."""

from __future__ import annotations

from bench.soak import Options, run, table


def test_short_soak_loses_nothing_and_counts_nothing_twice() -> None:
    """SHORT SOAK (`make soak` runs the long one): daemons SIGKILLed, the receiver down and
    killed mid-drain, the pty and the Modbus server gone and back, the disk full for a while."""
    result = run(Options(terminals=2, seconds=60, rate=10, kill_every_s=10, seed=7))
    assert result.faults["daemon kills"] > 0 and result.faults["receiver kills"] > 0
    assert result.events > 0
    assert result.ok, table(result)

"""`tally demo --headless` runs the whole simulated plant (three terminals and the receiver) end
to end."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from agent.daemon import lifeline
from tests.daemon import wait_for
from tests.leftovers import MARK, marked, new_mark


def test_headless_demo_completes_a_visit_and_syncs_every_event() -> None:
    mark, tmpdir = new_mark(), Path(tempfile.mkdtemp(prefix="tally-t-"))
    try:
        result = lifeline.run(
            [sys.executable, "-m", "agent.cli", "demo", "--headless", "--seconds", "45", "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, MARK: mark, "TMPDIR": str(tmpdir)},
            timeout=240,  # a deadline: three daemons start on a busy machine
        )
        # its reaper ends just after it: nothing of the demo is left, not even its folder
        wait_for(lambda: not marked(mark), timeout=10)
        assert list(tmpdir.iterdir()) == []
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["visits_completed"] >= 1
    assert report["weighings"] >= 2
    assert report["packer_tallies"] >= 1
    assert report["synced"] == report["events"] > 0
    # a plant of three terminals, each holding the same visits and KPIs as the receiver
    assert report["terminals"] == ["gate1", "wb1", "pk1"]
    assert report["replicas_agree"] is True

"""`tally demo --headless` runs the whole simulated plant end to end."""

from __future__ import annotations

import json

from tests.daemon import tally


def test_headless_demo_completes_a_visit_and_syncs_every_event() -> None:
    result = tally("demo", "--headless", "--seconds", "45", "--json", timeout=150)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["visits_completed"] >= 1
    assert report["weighings"] >= 2
    assert report["packer_tallies"] >= 1
    assert report["synced"] == report["events"] > 0

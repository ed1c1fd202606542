"""`tally demo` names the piece it lacks in one sentence, and runs end to end when all are there."""

from __future__ import annotations

import importlib.util
import json

import pytest

from agent.commands.demo import PIECES
from tests.daemon import tally

MISSING = [piece for module, piece in PIECES if importlib.util.find_spec(module) is None]


@pytest.mark.skipif(not MISSING, reason="every piece of the demo is in this build")
def test_a_missing_piece_is_named_in_one_sentence() -> None:
    result = tally("demo", "--headless", "--seconds", "5", "--json")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"tally demo needs {MISSING[0]}, which this build does not have yet.\n",
    )


@pytest.mark.skipif(bool(MISSING), reason=f"the demo needs {', '.join(MISSING)} (after the merge)")
def test_headless_demo_completes_a_visit_and_syncs_every_event() -> None:
    result = tally("demo", "--headless", "--seconds", "45", "--json", timeout=150)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["visits_completed"] >= 1
    assert report["weighings"] >= 2
    assert report["packer_tallies"] >= 1
    assert report["synced"] == report["events"] > 0

"""The real daemon with a bag scale: simulated bags become samples, samples a bag-weight check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.daemon.store import Writer
from tests.daemon import Daemon, events, scale_simulator, wait_for, write_config

BAGS = [50.12, 49.94, 50.31]
PACKER = '[[packer]]\nname = "line1"\nhost = "127.0.0.1"\nport = 1\n\n[checks]\nbag_samples = 3\n'


def partial(due: dict[str, Any]) -> dict[str, Any] | None:
    """line1's collecting entry while it holds some but not all of its samples."""
    collecting = due["collecting"].get("line1")
    return collecting if collecting and 1 <= collecting["samples"] < collecting["needed"] else None


def test_a_bag_scale_records_a_bag_weight_check_by_itself(tmp_path: Path) -> None:
    with scale_simulator(
        "--protocol", "ascii", "--division-kg", "0.01", "--seed", "3", "--rate", "20",
        "--weights", ",".join(map(str, BAGS)), "--empty-s", "1.5", "--ramp-s", "0.3",
        "--settle-s", "3", "--noise-kg", "0",  # rests and settles well past clear_s and hold_s
    ) as port:  # fmt: skip
        config = write_config(
            tmp_path,
            f'[[scale]]\nname = "bags1"\nport = "{port}"\nprotocol = "ascii"\nrole = "bags"\n'
            'packer = "line1"\nmin_weight_kg = 20\nzero_band_g = 200\nband_g = 100\n'
            "hold_s = 0.8\nmin_samples = 5\nclear_s = 0.3\n\n" + PACKER,
        )
        with Daemon(config) as d:
            # Progress shows while the check is collecting: one or two of the three samples.
            collecting = wait_for(lambda: partial(d.request("checks.due")), timeout=60)
            assert (collecting["scale"], collecting["needed"]) == ("bags1", 3)
            wait_for(lambda: events(config, "check.bag_weight"), timeout=60)
            visits = d.request("visits.list")
    samples = [e["data"] for e in events(config, "check.bag_sample")]
    assert {s["weight_kg"] for s in samples} <= set(BAGS)
    assert [(s["packer"], s["scale"]) for s in samples[:3]] == [("line1", "bags1")] * 3
    [check] = [e["data"] for e in events(config, "check.bag_weight")]
    assert check == {
        "packer": "line1",
        "samples_kg": [s["weight_kg"] for s in samples[:3]],
        "mean_kg": 50.12,
        "bag_kg": 50,
        "result": "pass",
        "under": [],
        "over": [],
        "operator": "",
        "source": "scale",
        "scale": "bags1",
    }
    assert sorted(check["samples_kg"]) == sorted(BAGS)  # three bags in a row: each weight once
    # a bag scale weighs no trucks: no weighing for the visits to match, no scale queue default
    assert (visits["unassigned"], events(config, "weighing")) == ([], [])


def test_samples_survive_a_restart_and_a_missed_check_is_recorded_at_start(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, PACKER)
    db = str(tmp_path / "tally.db")

    def add(*kg: float) -> None:
        w = Writer(db, "wb1")
        for x in kg:
            w.append_sync("check.bag_sample", {"packer": "line1", "scale": "bags1", "weight_kg": x})
        w.close()

    add(48.1, 50.0)
    with Daemon(config) as d:
        assert d.request("checks.due")["collecting"] == {
            "line1": {"samples": 2, "needed": 3, "scale": "bags1", "samples_kg": [48.1, 50.0]}
        }
    assert events(config, "check.bag_weight") == []
    add(50.4, 50.2)  # as if the daemon stopped right after the third bag's sample was stored
    with Daemon(config) as d:
        wait_for(lambda: events(config, "check.bag_weight"))
        assert d.request("checks.due")["collecting"] == {
            "line1": {"samples": 1, "needed": 3, "scale": "bags1", "samples_kg": [50.2]}
        }
    [check] = [e["data"] for e in events(config, "check.bag_weight")]
    assert (check["samples_kg"], check["under"], check["result"], check["source"]) == (
        [48.1, 50.0, 50.4],
        [48.1],
        "fail",
        "scale",
    )

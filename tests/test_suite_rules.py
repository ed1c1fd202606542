"""The suite's own rules: property tests under the shared profile, and no unseen skip under CI."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def property_tests() -> dict[str, Any]:
    """Every Hypothesis test of the suite by module-qualified name."""
    found = {}
    for mod in pkgutil.walk_packages([str(TESTS)], "tests."):
        if mod.name.rsplit(".", 1)[-1].startswith("test_"):
            module = importlib.import_module(mod.name)
            for name, obj in vars(module).items():
                if name.startswith("test_") and getattr(obj, "is_hypothesis_test", False):
                    found[f"{mod.name}.{name}"] = obj
    return found


def test_every_property_test_runs_without_a_deadline_or_a_speed_health_check() -> None:
    found = property_tests()
    assert len(found) >= 16, sorted(found)
    wrong = {
        name: s
        for name, fn in found.items()
        if (s := fn._hypothesis_internal_use_settings).deadline is not None
        or not {HealthCheck.too_slow, HealthCheck.data_too_large} <= set(s.suppress_health_check)
    }
    assert wrong == {}
    ci = settings.get_profile("ci")
    assert (ci.derandomize, ci.deadline, ci.database) == (True, None, None)


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_skips.py"
    test.write_text(
        "import pytest\n\n"
        "def test_runs():\n    pass\n\n"
        "def test_needs_a_tool():\n    pytest.skip('the tool is not installed')\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"CI": ci}
    args = ["-q", "-p", "no:cacheprovider", "-p", "tests.conftest", "-c", os.devnull]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--rootdir", str(tmp_path), str(test)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_not_allowed_fails_the_run_under_ci(tmp_path: Path) -> None:
    done = _run(tmp_path, "true")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "test_skips.py::test_needs_a_tool: the tool is not installed" in done.stdout
    assert "1 skip(s) fail the run under CI" in done.stdout


def test_outside_ci_a_skip_is_reported_but_does_not_fail(tmp_path: Path) -> None:
    done = _run(tmp_path, "")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skip(s) would fail the run under CI (env CI set)" in done.stdout

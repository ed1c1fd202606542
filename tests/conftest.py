"""Shared fixtures, the suite's Hypothesis profiles, and the CI rule that no skip goes unseen."""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests import daemon as daemons
from tests.daemon import Daemon, write_config
from tests.pgcluster import PgCluster

# Property tests check what comes out, never how fast: a loaded machine must not fail them. No
# per-example deadline; the health checks that only measure generation speed or size are off
# (filter_too_much stays on: it points at a strategy that wastes its examples).
settings.register_profile(
    "tally",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Under CI the same examples every run (no flake to chase), no example database, and the blob
# to reproduce a failure printed with it.
settings.register_profile(
    "ci", parent=settings.get_profile("tally"), derandomize=True, database=None, print_blob=True
)
UNDER_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
settings.load_profile("ci" if UNDER_CI else "tally")

# The only tests that may skip under CI (env CI set), each with the reason it may. Any other skip
# fails the run there: a test that silently stops running is a test lost. Keys are node ids
# without parameters ("tests/path.py::test_name").
ALLOWED_SKIPS: dict[str, str] = {}


def _base_id(nodeid: str) -> str:
    return nodeid.split("[", 1)[0]


_unexpected_skips: list[tuple[str, str]] = []

LOG_TAIL_LINES = 80
_item_started = 0.0


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Note when the test began: a daemon it started and stopped belongs to it."""
    global _item_started
    _item_started = time.monotonic()
    daemons.STARTED[:] = [d for d in daemons.STARTED if d.running()]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, None]:
    """A failed test shows the end of each real daemon's log that took part in it (running
    then, or started during it): the daemon's own account of a wait that timed out."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for d in daemons.STARTED:
        if d.running() or d.started_mono >= _item_started:
            lines = d.log().splitlines()[-LOG_TAIL_LINES:]
            report.sections.append((f"daemon log {d.config.parent.name}", "\n".join(lines)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note every skip that is not in ALLOWED_SKIPS."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    if _base_id(report.nodeid) not in ALLOWED_SKIPS:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        _unexpected_skips.append((report.nodeid, reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI, a skip not listed in ALLOWED_SKIPS fails the run."""
    if UNDER_CI and _unexpected_skips and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name each skip that would fail (or, under CI, failed) the run."""
    if not _unexpected_skips:
        return
    verdict = "fail the run under CI" if UNDER_CI else "would fail the run under CI (env CI set)"
    terminalreporter.section("skips not in ALLOWED_SKIPS (tests/conftest.py)")
    for nodeid, reason in _unexpected_skips:
        terminalreporter.line(f"{nodeid}: {reason}")
    terminalreporter.line(
        f"{len(_unexpected_skips)} skip(s) {verdict}: install what they need, or list them "
        "with their reason in ALLOWED_SKIPS"
    )


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A minimal valid config whose database and socket live in tmp_path."""
    return write_config(tmp_path)


@pytest.fixture
def daemon(config_path: Path) -> Iterator[Daemon]:
    """The real daemon on the minimal config, stopped after the test."""
    with Daemon(config_path) as d:
        yield d


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL server for the whole session (started on first use)."""
    cluster = PgCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()

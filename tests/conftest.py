"""Shared fixtures: a config in a temporary folder and the real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon, write_config
from tests.pgcluster import PgCluster


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

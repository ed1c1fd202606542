"""A throwaway PostgreSQL cluster for tests: initdb into a temporary folder, a Unix socket only.

initdb and pg_ctl refuse to run as root, so as root the cluster belongs to the `postgres`
system user (Debian's package creates it) and the commands run through `runuser`.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

PORT = 55433
_names = itertools.count(1)


def _bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}")) or [shutil.which(tool) or ""]
    if not found[-1]:
        raise RuntimeError(
            f"PostgreSQL's {tool} is not installed; run `apt-get install postgresql` (.ci/run does)"
        )
    return found[-1]


class PgCluster:
    """A PostgreSQL server of its own, started in a temporary folder and removed at stop."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="tally-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.folder / "data"

    def _run(self, *args: str) -> None:
        out = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {out.stdout}{out.stderr}")

    def start(self) -> PgCluster:
        """initdb and start; the server listens on a socket in the folder only."""
        self._run(
            _bin("initdb"), "-D", str(self.data), "-U", "tally", "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses='' -k {self.folder} -p {PORT} -c fsync=off -c max_connections=200"
        )
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"), "-w",
            "-o", options, "start",
        )  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        """The psycopg URL of a database of this cluster."""
        return f"postgresql://tally@/{database}?host={self.folder}&port={PORT}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        name = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}".encode())
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

"""Test support: write a config and run the real daemon as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.config import load
from agent.daemon import lifeline
from agent.daemon.client import DaemonUnavailable, request

_ROOT = str(Path(__file__).resolve().parent.parent)  # so `-m tests.daemon_main` imports


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)


def write_config(folder: Path, extra: str = "", terminal: str = "wb1") -> Path:
    """Write a tally.toml under `folder` with its database and socket there; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tally.toml"
    sock = folder / "tally.sock"
    if len(str(sock)) > 100:  # Unix socket paths are limited to about 108 bytes
        sock = Path(tempfile.mkdtemp(prefix="tally-")) / "tally.sock"
    path.write_text(
        f'[terminal]\nid = "{terminal}"\ndatabase = "{folder}/tally.db"\n'
        f'socket = "{sock}"\n\n{extra}',
        encoding="utf-8",
    )
    return path


def tally(
    *args: str, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real `tally` command line and capture its output."""
    return lifeline.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
    )


def events(config: Path, kind: str = "") -> list[dict[str, Any]]:
    """`tally events --config F [--kind K] --json`: the stored envelopes (must succeed)."""
    r = tally("events", "--config", str(config), *(("--kind", kind) if kind else ()), "--json")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


STARTED: list[Daemon] = []  # every Daemon started in this process; tests/conftest.py shows
# the logs of those that took part in a failed test


class Daemon:
    """`tally run --config F` as a real process, with its stderr kept in a file.

    With `hooks=True` it runs through tests.daemon_main, which adds the test hooks; `env` is
    added to the daemon's environment (bench.procs.faketime_env steps its wall clock).
    """

    def __init__(
        self, config: Path, *, hooks: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self.config = config
        self.env = env or {}
        self.module = "tests.daemon_main" if hooks else "agent.cli"
        folder = config.parent
        self.socket = load(config, check_paths=False).terminal.socket
        self.log_path = folder / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Daemon:
        """Start the process and wait until the local API answers ping."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
        self.started_mono = time.monotonic()
        STARTED.append(self)
        self.proc = lifeline.popen(
            [sys.executable, "-m", self.module, "run", "--config", str(self.config)],
            stdout=self._log,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _pythonpath(), **self.env},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                request(self.socket, "ping", timeout=1)
                return self
            except DaemonUnavailable:
                time.sleep(0.05)
        raise TimeoutError(f"daemon did not answer within {timeout} s:\n{self.log()}")

    def request(self, op: str, **args: Any) -> Any:
        """One local API request."""
        return request(self.socket, op, **args)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` and wait; return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """Everything the daemon printed so far."""
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path.exists()
            else ""
        )

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


@contextlib.contextmanager
def scale_simulator(*args: str) -> Iterator[str]:
    """`tally simulate scale ARGS` as a real process; yields its pseudo-terminal's path."""
    proc = lifeline.popen(
        [sys.executable, "-m", "agent.cli", "simulate", "scale", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        port = proc.stdout.readline().strip()
        if not port:
            raise RuntimeError(f"the scale simulator did not start: {proc.stderr.read()}")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def wait_for(predicate: Any, timeout: float = 60, interval: float = 0.05) -> Any:
    """Poll `predicate()` until it returns something truthy; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)

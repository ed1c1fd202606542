"""Nothing is left behind: a demo whose terminal closes or whose process is killed takes its plant
and its folder with it, and every helper started with a lifeline stops when its starter dies."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from agent.config import load
from agent.daemon import lifeline
from agent.daemon.client import DaemonUnavailable, request
from tests.daemon import Daemon, tally, wait_for, write_config
from tests.leftovers import MARK, marked, new_mark, role
from tests.sync.helpers import write_private
from tests.tui.tmux import Tmux

# The promise to a person who closed the demo's terminal: all gone within 5 seconds.
GONE_WITHIN_S = 5.0
START_S = 120.0  # the whole plant starting on a busy machine (the demo's own limit is 60 s)
PLANT = ["demo", "reap", "run", "run", "run", "serve", "simulate packer", "simulate scale"]

needs_tmux = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="needs tmux (.ci/run installs the Debian package)"
)


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    """A TMPDIR for the demo with a short path (its Unix socket lives in the demo's folder)."""
    path = Path(tempfile.mkdtemp(prefix="tally-t-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def demo_folders(tmpdir: Path) -> list[Path]:
    """The demo folders under `tmpdir`."""
    return sorted(tmpdir.glob("tally-demo-*"))


def plant_roles(mark: str) -> list[str]:
    """The roles of the live processes under `mark`, sorted."""
    return sorted(role(cmd) for cmd in marked(mark).values())


def wait_gone(mark: str, tmpdir: Path, *, folder_kept: bool = False) -> None:
    """Wait until no process under `mark` lives and (unless kept) no demo folder is left."""

    def gone() -> bool:
        folders = demo_folders(tmpdir)
        return not marked(mark) and (len(folders) == 1 if folder_kept else not folders)

    try:
        wait_for(gone, timeout=GONE_WITHIN_S, interval=0.1)
    except TimeoutError:
        left = {pid: role(cmd) for pid, cmd in marked(mark).items()}
        raise AssertionError(
            f"left behind: processes {left}, folders {demo_folders(tmpdir)}"
        ) from None


def agent_events(database: Path) -> list[str]:
    """The daemon's own lifecycle events (agent.*) in order."""
    conn = sqlite3.connect(database)
    try:
        rows = conn.execute("SELECT kind FROM events WHERE kind LIKE 'agent.%' ORDER BY seq")
        return [kind for (kind,) in rows]
    finally:
        conn.close()


@needs_tmux
@pytest.mark.parametrize("how", ["kill-session", "SIGKILL"])
def test_the_demo_in_a_terminal_leaves_nothing_behind(tmpdir_short: Path, how: str) -> None:
    mark = new_mark()
    env = ["env", f"{MARK}={mark}", f"TMPDIR={tmpdir_short}"]
    tui = Tmux([*env, sys.executable, "-m", "agent.cli", "demo", "--language", "en"])
    try:
        with contextlib.suppress(TimeoutError):
            wait_for(
                lambda: plant_roles(mark) == PLANT and "● connected" in tui.screen(),
                timeout=START_S,
                interval=0.3,
            )
        # what was missing, and what the demo printed, when the plant did not come up
        assert plant_roles(mark) == PLANT, tui.printed()
        screen = tui.screen()
        assert "● connected" in screen, screen
        assert len(demo_folders(tmpdir_short)) == 1
        if how == "kill-session":
            tui.kill_session()
        else:
            os.kill(tui.pid(), signal.SIGKILL)
        wait_gone(mark, tmpdir_short)
    finally:
        tui.close()


@pytest.mark.parametrize(
    ("sig", "keep", "code"),
    [
        (signal.SIGKILL, False, -signal.SIGKILL),
        (signal.SIGKILL, True, -signal.SIGKILL),
        (signal.SIGTERM, True, 130),
        (signal.SIGHUP, False, 130),
        (signal.SIGINT, False, 130),
    ],
    ids=["SIGKILL", "SIGKILL --keep", "SIGTERM --keep", "SIGHUP", "SIGINT"],
)
def test_the_headless_demo_stopped_mid_run_leaves_nothing_behind(
    tmpdir_short: Path, tmp_path: Path, sig: signal.Signals, keep: bool, code: int
) -> None:
    mark = new_mark()
    stderr = tmp_path / "demo.stderr"
    argv = ["demo", "--headless", "--seconds", "600", *(["--keep"] * keep)]
    with open(stderr, "wb") as err:
        demo = lifeline.popen(
            [sys.executable, "-m", "agent.cli", *argv],
            stdout=err,
            stderr=err,
            env={**os.environ, MARK: mark, "TMPDIR": str(tmpdir_short)},
        )
    try:

        def mid_run() -> bool:
            assert demo.poll() is None, stderr.read_text()
            return "arrived" in stderr.read_text()

        wait_for(mid_run, timeout=START_S, interval=0.2)
        assert plant_roles(mark) == PLANT, stderr.read_text()
        demo.send_signal(sig)
        assert demo.wait(60) == code  # generous: up to 10 s per child, on a busy machine
        wait_gone(mark, tmpdir_short, folder_kept=keep)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    if keep:
        (folder,) = demo_folders(tmpdir_short)
        for terminal in ("gate1", "wb1", "pk1"):
            assert agent_events(folder / f"{terminal}.db") == ["agent.started", "agent.stopped"]
            assert "received SIGTERM; stopping" in (folder / f"{terminal}.log").read_text()


def test_a_demo_whose_daemon_cannot_start_leaves_nothing_behind(tmpdir_short: Path) -> None:
    mark = new_mark()
    too_long = tmpdir_short / ("x" * 100)  # the daemon's socket path is past the Unix limit
    too_long.mkdir()
    result = lifeline.run(
        [sys.executable, "-m", "agent.cli", "demo", "--headless", "--seconds", "5"],
        capture_output=True,
        text=True,
        env={**os.environ, MARK: mark, "TMPDIR": str(too_long)},
        timeout=START_S,
    )
    assert result.returncode == 1
    assert (
        "tally demo: the daemon of gate1 did not start (`tally run --config ...`)" in result.stderr
    )
    wait_gone(mark, too_long)


# A starter that dies: it starts ARGV on its lifeline (the child shares its stdout), says the
# child's pid, then waits to be killed.
STARTER = (
    "import sys, time\n"
    "from agent.daemon import lifeline\n"
    "child = lifeline.popen(sys.argv[1:])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)


@contextlib.contextmanager
def starter(mark: str, argv: list[str]) -> Iterator[IO[str]]:
    """`tally ARGV` started by a starter process; yields the stdout they share (after the
    child's pid), and SIGKILLs the starter on the way out: the child has to notice by itself."""
    proc = lifeline.popen(
        [sys.executable, "-c", STARTER, sys.executable, "-m", "agent.cli", *argv],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, MARK: mark},
    )
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        # the kernel fills a new program's environment in a moment after `exec` has returned
        # to the starter's Popen: until then /proc shows the child with an empty one
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: sorted(marked(mark)) == sorted([proc.pid, child]), timeout=10)
        assert sorted(marked(mark)) == sorted([proc.pid, child])
        yield proc.stdout
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_scale_simulator_stops_when_its_starter_is_killed() -> None:
    mark = new_mark()
    with starter(mark, ["simulate", "scale", "--protocol", "xk3190"]) as out:
        assert out.readline().startswith("/dev/")
    wait_for(lambda: not marked(mark), timeout=GONE_WITHIN_S, interval=0.1)


def test_the_packer_simulator_stops_when_its_starter_is_killed() -> None:
    mark = new_mark()
    with starter(mark, ["simulate", "packer", "--listen", "127.0.0.1:0"]) as out:
        assert out.readline().startswith("listening 127.0.0.1:")
    wait_for(lambda: not marked(mark), timeout=GONE_WITHIN_S, interval=0.1)


def test_the_receiver_stops_when_its_starter_is_killed(tmp_path: Path) -> None:
    mark = new_mark()
    tokens = write_private(tmp_path / "tokens", "wb1:" + "t" * 32 + "\n")
    argv = ["serve", "--db", str(tmp_path / "r.db"), "--listen", "127.0.0.1:0"]
    with starter(mark, [*argv, "--tokens", str(tokens)]) as out:
        assert out.readline().startswith("listening http://127.0.0.1:")
    wait_for(lambda: not marked(mark), timeout=GONE_WITHIN_S, interval=0.1)


def test_the_daemon_stops_cleanly_when_its_starter_is_killed(tmp_path: Path) -> None:
    mark = new_mark()
    config = write_config(tmp_path)
    socket = load(config, check_paths=False).terminal.socket

    def answers() -> bool:
        try:
            return request(socket, "ping", timeout=1) is not None
        except DaemonUnavailable:
            return False

    with starter(mark, ["run", "--config", str(config)]):
        wait_for(answers, timeout=60)
    wait_for(lambda: not marked(mark), timeout=GONE_WITHIN_S, interval=0.1)
    assert agent_events(tmp_path / "tally.db") == ["agent.started", "agent.stopped"]


def test_the_test_daemon_holds_the_lifeline_of_the_test_run(tmp_path: Path) -> None:
    with Daemon(write_config(tmp_path)) as daemon:
        assert daemon.proc is not None
        environ = Path(f"/proc/{daemon.proc.pid}/environ").read_bytes().split(b"\0")
        fd = next(v for v in environ if v.startswith(b"TALLY_LIFELINE_FD=")).split(b"=")[1]
        link = os.readlink(f"/proc/{daemon.proc.pid}/fd/{fd.decode()}")
        assert link == f"pipe:[{os.fstat(lifeline.child_options()['pass_fds'][0]).st_ino}]"


@pytest.mark.parametrize("value", ["seven", "0", "99"])
def test_a_lifeline_that_is_not_a_pipe_is_refused_in_one_sentence(
    tmp_path: Path, value: str
) -> None:
    config = write_config(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "agent.cli", "check-config", str(config)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "TALLY_LIFELINE_FD": value},
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (
        2,
        f"tally: TALLY_LIFELINE_FD={value!r} is not an open pipe of this process; unset it\n",
    )
    assert tally("check-config", str(config)).returncode == 0

"""Lifelines: a child started through here stops by itself once the process that started it is gone.

Why a pipe and not only the parent-death signal. A process that starts helpers keeps, for its
whole life, the write end of one pipe (`os.pipe`, never written to); every child started with
`popen` or `run` inherits the read end, and its number in `TALLY_LIFELINE_FD`. Whatever way the
parent ends (a clean exit, an exception, Ctrl-C, SIGHUP when its terminal closes, SIGKILL), the
kernel closes the write end, and each child reads end-of-file. `watch_from_env`, called by the
`tally` command line for every command, turns that end-of-file into SIGTERM for the child's own
main thread, so each child takes its ordinary stop path (the daemon still records
`agent.stopped`; the receiver and the simulators close what they hold). `prctl(PR_SET_PDEATHSIG)`
was the other candidate: it fires when the *thread* that forked the child ends rather than the
process, needs a `preexec_fn` (unsafe once threads run), is lost if the parent dies before the
child sets it, and leaves nothing a third process could watch; the pipe has none of these faults
(a child that starts watching after its parent died reads end-of-file at once).

Removing a folder after the parent is killed needs someone still alive: `reap` (run as
`python -m agent.daemon.lifeline reap FOLDER`) holds the same lifeline, and once it closes waits
until no other process holds it (each child has then stopped, whatever its pid became), kills
what still holds it after a grace period, and removes the folder. `tally demo` starts one first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.errors import UsageError

ENV = "TALLY_LIFELINE_FD"
REAP_GRACE_S = 10.0  # the daemon's own stop waits up to 10 s for its services

_lock = threading.Lock()
_ends: tuple[int, int] | None = None


def _lifeline() -> int:
    """The read end of this process's lifeline (created on first use; the write end stays open
    until this process ends)."""
    global _ends
    with _lock:
        if _ends is None:
            _ends = os.pipe()  # both ends non-inheritable: only pass_fds hands the read end on
        return _ends[0]


def child_options(
    env: Mapping[str, str] | None = None, pass_fds: Sequence[int] = ()
) -> dict[str, Any]:
    """`env` and `pass_fds` for `subprocess.Popen`/`run` that hand the child this lifeline."""
    fd = _lifeline()
    return {
        "env": {**(os.environ if env is None else env), ENV: str(fd)},
        "pass_fds": (*pass_fds, fd),
    }


def popen(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen(argv, **kwargs)` for a child that ends when this process ends."""
    kwargs |= child_options(kwargs.pop("env", None), kwargs.pop("pass_fds", ()))
    return subprocess.Popen(argv, **kwargs)


def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run(argv, **kwargs)` for a child that ends when this process ends."""
    kwargs |= child_options(kwargs.pop("env", None), kwargs.pop("pass_fds", ()))
    return subprocess.run(argv, **kwargs)


def take_from_env() -> int | None:
    """The lifeline this process was started with (removed from the environment, so that its
    own children do not take a number that is not theirs); None without one.

    Raises UsageError when `TALLY_LIFELINE_FD` does not name an open pipe of this process."""
    text = os.environ.pop(ENV, None)
    if text is None:
        return None
    try:
        fd = int(text)
        is_pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
    except (ValueError, OSError):
        is_pipe = False
    if not is_pipe:
        raise UsageError(f"{ENV}={text!r} is not an open pipe of this process; unset it")
    os.set_inheritable(fd, False)
    return fd


def wait_closed(fd: int) -> None:
    """Block until the write end of the pipe `fd` is closed everywhere.

    `fd` stays open: a process holds its lifeline until it has ended, which is how `reap`
    knows that it has."""
    try:
        while os.read(fd, 512):
            pass  # nobody should write; what is written means nothing
    except OSError:
        pass


def watch_from_env() -> bool:
    """If started with a lifeline, send SIGTERM to this process's main thread once it closes.

    Returns whether there was one to watch. Raises UsageError as `take_from_env` does."""
    fd = take_from_env()
    if fd is None:
        return False
    main = threading.main_thread().ident
    assert main is not None

    def watch() -> None:
        wait_closed(fd)
        # To the main thread, so a blocking call there is interrupted and its handler runs.
        signal.pthread_kill(main, signal.SIGTERM)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
    return True


def holders(fd: int) -> list[int]:
    """Pids of the other processes that hold the pipe `fd` open (those this user may inspect)."""
    target = f"pipe:[{os.fstat(fd).st_ino}]"
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            links = os.scandir(f"/proc/{entry.name}/fd")
            with links:
                if any(os.readlink(link.path) == target for link in links):
                    found.append(int(entry.name))
        except OSError:
            continue  # gone, or another user's
    return found


def reap(folder: Path | None, fd: int, grace_s: float = REAP_GRACE_S) -> None:
    """Wait for the lifeline `fd` to close, then for every other holder of it to end (SIGKILL
    after `grace_s` seconds), then remove `folder` (None: keep it)."""
    wait_closed(fd)
    deadline = time.monotonic() + grace_s
    while left := holders(fd):
        if time.monotonic() > deadline:
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def start_reaper(folder: Path, *, keep: bool) -> subprocess.Popen[bytes]:
    """Start `reap` for `folder` in a process of its own on this process's lifeline."""
    return popen(
        [sys.executable, "-m", "agent.daemon.lifeline", "reap", *(["--keep"] * keep), str(folder)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the terminal's Ctrl-C and hang-up are for the parent
    )


def main(argv: Sequence[str]) -> int:
    """`python -m agent.daemon.lifeline reap [--keep] FOLDER`, started by `start_reaper`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m agent.daemon.lifeline")
    parser.add_argument("action", choices=["reap"])
    parser.add_argument("--keep", action="store_true", help="end the processes, keep the folder")
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        fd = take_from_env()
    except UsageError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return 2
    if fd is None:
        print(f"tally: the reaper needs a lifeline in {ENV}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the lifeline ends the reaper
    reap(None if args.keep else args.folder, fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Process pieces shared by the whole-terminal benchmark and the soak: start, stop, /proc figures.

CPU is read as the process's own CPU time over a window, so other work on the machine slows
nothing down in the figure: a loaded machine makes the window's wall time no shorter and the
process's CPU seconds no larger. A window's CPU is the scheduler's own count of the time each
thread ran, in nanoseconds (`run_s`); utime + stime (`cpu_s`) come in clock ticks of 10 ms,
a step of 0.017 % of a core over a minute, as large as the differences the bench looks for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from agent.daemon import lifeline

TICK = os.sysconf("SC_CLK_TCK")
ROOT = str(Path(__file__).resolve().parent.parent)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_s(pid: int) -> float:
    """Seconds the process's threads have run so far, to the nanosecond (the first field of
    `/proc/<pid>/task/*/schedstat`), or `cpu_s` where the kernel keeps no such count. A
    thread that ends takes its time with it: for a window of a process whose threads live as
    long as it does (the daemon's, the bare libraries'), not for a whole life."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return cpu_s(pid)  # gone: raises as cpu_s does
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        except (OSError, ValueError, IndexError):
            return cpu_s(pid)
    return total / 1e9


def wakeups(pid: int) -> int:
    """How many times the process's threads have gone to sleep waiting (voluntary context
    switches, summed over `/proc/<pid>/task/*/status`): each is a wake-up later. On a virtual
    machine a wake-up costs more than most of the work it brings, so this count explains much
    of an idle-ish daemon's CPU and varies much less from run to run."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with (
            contextlib.suppress(FileNotFoundError),
            open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as f,
        ):
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def status_mib(pid: int | str, key: str) -> float:
    """A kB field of `/proc/<pid>/status` (`pid` may be "self"), such as "VmRSS:", in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (VmRSS)."""
    return status_mib(pid, "VmRSS:")


def anon_mb(pid: int) -> float:
    """The anonymous part of a process's resident memory in MiB (RssAnon: the heap and thread
    stacks, not the mapped files and shared memory such as SQLite's WAL index)."""
    return status_mib(pid, "RssAnon:")


def open_fds(pid: int) -> int:
    """How many file descriptors a process holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def private(path: Path, text: str) -> Path:
    """Write a file only its owner may read (tokens)."""
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def faketime_library() -> Path | None:
    """Debian's libfaketime for threaded programs (package libfaketime), or None."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))
    return found[0] if found else None


def faketime_env(offset_file: Path, cache_s: int = 0) -> dict[str, str]:
    """The environment that gives one process a wall clock of its own, stepped by writing an
    offset such as `+3600` or `-600` (seconds) to `offset_file`; read again after `cache_s`
    seconds (0: at every look). The monotonic clock stays the machine's, as under a real step.

    The file is written with `+0` when it does not exist yet.
    """
    lib = faketime_library()
    if lib is None:
        raise RuntimeError("stepping a clock needs libfaketime: apt-get install libfaketime")
    if not offset_file.exists():
        offset_file.write_text("+0\n", encoding="ascii")
    return {
        "LD_PRELOAD": str(lib),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        # Without this, 0.9.10 emulates every wait of a condition variable (a thread handing
        # work to another): about 3 ms of CPU a hand-over instead of 12 us, which made a soak's
        # daemons about ten times dearer per event than a real one. The monotonic clock is not
        # faked, so the waits need no fixing.
        "FAKETIME_FORCE_MONOTONIC_FIX": "0",
        **({"FAKETIME_CACHE_DURATION": str(cache_s)} if cache_s else {"FAKETIME_NO_CACHE": "1"}),
    }


def machine_clock_ms() -> int:
    """This machine's wall clock against its monotonic clock, in ms (a process not faked).

    It moves only when the machine's own clock is stepped: by NTP, or after a pause of the
    whole virtual machine (a snapshot once stepped it by 12.7 s under a clock test)."""
    return (time.time_ns() - time.monotonic_ns()) // 1_000_000


def step_clock(offset_file: Path, offset_s: int) -> None:
    """Set the wall clock of the processes started with `faketime_env(offset_file)` to the
    machine's plus `offset_s` seconds (written whole, so no reader sees half a line)."""
    tmp = offset_file.with_suffix(".tmp")
    tmp.write_text(f"{offset_s:+d}\n", encoding="ascii")
    tmp.replace(offset_file)


def link_port(link: Path, device: str) -> None:
    """Point `link` (a daemon's configured port) at a simulator's pseudo-terminal, at once."""
    tmp = link.with_name(link.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(device)
    tmp.replace(link)


def unplug_port(link: Path) -> None:
    """Take a port's link away before its simulator ends: a daemon retrying the link must find
    nothing, never the next pseudo-terminal that reuses the number (another program's)."""
    with contextlib.suppress(FileNotFoundError):
        link.unlink()


def tally(
    *argv: str, log: Path, first_line: bool = False, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `tally ARGV` (or `python -m MODULE` when ARGV starts with `-m`) with its output
    appended to `log` and `env` added to its environment; with `first_line`, wait for and return
    its first stdout line."""
    cmd = [sys.executable, *argv] if argv[0] == "-m" else [sys.executable, "-m", "agent.cli", *argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": ROOT, **(env or {})}
    out = open(log, "ab")  # noqa: SIM115 - the child writes to it for its whole life
    proc = lifeline.popen(cmd, stdout=subprocess.PIPE if first_line else out, stderr=out, env=env)
    if not first_line:
        out.close()
        return proc, ""
    assert proc.stdout is not None
    line = proc.stdout.readline().decode("utf-8", "replace").strip()
    stdout = proc.stdout

    def drain() -> None:  # keep the pipe from filling; the rest goes to the log
        for chunk in iter(stdout.readline, b""):
            out.write(chunk)
            out.flush()
        out.close()

    threading.Thread(target=drain, daemon=True).start()
    if not line:
        raise RuntimeError(f"`{' '.join(argv)}` did not start; see {log.name}")
    return proc, line


def stop(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM) -> None:
    """Send `sig` and reap the process (SIGKILL after 15 s)."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_ping(sock: str, proc: subprocess.Popen[Any], timeout: float = 90) -> None:
    """Wait until the daemon behind `sock` answers ping; raise if it exits or never does."""
    from agent.daemon.client import DaemonUnavailable, request

    deadline = time.monotonic() + timeout
    while True:
        try:
            request(sock, "ping", timeout=1)
            return
        except DaemonUnavailable:
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def window(pid: int, seconds: float) -> tuple[float, float]:
    """(% of one core, RSS MiB at the end) of a process over `seconds` of wall time."""
    cpu, rss, _ = window_wakeups(pid, seconds)
    return cpu, rss


def window_wakeups(pid: int, seconds: float) -> tuple[float, float, float]:
    """(% of one core, RSS MiB at the end, wake-ups a second) of a process over `seconds`."""
    return windows_wakeups([pid], seconds)[0]


def windows_wakeups(pids: list[int], seconds: float) -> list[tuple[float, float, float]]:
    """`window_wakeups` of several processes over the same `seconds` of wall time: measured
    side by side, they share whatever else the machine did meanwhile."""
    t0 = time.monotonic()
    before = [(run_s(pid), wakeups(pid)) for pid in pids]
    time.sleep(seconds)
    after = [(run_s(pid), wakeups(pid)) for pid in pids]
    span = time.monotonic() - t0
    return [
        (100 * (c1 - c0) / span, rss_mb(pid), (w1 - w0) / span)
        for pid, (c0, w0), (c1, w1) in zip(pids, before, after, strict=True)
    ]

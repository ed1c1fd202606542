"""Find what a test's processes left behind: live processes marked in their environment."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

MARK = "TALLY_TEST_MARK"


def new_mark() -> str:
    """A value for `MARK` that no other test run uses."""
    return uuid.uuid4().hex


def marked(mark: str) -> dict[int, str]:
    """Live processes whose environment holds MARK=mark: pid -> command line (spaces between).

    Children inherit the environment whatever their parent does with it later, so this finds
    every process started under a marked one; a zombie has no environment left and no open
    files, so it counts as gone. A program that has just been exec'd shows an empty environment
    for a moment (the kernel sets it up after the starter's `Popen` returns), so a test that
    looks for a process it has just started waits for it to be found."""
    needle = f"{MARK}={mark}".encode()
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        proc = Path(entry.path)
        try:
            if needle not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or another user's
        if state != "Z":
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def role(cmdline: str) -> str:
    """What a `tally` process is, from its command line: `demo`, `run`, `simulate scale`,
    `serve`, `reap` (the demo's reaper), ...; the whole line for anything else."""
    words = cmdline.split()
    for module in ("agent.cli", "agent.daemon.lifeline"):
        if module in words:
            rest = [w for w in words[words.index(module) + 1 :] if not w.startswith("-")]
            return " ".join(rest[:2]) if rest[:1] == ["simulate"] else rest[0]
    return cmdline

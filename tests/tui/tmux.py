"""Run a command in a private tmux server and read its screen (for whole-process TUI tests)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import uuid

from agent.daemon import lifeline

# The tmux server is a daemon, not our child: a guard on the test run's lifeline ends it (and
# with it, by SIGHUP, the command in the pane) if the test run dies before `close`.
GUARD = (
    "import subprocess, sys\n"
    "from agent.daemon import lifeline\n"
    "fd = lifeline.take_from_env()\n"
    "assert fd is not None\n"
    "lifeline.wait_closed(fd)\n"
    "subprocess.run(['tmux', '-L', sys.argv[1], 'kill-server'], capture_output=True)\n"
)


class Tmux:
    """A tmux server of our own (its own socket name), one session, one pane."""

    def __init__(self, argv: list[str], size: tuple[int, int] = (100, 30)) -> None:
        self.server = f"tally-{uuid.uuid4().hex[:8]}"
        self._guard = lifeline.popen(
            [sys.executable, "-c", GUARD, self.server], start_new_session=True
        )
        cmd = "exec " + shlex.join(argv)
        # The pane stays when its command ends, so a test whose command died early can still
        # read (and show in its failure) what the command printed last.
        x, y = str(size[0]), str(size[1])
        keep = ("set-option", "-t", "t", "remain-on-exit", "on")
        self._tmux("new-session", "-d", "-s", "t", "-x", x, "-y", y, cmd, ";", *keep)

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.server, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout

    def screen(self) -> str:
        """The visible text of the pane."""
        return self._tmux("capture-pane", "-p", "-t", "t")

    def printed(self) -> str:
        """All the pane holds, its scrollback too: what a command that has ended printed last
        (tmux moves a dead pane's text into the scrollback), for a test's failure message."""
        lines = self._tmux("capture-pane", "-p", "-S", "-", "-t", "t").splitlines()
        return "\n".join(line for line in lines if line.strip())

    def pid(self) -> int:
        """The process id of the command in the pane."""
        return int(self._tmux("list-panes", "-t", "t", "-F", "#{pane_pid}").split()[0])

    def kill_session(self) -> None:
        """`tmux kill-session`: what closing the terminal window does to the command (SIGHUP)."""
        self._tmux("kill-session", "-t", "t")

    def close(self) -> None:
        """End our tmux server (and the command in it)."""
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True, timeout=10)
        self._guard.kill()
        self._guard.wait()

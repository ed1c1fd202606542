"""Test support: an indicator line on a pseudo-terminal behind a symlink, like a udev by-id link.

Unplugging closes the pty (the reader gets EIO); plugging in opens a new pty and re-points the
link, so a driver configured with the link path finds the device again.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from bench.procs import link_port, unplug_port


class PtyLine:
    """A pseudo-terminal fed by a thread that sends `source()` frames at `rate` per second."""

    def __init__(self, link: Path, source: Callable[[], bytes], rate: float = 50.0) -> None:
        self.link = link
        self.source = source
        self.rate = rate
        self._fds: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def plug(self) -> PtyLine:
        """Open a new pty, point the link at it and start sending."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._fds = (master, slave)
        link_port(self.link, os.ttyname(slave))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, args=(master, self._stop), daemon=True)
        self._thread.start()
        return self

    def unplug(self) -> None:
        """Take the link away, then stop sending and close both sides of the pty.

        The link goes first: a driver retrying it must find nothing, never the next pty that
        reuses this one's number (another test's indicator, whose frames it would take).
        """
        unplug_port(self.link)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._fds is not None:
            for fd in self._fds:
                os.close(fd)
            self._fds = None

    def _send(self, master: int, stop: threading.Event) -> None:
        # On the indicator's own clock, like `tally simulate scale`: a sender thread that a busy
        # machine kept waiting sends the frames it owes at once (up to a second's worth), so the
        # reader sees a late read with every frame in it, never frames that were not sent.
        tick = 1 / self.rate
        next_t = time.monotonic()
        while not stop.wait(max(0.0, next_t - time.monotonic())):
            next_t += tick
            if next_t < time.monotonic() - 1.0:
                next_t = time.monotonic()
            frame = self.source()
            # A reader slowed by a busy machine must not lose or cut frames: wait until the pty
            # has taken the whole frame (the stream is late, never different).
            while frame and not stop.is_set():
                try:
                    frame = frame[os.write(master, frame) :]
                except BlockingIOError:
                    select.select([], [master], [], 0.05)

"""A daemon that a loaded PC keeps stopping still captures the truck standing on its scale.

The indicator streams 20 frames a second into a pseudo-terminal whatever the daemon does; the
daemon is stopped (SIGSTOP) for 0.35 s every 0.7 s, far more often than the 2 s it needs the
weight still. Each time it runs again it reads the frames the port kept meanwhile in one read:
nothing was lost, so the weight's stable window must not start again.
"""

from __future__ import annotations

import os
import signal
import threading
from decimal import Decimal
from pathlib import Path

from drivers.scale import encode
from tests.daemon import Daemon, events, wait_for, write_config
from tests.drivers.pty_line import PtyLine

STOPPED_S = 0.35  # over the quarter second after which a gap may mean lost frames
RUNNING_S = 0.35


def test_a_truck_is_captured_though_the_daemon_is_stopped_every_fraction_of_a_second(
    tmp_path: Path,
) -> None:
    kg = [0]
    line = PtyLine(tmp_path / "scale", lambda: encode("xk3190", Decimal(kg[0])), rate=20).plug()
    config = write_config(
        tmp_path,
        f'[[scale]]\nname = "scale1"\nport = "{tmp_path / "scale"}"\nprotocol = "xk3190"\n'
        "hold_s = 2.0\nmin_samples = 5\nmax_wait_s = 20\n",
    )
    done = threading.Event()
    try:
        with Daemon(config) as d:
            assert d.proc is not None
            pid = d.proc.pid
            # online: it has read frames of the empty deck, so its capture is armed
            wait_for(lambda: events(config, "device.online"), timeout=60)

            def stall() -> None:
                while not done.is_set():
                    os.kill(pid, signal.SIGSTOP)
                    done.wait(STOPPED_S)
                    os.kill(pid, signal.SIGCONT)
                    done.wait(RUNNING_S)

            kg[0] = 30_000
            staller = threading.Thread(target=stall, daemon=True)
            staller.start()
            try:
                # captured, or abandoned after max_wait_s when every stall emptied the window
                weighings = wait_for(lambda: events(config, "weighing"), timeout=90)
            finally:
                done.set()
                staller.join(5)
                os.kill(pid, signal.SIGCONT)
        assert [(e["kind"], e["data"].get("weight_kg")) for e in weighings] == [
            ("weighing.captured", 30_000)
        ]
    finally:
        done.set()
        line.unplug()

"""The bench's CPU figures: a window's CPU time as the scheduler counted it, thread by thread."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.procs import cpu_s, run_s

# A child whose second thread spins until it has run 0.3 s, then sleeps (it lives on, as the
# daemon's threads do); the child says when.
SPIN = """
import threading, time
spun = threading.Event()
def spin():
    while time.thread_time() < 0.3:
        pass
    spun.set()
    time.sleep(60)
threading.Thread(target=spin, daemon=True).start()
spun.wait()
print("spun", flush=True)
time.sleep(60)
"""


def test_a_window_counts_every_threads_cpu_time_and_nothing_while_they_sleep() -> None:
    child = subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "spun"
        spent = run_s(child.pid)
        assert spent >= 0.3  # the spinning thread's own time is in it, not only the main's
        assert abs(spent - cpu_s(child.pid)) <= 0.05  # what utime + stime say, to a few ticks
        time.sleep(0.5)
        assert run_s(child.pid) - spent < 0.01  # asleep: nothing charged
    finally:
        child.kill()
        child.wait()

"""Crash-test child: appends events as fast as it can and prints each seq once acknowledged."""

from __future__ import annotations

import sys
import threading

from agent.daemon import lifeline
from agent.daemon.store import Writer


def main(path: str) -> None:
    """Append from four threads until killed; print `seq` lines after each commit returns."""
    lifeline.watch_from_env()  # a test run that dies takes this writer with it
    writer = Writer(path, "crash")
    lock = threading.Lock()

    def worker(n: int) -> None:
        i = 0
        while True:
            futures = [writer.submit("test.append", {"worker": n, "i": i + k}) for k in range(20)]
            i += 20
            for f in futures:
                ev = f.result()
                with lock:
                    sys.stdout.write(f"{ev.seq}\n")
                    sys.stdout.flush()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main(sys.argv[1])

"""A bad network between the daemon and the receiver: latency, resets and stalls."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from agent.daemon.store import Store
from tests.daemon import Daemon, tally, wait_for, write_config
from tests.sync.helpers import (
    Faults,
    Proxy,
    Receiver,
    fd_count,
    rss_kb,
    write_private,
)

TOKEN = "tok-bad-network-0001"


def test_nothing_is_lost_or_duplicated_and_resources_stay_bounded(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "receiver", f"wb1:{TOKEN}\n").start()
    faults = Faults(latency_s=0.003, reset_up=0.2, reset_down=0.25, stall=0.1, faulty=40, seed=11)
    proxy = Proxy(receiver.port, faults).start()
    token = write_private(tmp_path / "token", TOKEN)
    config = write_config(
        tmp_path / "agent",
        f'[sync]\nurl = "http://127.0.0.1:{proxy.port}"\ntoken_file = "{token}"\n'
        "batch_max = 15\ninterval_s = 0.05\ntimeout_s = 0.6\nbackoff_max_s = 0.2\n",
    )
    samples: list[tuple[int, int]] = []
    try:
        with Daemon(config) as daemon:
            assert daemon.proc is not None
            pid = daemon.proc.pid
            wait_for(lambda: daemon.request("sync.sender.status")["backlog"] == 0, timeout=60)
            baseline = (fd_count(pid), rss_kb(pid))
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    samples.append((fd_count(pid), rss_kb(pid)))
                    stop.wait(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                for i in range(240):
                    daemon.request("note.add", text=f"note {i} " + "x" * 200)
                last_seq = daemon.request("note.add", text="final")["seq"]
                status = wait_for(
                    lambda: (
                        (s := daemon.request("sync.sender.status"))["acked_through"] == last_seq
                        and s
                    ),
                    timeout=60,
                )
            finally:
                stop.set()
                sampler.join()
        assert status["backlog"] == 0
    finally:
        proxy.stop()
        receiver.stop()
    counts = proxy.counts
    assert counts.resets >= 5 and counts.stalls >= 1, counts.log  # the network was bad
    store = Store(str(tmp_path / "agent" / "tally.db"))
    try:
        ours = [(e.seq, e.kind, json.dumps(e.data, sort_keys=True)) for e in store.iter_events()]
        epoch = store.epoch
    finally:
        store.close()
    stats = json.loads(tally("serve", "stats", "--db", str(receiver.db), "--json").stdout)
    assert stats == {
        "terminals": [{"terminal": "wb1", "epoch": epoch, "events": last_seq, "max_seq": last_seq}]
    }
    theirs = [
        (s, k, json.dumps(json.loads(d), sort_keys=True))
        for s, k, d in receiver.rows("SELECT seq, kind, data FROM events ORDER BY seq")
    ]
    assert theirs == [row for row in ours if row[0] <= last_seq]
    max_fds = max(f for f, _ in samples)
    max_rss = max(r for _, r in samples)
    assert max_fds <= baseline[0] + 6, (baseline, max_fds)
    assert max_rss <= baseline[1] + 30_000, (baseline, max_rss)  # KiB

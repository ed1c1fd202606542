"""The receiver is SIGKILLed and restarted while the real daemon keeps recording events."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from agent.daemon.store import Store
from tests.daemon import Daemon, tally, wait_for, write_config
from tests.sync.helpers import Receiver, write_private

TOKEN = "tok-kill-test-000001"


def sync_section(url: str, token: Path) -> str:
    return (
        f'[sync]\nurl = "{url}"\ntoken_file = "{token}"\nbatch_max = 20\n'
        "interval_s = 0.05\ntimeout_s = 2.0\nbackoff_max_s = 0.3\n"
    )


def test_every_event_reaches_the_receiver_exactly_once_across_sigkills(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path / "receiver", f"wb1:{TOKEN}\n").start()
    token = write_private(tmp_path / "token", TOKEN)
    config = write_config(tmp_path / "agent", sync_section(receiver.url, token))
    written: list[int] = []
    try:
        with Daemon(config) as daemon:

            def produce(n: int) -> None:
                for i in range(n):
                    written.append(
                        daemon.request("note.add", text=f"note {len(written)} {i}")["seq"]
                    )

            for _ in range(2):
                producer = threading.Thread(target=produce, args=(120,))
                producer.start()
                wait_for(lambda: len(written) >= 40)  # mid-stream, batches in flight
                receiver.kill()
                producer.join(30)
                produce(30)  # the receiver is down: these queue up
                receiver.start()
            produce(20)
            last_seq = daemon.request("note.add", text="final")["seq"]
            status = wait_for(
                lambda: (
                    (s := daemon.request("sync.sender.status"))["acked_through"] == last_seq and s
                ),
                timeout=60,
            )
        assert status["backlog"] == 0
        assert status["last_error"] is None
        assert len(written) == 2 * 150 + 20
    finally:
        receiver.stop()
    store = Store(str(tmp_path / "agent" / "tally.db"))
    try:
        epoch = store.epoch
        ours = {(e.seq, e.kind, json.dumps(e.data, sort_keys=True)) for e in store.iter_events()}
        agent_last = store.last_seq()
    finally:
        store.close()
    stats = json.loads(tally("serve", "stats", "--db", str(receiver.db), "--json").stdout)
    # The daemon's own agent.stopped was recorded after its last send: all but that one.
    assert stats == {
        "terminals": [{"terminal": "wb1", "epoch": epoch, "events": last_seq, "max_seq": last_seq}]
    }
    assert agent_last == last_seq + 1
    theirs = {
        (s, k, json.dumps(json.loads(d), sort_keys=True))
        for s, k, d in receiver.rows("SELECT seq, kind, data FROM events")
    }
    assert theirs == {row for row in ours if row[0] <= last_seq}

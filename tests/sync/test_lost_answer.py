"""A lost answer: the receiver commits, the connection drops before the reply; the retry is safe."""

from __future__ import annotations

from pathlib import Path

from sync.sender.status import ACKED
from tests.sync.helpers import (
    Faults,
    Proxy,
    Receiver,
    append_notes,
    make_parts,
    sync_config,
    write_private,
)

TOKEN = "tok-lost-answer-0001"


async def test_the_retry_after_a_lost_answer_stores_nothing_twice(tmp_path: Path) -> None:
    with Receiver(tmp_path / "receiver", f"wb1:{TOKEN}\n") as receiver:
        proxy = Proxy(receiver.port, Faults(drop_answers=1)).start()
        try:
            token = write_private(tmp_path / "token", TOKEN)
            cfg = sync_config(f"http://127.0.0.1:{proxy.port}", token, batch_max=50)
            p = await make_parts(tmp_path, cfg)
            try:
                await append_notes(p.writer, 30)
                delay = await p.sender.step()
                assert delay > 0  # the answer never came: nothing is marked delivered
                assert p.store.get_state(ACKED, 0) == 0
                assert p.store.get_state("sync.last_error").startswith("cannot reach the server")
                # ...yet the receiver had committed the whole batch before the cut
                assert receiver.rows("SELECT count(*) FROM events") == [(30,)]
                assert await p.sender.step() == cfg.interval_s
                assert p.store.get_state(ACKED) == 30
                epoch = p.writer.epoch
            finally:
                await p.sender.close()
                p.close()
        finally:
            proxy.stop()
        assert proxy.counts.dropped == 1
        assert receiver.rows(
            "SELECT idempotency_key, stored, duplicates, acked_through FROM batches ORDER BY id"
        ) == [(f"wb1:{epoch}:1-30", 30, 0, 30), (f"wb1:{epoch}:1-30", 0, 30, 30)]
        assert receiver.rows("SELECT count(*), min(seq), max(seq) FROM events") == [(30, 1, 30)]

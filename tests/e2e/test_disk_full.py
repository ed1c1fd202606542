"""A full disk under the real daemon: it stays up, shows disk_full, acknowledges nothing it
could not store, and resumes by itself when space returns (a 1 MiB tmpfs holds the database)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from agent.daemon.store import Store
from tests.daemon import Daemon, wait_for
from tests.smalldisk import fill, small_disk

__all__ = ["small_disk"]  # the fixture

PAYLOAD = {f"pad{i}": "x" * 200 for i in range(20)}  # a few pages per event: the disk fills fast


def test_full_disk_holds_events_until_space_returns(
    tmp_path: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "tally.toml"
    config.write_text(
        f'[terminal]\nid = "wb1"\ndatabase = "{small_disk}/tally.db"\n'
        f'socket = "{tmp_path}/tally.sock"\n\n[storage]\nmin_free_mb = 0\n',
        encoding="utf-8",
    )
    acked: dict[int, int] = {}  # note number -> seq the daemon answered with
    n = 0
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    d = Daemon(config, hooks=True).start()
    try:

        def append(number: int) -> Any:
            return d.request("debug.append", kind="test.note", data={"n": number, **PAYLOAD})

        for _ in range(3):
            n += 1
            acked[n] = append(n)["seq"]
        fill(small_disk / "filler")

        # Append until one is held: SQLite may still have had room for a few.
        pending: concurrent.futures.Future[Any] | None = None
        for _ in range(200):
            n += 1
            fut = pool.submit(append, n)
            try:
                acked[n] = fut.result(timeout=3)["seq"]
            except concurrent.futures.TimeoutError:
                pending = fut
                break
        assert pending is not None, "the disk never filled"
        held = n

        # The daemon stays up, answers, and shows the alert it cannot store.
        summary = wait_for(
            lambda: (s := d.request("status"))["disk"]["full"] and s["alerts"] and s, timeout=15
        )
        assert d.proc is not None and d.proc.poll() is None
        assert summary["healthy"] is False
        assert [(a["alert"], a.get("stored")) for a in summary["alerts"]] == [("disk_full", False)]
        assert not pending.done(), "an append was acknowledged while the disk was full"

        (small_disk / "filler").unlink()
        acked[held] = pending.result(timeout=60)["seq"]
        wait_for(lambda: not d.request("status")["alerts"], timeout=15)
        assert d.request("status")["disk"]["full"] is False
        n += 1
        acked[n] = append(n)["seq"]
    finally:
        code = d.stop()
        pool.shutdown(wait=False, cancel_futures=True)
    assert code == 0, d.log()
    assert "disk full: holding" in d.log()

    store = Store(str(small_disk / "tally.db"))
    try:
        seqs = [row[0] for row in store.query("SELECT seq FROM events ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
        notes = {
            json.loads(data)["n"]: seq
            for seq, data in store.query("SELECT seq, data FROM events WHERE kind = 'test.note'")
        }
        # Every acknowledged note is stored under the seq the daemon answered with.
        assert notes == acked
        assert store.integrity_ok()
    finally:
        store.close()
    with contextlib.suppress(OSError):
        os.sync()

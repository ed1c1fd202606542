"""Benchmark: the daemon restarted on a terminal that has run for weeks (after a power cut, an
upgrade): how long it takes to answer, the CPU it spends getting there and the memory it holds.

A weighbridge terminal's database is filled with `TALLY_BENCH_RESTART_DAYS` (default 60) busy
days ending yesterday: its own weighings through the real writer, the gate's and the packing
line's stages stored as replicated events, as a plant's terminal holds them. The real daemon
(`tally run`, no devices, no sync) is then started on it, and on an empty database for
comparison, and measured from /proc once it answers and again five seconds later.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.daemon.foreign import ingest
from agent.daemon.store import Writer
from agent.domain.events import Stamp, format_at, parse_at
from bench import procs
from bench.bench_projection_memory import TZ, _day, _Plant
from bench.common import Row

OWN = "wb1"
SETTLE_S = 5.0


def fill(db: str, days: int) -> int:
    """Write `days` busy days ending yesterday into `db`: the weighbridge's own events and its
    peers' as replicated ones. Returns how many events it holds."""
    plant = _Plant()
    today = datetime.now(TZ).replace(hour=6, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=days)
    writer = Writer(db, OWN)
    own = (writer.terminal, writer.epoch)
    count = 0
    try:
        for day in range(days):
            events = _day(plant, day, first)
            mine = [
                writer.submit(ev.kind, ev.data, stamp=Stamp(parse_at(ev.at), ev.mono_ns))
                for ev in events
                if ev.terminal == OWN
            ]
            for f in mine:
                f.result()
            theirs = [ev for ev in events if ev.terminal != OWN]
            received = format_at(datetime.now(UTC))
            writer.call(ingest(theirs, {}, own, "central", received)).result()
            count += len(events)
    finally:
        writer.close()
    return count


def _start(folder: Path) -> dict[str, float]:
    """Start the daemon on `folder`'s database; its figures when it answers and 5 s later."""
    config = folder / "tally.toml"
    config.write_text(
        f'[terminal]\nid = "{OWN}"\ndatabase = "{folder}/tally.db"\n'
        f'socket = "{folder}/tally.sock"\ntimezone = "Asia/Shanghai"\n',
        encoding="utf-8",
    )
    started = time.perf_counter()
    daemon, _ = procs.tally("run", "--config", str(config), log=folder / "daemon.log")
    try:
        procs.wait_ping(str(folder / "tally.sock"), daemon, timeout=300)
        ready = time.perf_counter() - started
        cpu_ready = procs.cpu_s(daemon.pid)
        time.sleep(SETTLE_S)
        return {
            "ready": ready,
            "cpu": cpu_ready,
            "rss": procs.status_mib(daemon.pid, "VmRSS:"),
            "peak": procs.status_mib(daemon.pid, "VmHWM:"),
        }
    finally:
        procs.stop(daemon)


def run() -> list[Row]:
    """Fill a database, start the daemon on it and on an empty one, and compare."""
    days = int(os.environ.get("TALLY_BENCH_RESTART_DAYS", "60"))
    with tempfile.TemporaryDirectory(prefix="tally-bench-") as tmp:
        empty, full = Path(tmp, "empty"), Path(tmp, "full")
        empty.mkdir()
        full.mkdir()
        Writer(str(empty / "tally.db"), OWN).close()
        events = fill(str(full / "tally.db"), days)
        bare = _start(empty)
        held = _start(full)
    return [
        Row("daemon started on an empty database: answering after", bare["ready"], "s"),
        Row("  its RSS 5 s later", bare["rss"], "MiB"),
        Row(f"daemon started after {days} busy days ({events} events held): answering after",
            held["ready"], "s"),
        Row("  CPU spent until it answered", held["cpu"], "s"),
        Row("  its RSS 5 s later", held["rss"], "MiB"),
        Row("  its peak RSS", held["peak"], "MiB"),
    ]  # fmt: skip

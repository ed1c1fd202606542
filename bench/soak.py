"""`make soak`: a compressed busy plant across several terminals, through the real daemons, with
faults injected all along; at the end a table and the checks (nothing lost, nothing twice, the
same KPI reports, memory and file descriptors flat).

Each terminal is a real daemon with a real scale simulator on a pseudo-terminal (reached through
a symlink, so a restarted simulator is the cable put back), a real packer simulator on Modbus TCP
and a scripted source on the local API (a note at `--rate` a second, and every tenth step a truck
that arrives, passes the gate and is cancelled). All sync to one real receiver. Faults, at random
moments from `--seed`:

- a daemon SIGKILLed (a power cut) and started again 0.2-2 s later; terminal t1 is never killed,
  so its memory and descriptors are watched over the whole run;
- the receiver SIGKILLed and left down for a long stretch (a backlog builds), then started and
  SIGKILLed again while the backlog is draining (mid-batch), then started for good;
- a scale simulator ended (the pty closes) and a new one linked in 1-5 s later;
- a packer simulator ended (its Modbus units vanish) and started again on the same port;
- with root and tmpfs, t2's folder is a small tmpfs that is filled to the last byte for a stretch
  and freed again;
- with libfaketime (Debian's package of that name), each daemon's own wall clock stepped by
  10 min to 3 h, forwards or back, and later back to true, as NTP or an operator would; the
  monotonic clock and the rest of the machine are untouched. Every stretch, stepped or true,
  lasts at least CLOCK_HOLD_S, so the daemon's clock watch sees each step on its own; no step
  is made that could not be undone CLOCK_QUIET_S before the end;
- with `--day-every S` (and libfaketime), the plant's days pass: every S seconds each terminal's
  true clock moves on a whole day (a step like the others, recorded as `clock.stepped`), so a
  run of half an hour plays two months of days, with their day reports, the daemon's KPI window
  moving on, and its retention of acknowledged events.

At the end the sources stop, every fault is undone, each daemon is stopped by SIGKILL once the
receiver holds its last event (a clean stop would write the packers' open intervals after the
check), and the harness checks, per terminal: the receiver's count and max seq equal the
terminal's last seq, no seq twice, every event the terminal still holds equal to the receiver's
copy; every `clock.stepped` the receiver holds is one of the steps made (within 2 s), and t1
recorded each of its steps (not judged, and said so, when the machine's own clock moved during
the run: every daemon records that step too); the KPI report of every day from the terminal's store equals the one from the receiver's
events of that terminal, and the plant's report from all terminals equals the receiver's; t1's RSS
open descriptors in the last quarter are no higher than in the second (within 4 MiB and 4
descriptors), and its RSS, once it has closed the `KEEP_CLOSED` visits each visit projection keeps,
is no higher in the second half of the rest of the run than in the first (within 4 MiB). Before
that the projections are filling, and RSS rightly grows with them; a run too short to fill them
says so and leaves RSS unjudged.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.domain.timeline import KEEP_TAIL
from agent.domain.visit_projection import KEEP_CLOSED
from bench import procs
from bench.common import compile_as_installed

TZ = "Asia/Shanghai"
DISK_MB = 48
CLOCK_HOLD_S = 10.0  # a stepped or a true clock stays so this long at least (the watch: 5 s)
CLOCK_QUIET_S = 10.0  # the end of the run with every clock true, so t1 records its last step
CLOCK_SLACK_MS = 2000  # a recorded step may differ from the one made by this much
WARMUP_S = 10.0
SCALE_ARGS = (
    *("--protocol", "xk3190", "--rate", "10", "--weights", "15000,46000"),
    *("--empty-s", "2", "--ramp-s", "1", "--settle-s", "3", "--noise-kg", "2"),
)


# `--year`: five terminals for 100 minutes at about 1,000 events a second, a plant day every 16 s
# (about 16,000 events a day, 375 days), the receiver down for half an hour in the middle: about
# six million events (docs/performance.md, "A year of a busy plant").
YEAR: dict[str, float] = {
    "terminals": 5,
    "seconds": 6000,
    "rate": 200,
    "day_every": 16,
    "clock_every": 400,
    "kill_every": 30,
    "retention_days": 30,
    "disk_mb": 512,
}


@dataclass
class Options:
    """The size of the run and how often each fault strikes (mean seconds between)."""

    terminals: int = 3
    seconds: float = 300.0
    rate: float = 20.0
    seed: int = 1
    kill_every_s: float = 15.0
    cable_every_s: float = 30.0
    modbus_every_s: float = 30.0
    clock_every_s: float = 60.0
    day_every_s: float = 0.0
    retention_days: int = 90  # the config's default; fewer lets a short run reach retention
    disk_mb: int = DISK_MB  # t2's small disk (a year's run at a busy rate holds more)
    faults: bool = True
    disk: bool = True
    keep: bool = False
    census: str = ""  # a folder: t1 runs under bench.census, which writes its censuses there


@dataclass
class Node:
    """One terminal: its folder, processes and what happened to it."""

    name: str
    folder: Path
    daemon: subprocess.Popen[bytes] | None = None
    scale_sim: subprocess.Popen[bytes] | None = None
    packer_sim: subprocess.Popen[bytes] | None = None
    packer_port: int = 0
    kills: int = 0
    starts: int = 0
    cable_pulls: int = 0
    modbus_gone: int = 0
    disk_fills: int = 0
    clock_offset_s: int = 0  # stepped away from the terminal's true clock by this
    clock_base_s: int = 0  # the true clock: the machine's plus the days played
    days: int = 0
    day_due: float = 0.0
    clock_steps: list[int] = field(default_factory=list)  # each step made, in seconds
    clock_next_at: float = 0.0
    accepted: int = 0
    closed: int = 0  # trucks this terminal's source closed (cancelled)
    visit_events: int = 0  # visit events of those trucks (the plant timeline's tail holds them)
    full_at: float | None = None  # when the daemon's visit folds held all they keep
    refusals: collections.Counter[str] = field(default_factory=collections.Counter)  # by sentence
    unavailable: int = 0
    # (t, rss, fds, anonymous rss): which part grows tells a heap from mapped files
    samples: list[tuple[float, float, int, float]] = field(default_factory=list)
    down_until: float = 0.0
    fault_due: dict[str, float] = field(default_factory=dict)  # monotonic time of each next fault
    fault_rng: dict[str, random.Random] = field(default_factory=dict)
    scale_back_at: float = 0.0
    packer_back_at: float = 0.0
    pruned: tuple[int, Any] | None = None  # events retention deleted, and the last day it touched

    @property
    def socket(self) -> str:
        """The daemon's local API."""
        return str(self.folder / "tally.sock")

    @property
    def db(self) -> Path:
        """The daemon's database."""
        return self.folder / "tally.db"


@dataclass
class Result:
    """The table's rows and every failed check (empty: the soak passed)."""

    rows: list[list[str]]
    failures: list[str]
    faults: dict[str, int]
    events: int
    seconds: float
    memory: str = ""
    refusals: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def ok(self) -> bool:
        """Whether every check held."""
        return not self.failures


class Soak:
    """The plant under faults."""

    def __init__(self, opts: Options, root: Path) -> None:
        from agent.cli.commands.demo import packer_points_toml

        self.opts = opts
        self.root = root
        self.rng = random.Random(opts.seed)
        self.faults_from = time.monotonic()  # set again when the faults begin
        self.points = packer_points_toml()
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.receiver: subprocess.Popen[bytes] | None = None
        self.receiver_starts = 0
        self.receiver_kills = 0
        self.stop_sources = threading.Event()
        self.nodes = [Node(f"t{i + 1}", root / f"t{i + 1}") for i in range(opts.terminals)]
        self.mounted: Path | None = None
        self.ballast: Path | None = None
        self.lock = threading.Lock()
        self.clocks = opts.faults and procs.faketime_library() is not None
        self.clock_until = 0.0
        self.machine_clock_ms = procs.machine_clock_ms()  # to see the machine's clock stepped
        if opts.faults and not self.clocks:
            print("soak: no clock steps (apt-get install libfaketime for them)", file=sys.stderr)

    # --- processes ---------------------------------------------------------------------------

    def start_receiver(self) -> None:
        """The receiver on its fixed port, answering."""
        self.receiver, _ = procs.tally(
            *("serve", "--db", str(self.root / "central.db"), "--listen", f"127.0.0.1:{self.port}"),
            *("--tokens", str(self.root / "tokens")),
            log=self.root / "receiver.log",
            first_line=True,
        )
        self.receiver_starts += 1

    def start_scale(self, n: Node) -> None:
        """A scale simulator, linked where the daemon's config points."""
        n.scale_sim, pty = procs.tally(
            "simulate", "scale", *SCALE_ARGS, "--seed", str(self.rng.randrange(1000)),
            log=n.folder / "scale-sim.log", first_line=True,
        )  # fmt: skip
        procs.link_port(n.folder / "scale", pty)

    def start_packer(self, n: Node) -> None:
        """A packer simulator on the terminal's fixed Modbus port."""
        if not n.packer_port:
            n.packer_port = procs.free_port()
        for _ in range(50):  # the port may linger a moment after the previous one ended
            try:
                n.packer_sim, _ = procs.tally(
                    *("simulate", "packer", "--listen", f"127.0.0.1:{n.packer_port}"),
                    *("--seed", str(self.rng.randrange(1000))),
                    log=n.folder / "packer-sim.log",
                    first_line=True,
                )
                return
            except RuntimeError:
                time.sleep(0.2)
        raise RuntimeError(f"{n.name}: the packer simulator could not listen again")

    def start_daemon(self, n: Node) -> None:
        """The terminal's daemon, answering."""
        census = self.opts.census and n.name == "t1"
        env = procs.faketime_env(self.clock_file(n), cache_s=1) if self.clocks else {}
        if census:
            env["TALLY_CENSUS_DIR"] = str(Path(self.opts.census).resolve())
        n.daemon, _ = procs.tally(
            *(("-m", "bench.census") if census else ()),
            *("run", "--config", str(n.folder / "tally.toml")),
            log=n.folder / "daemon.log",
            env=env or None,
        )
        try:
            procs.wait_ping(n.socket, n.daemon, timeout=60)
        except Exception as exc:  # a daemon that cannot start again is what the soak is for
            raise RuntimeError(
                f"{n.name}: the daemon did not start again ({exc}); the end of its log:\n"
                + _tail(n.folder / "daemon.log", 40)
            ) from None
        n.starts += 1

    def clock_file(self, n: Node) -> Path:
        """The offset of the terminal's wall clock (outside its folder, which may be full)."""
        return self.root / f"{n.name}.clock"

    def setup(self) -> None:
        """Folders, tokens, configs and every process."""
        tokens = {n.name: f"soak-token-{n.name}-0123456789abcdef" for n in self.nodes}
        procs.private(self.root / "tokens", "".join(f"{t}:{v}\n" for t, v in tokens.items()))
        self.start_receiver()
        for i, n in enumerate(self.nodes):
            n.folder.mkdir(parents=True)
            if i == 1 and self.opts.faults and self.opts.disk:
                self.mounted = self._mount(n.folder)
            procs.private(n.folder / "token", tokens[n.name])
            self.start_scale(n)
            self.start_packer(n)
            (n.folder / "tally.toml").write_text(
                CONFIG.format(
                    name=n.name,
                    folder=n.folder,
                    url=self.url,
                    token=n.folder / "token",
                    packer_port=n.packer_port,
                    tz=TZ,
                    retention=self.opts.retention_days,
                )
                + self.points,
                encoding="utf-8",
            )
            self.start_daemon(n)

    def _mount(self, folder: Path) -> Path | None:
        if os.geteuid() != 0:
            print("soak: not root, so no disk-full fault", file=sys.stderr)
            return None
        size = f"size={self.opts.disk_mb}m,mode=0755"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            print(f"soak: no disk-full fault ({done.stderr.strip()})", file=sys.stderr)
            return None
        return folder

    def teardown(self) -> None:
        """End every process; unmount the small disk."""
        self.stop_sources.set()
        for n in self.nodes:
            procs.unplug_port(n.folder / "scale")
            for p in (n.daemon, n.scale_sim, n.packer_sim):
                procs.stop(p)
        procs.stop(self.receiver)
        if self.mounted is not None:
            subprocess.run(["umount", "-l", str(self.mounted)], check=False)

    # --- the scripted source -----------------------------------------------------------------

    @staticmethod
    def closed_one(n: Node, visit_events: int) -> None:
        """Count a truck the source closed and its visit events; note when the daemon holds all
        its visit folds keep: both projections (the plant timeline's, and the tickets service's)
        their KEEP_CLOSED closed visits, and the timeline's tail its 2 x KEEP_TAIL events (it is
        cut back to KEEP_TAIL only then). The soak has no peers, so t1's are its own."""
        n.closed += 1
        n.visit_events += visit_events
        if n.full_at is None and n.closed >= KEEP_CLOSED and n.visit_events > 2 * KEEP_TAIL:
            n.full_at = time.monotonic()

    def source(self, n: Node) -> None:
        """Notes at `rate` a second; every tenth step a truck arrives, enters, is cancelled.

        A truck whose steps were cut short (its daemon killed between them, or an answer lost)
        is cancelled before the next one arrives, as the gate would send it away: otherwise it
        would stay first in the gate queue, every later truck would be refused at the gate in
        arrival order, and open visits would pile up for the rest of the run.
        """
        from agent.daemon.client import DaemonUnavailable, RequestRefused, request

        interval = 1.0 / self.opts.rate
        step = 0
        due = time.monotonic()
        cut_short = False
        while not self.stop_sources.is_set():
            step += 1
            try:
                if step % 10 == 0:
                    if cut_short:
                        for v in request(n.socket, "visits.list", timeout=5)["open"]:
                            request(n.socket, "visit.cancel", timeout=5, visit=v["visit"],
                                    reason="soak: cut short")  # fmt: skip
                            n.accepted += 1
                            self.closed_one(n, 1)
                    cut_short = True
                    plate = f"苏{chr(64 + int(n.name[1:]))}{step % 100_000:05d}"
                    v = request(
                        n.socket, "visit.arrive", timeout=5, plate=plate, order=f"SO{step}",
                        product="P.O 42.5", load="bulk", planned_kg=31000,
                    )  # fmt: skip
                    request(n.socket, "visit.gate_in", timeout=5, visit=v["visit"])
                    request(n.socket, "visit.cancel", timeout=5, visit=v["visit"], reason="soak")
                    n.accepted += 3
                    self.closed_one(n, 3)
                    cut_short = False
                else:
                    request(n.socket, "note.add", timeout=5, text=f"soak {n.name} {step}")
                    n.accepted += 1
            except RequestRefused as exc:
                why = re.sub(r"\d+|'[^']*'|\([^)]*\)", "…", str(exc))  # one line per kind
                n.refusals[why] += 1
            except DaemonUnavailable:
                n.unavailable += 1
                time.sleep(0.2)
            except Exception:  # a half-answered request when the daemon was killed mid-way
                n.unavailable += 1
            due += interval
            time.sleep(max(0.0, due - time.monotonic()))
            due = max(due, time.monotonic() - 1.0)

    # --- faults ------------------------------------------------------------------------------

    def _due(self, n: Node, fault: str, every_s: float, now: float) -> bool:
        """Whether the terminal's next `fault` is due (then the one after is drawn).

        Faults come by the clock, at intervals of mean `every_s` (the first after 0.5 to 1.5 of
        it) drawn from a stream of their own per terminal and fault, seeded by --seed: a loaded
        machine that runs the fault loop less often delays a fault but never skips it, so a
        short run has the faults its schedule asks for.
        """
        if every_s <= 0:
            return False
        rng = n.fault_rng.get(fault)
        if rng is None:
            rng = n.fault_rng[fault] = random.Random(f"{self.opts.seed}:{n.name}:{fault}")
            n.fault_due[fault] = self.faults_from + rng.uniform(0.5, 1.5) * every_s
        if now < n.fault_due[fault]:
            return False
        n.fault_due[fault] = now + rng.expovariate(1 / every_s)
        return True

    def faults(self, until: float) -> None:
        """Inject faults until `until` (monotonic), each by its own random clock."""
        dt = 0.25
        start = self.faults_from = time.monotonic()
        span = until - start
        outage = (start + span * 0.25, start + span * 0.55)  # the receiver's long stretch
        outage_done = False
        disk = (start + span * 0.6, start + span * 0.75)
        disk_state = "before"
        self.clock_until = until - CLOCK_QUIET_S
        for n in self.nodes:
            n.day_due = start + self.opts.day_every_s
        while time.monotonic() < until:
            now = time.monotonic()
            for n in self.nodes:
                self._node_faults(n, now, killable=n.name != "t1")
            if not outage_done and now >= outage[0]:
                self._receiver_outage(outage[1])
                outage_done = True
            if self.mounted is not None:
                if disk_state == "before" and now >= disk[0]:
                    self._fill_disk()
                    disk_state = "full"
                elif disk_state == "full" and now >= disk[1]:
                    self._free_disk()
                    disk_state = "freed"
            self.sample()
            time.sleep(dt)
        if disk_state == "full":
            self._free_disk()
        for n in self.nodes:
            if n.clock_offset_s:
                self._step_clock(n, 0, time.monotonic())

    def _node_faults(self, n: Node, now: float, *, killable: bool) -> None:
        o = self.opts
        if n.daemon is not None and n.daemon.poll() is None:
            if killable and self._due(n, "kill", o.kill_every_s, now):
                n.daemon.send_signal(signal.SIGKILL)
                n.daemon.wait()
                n.kills += 1
                n.down_until = now + self.rng.uniform(0.2, 2.0)
        elif now >= n.down_until:
            self.start_daemon(n)
        if n.scale_sim is not None and self._due(n, "cable", o.cable_every_s, now):
            procs.unplug_port(n.folder / "scale")
            procs.stop(n.scale_sim)
            n.scale_sim = None
            n.cable_pulls += 1
            n.scale_back_at = now + self.rng.uniform(1, 5)
        elif n.scale_sim is None and now >= n.scale_back_at:
            self.start_scale(n)
        if n.packer_sim is not None and self._due(n, "modbus", o.modbus_every_s, now):
            procs.stop(n.packer_sim)
            n.packer_sim = None
            n.modbus_gone += 1
            n.packer_back_at = now + self.rng.uniform(2, 10)
        elif n.packer_sim is None and now >= n.packer_back_at:
            self.start_packer(n)
        if self.clocks and now >= n.clock_next_at:
            if n.clock_offset_s:
                self._step_clock(n, 0, now)  # back to true once its stretch is over
            elif now >= self.clock_until - 2 * CLOCK_HOLD_S:
                pass  # a new step could not be undone, and seen, before the quiet end
            elif o.day_every_s and now >= n.day_due:
                n.clock_base_s += 86_400
                n.days += 1
                n.day_due = now + o.day_every_s
                self._step_clock(n, 0, now, by=86_400)
            elif self._due(n, "clock", o.clock_every_s, now):
                offset = self.rng.choice((-1, 1)) * self.rng.randint(600, 3 * 3600)
                self._step_clock(n, offset, now)

    def _step_clock(self, n: Node, offset_s: int, now: float, by: int | None = None) -> None:
        """Set the terminal's clock `offset_s` from its true clock (`by`: the step's size when
        the true clock itself moved)."""
        procs.step_clock(self.clock_file(n), n.clock_base_s + offset_s)
        n.clock_steps.append(offset_s - n.clock_offset_s if by is None else by)
        n.clock_offset_s = offset_s
        # A day played holds only as long as the watch needs to see it (a year fits in an hour)
        hold = CLOCK_HOLD_S if by is not None else self.rng.uniform(CLOCK_HOLD_S, 2 * CLOCK_HOLD_S)
        n.clock_next_at = now + hold

    def _receiver_outage(self, back_at: float) -> None:
        """Down for a long stretch, then killed again mid-drain, then up for good."""
        assert self.receiver is not None
        self.receiver.send_signal(signal.SIGKILL)
        self.receiver.wait()
        self.receiver_kills += 1
        while time.monotonic() < back_at:
            now = time.monotonic()
            for n in self.nodes:
                self._node_faults(n, now, killable=n.name != "t1")
            self.sample()
            time.sleep(0.25)
        for _ in range(2):  # twice killed while the backlog drains
            self.start_receiver()
            time.sleep(self.rng.uniform(0.3, 1.5))
            self.receiver.send_signal(signal.SIGKILL)
            self.receiver.wait()
            self.receiver_kills += 1
        self.start_receiver()

    def _fill_disk(self) -> None:
        assert self.mounted is not None
        self.ballast = self.mounted / "ballast"
        with open(self.ballast, "wb", buffering=0) as f:
            for size in (1 << 20, 65536, 4096, 512, 1):
                while True:
                    try:
                        f.write(b"\0" * size)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        self.nodes[1].disk_fills += 1

    def _free_disk(self) -> None:
        if self.ballast is not None:
            self.ballast.unlink(missing_ok=True)

    def sample(self) -> None:
        """RSS and open descriptors of t1's daemon (never killed)."""
        n = self.nodes[0]
        if n.daemon is not None and n.daemon.poll() is None:
            with contextlib.suppress(OSError):
                pid = n.daemon.pid
                n.samples.append(
                    (time.monotonic(), procs.rss_mb(pid), procs.open_fds(pid), procs.anon_mb(pid))
                )

    # --- the end -----------------------------------------------------------------------------

    def settle(self, timeout: float) -> None:
        """The receiver up, the devices gone quiet; each daemon killed once it has written
        nothing for QUIET_S and the receiver holds its last event.

        The simulators are stopped first: while they run, a daemon writes an event every few
        seconds, and on a busy machine the moment between the receiver catching up and the
        kill rarely stayed free of one.
        """
        from sync.receiver.store import read_stats

        if self.receiver is None or self.receiver.poll() is not None:
            self.start_receiver()
        for n in self.nodes:
            procs.unplug_port(n.folder / "scale")
            for sim in (n.scale_sim, n.packer_sim):
                if sim is not None:
                    procs.stop(sim)
            n.scale_sim = n.packer_sim = None
        deadline = time.monotonic() + timeout
        for n in self.nodes:
            while True:
                if n.daemon is None or n.daemon.poll() is not None:
                    self.start_daemon(n)
                last, quiet_since = -1, time.monotonic()
                while True:
                    now_seq = _last_seq(n.db)
                    if now_seq != last:
                        last, quiet_since = now_seq, time.monotonic()
                    held = {s["terminal"]: s for s in read_stats(str(self.root / "central.db"))}
                    caught_up = int(held.get(n.name, {}).get("max_seq") or 0) >= last
                    if caught_up and time.monotonic() - quiet_since >= QUIET_S:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"{n.name}: the receiver did not catch up in time (terminal at seq "
                            f"{last}, receiver at {held.get(n.name, {}).get('max_seq')}); "
                            f"its log ends:\n{_tail(n.folder / 'daemon.log')}"
                        )
                    time.sleep(0.25)
                assert n.daemon is not None
                n.daemon.send_signal(signal.SIGKILL)
                n.daemon.wait()
                if _last_seq(n.db) <= last:
                    break  # nothing was written between the look and the kill


QUIET_S = 3.0  # a settled daemon has written nothing for this long
# descriptors a daemon may hold open at the end without a leak: a reopened pty, a Modbus
# reconnect and the sender's and the feed's HTTP connections in flight (21 → 24 was seen)
FD_SLACK = 4
MIN_FULL_S = 120.0  # the projections full this long at least, or RSS is not judged


def _tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, or a note that there is none."""
    if not path.exists():
        return f"(no {path.name})"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _last_seq(db: Path) -> int:
    from agent.daemon.store import Store

    store = Store(str(db))
    try:
        return store.last_seq()
    finally:
        store.close()


CONFIG = """[terminal]
id = "{name}"
timezone = "{tz}"
database = "{folder}/tally.db"
socket = "{folder}/tally.sock"

[storage]
retention_days = {retention}

[[scale]]
name = "scale1"
port = "{folder}/scale"
protocol = "xk3190"
min_weight_kg = 500
hold_s = 1.0
min_samples = 3
clear_s = 0.5

[sync]
url = "{url}"
token_file = "{token}"
interval_s = 0.5

[[packer]]
name = "line1"
host = "127.0.0.1"
port = {packer_port}
device_id = 1
poll_s = 0.5
bag_kg = 50
tally_s = 5
"""


# --- checks ----------------------------------------------------------------------------------


def _key(ev: Any) -> tuple[Any, ...]:
    return (
        ev.epoch,
        ev.seq,
        ev.kind,
        ev.at,
        ev.mono_ns,
        ev.boot,
        json.dumps(ev.data, sort_keys=True),
    )


def _after_day(events: list[Any], day: Any, tz: ZoneInfo) -> list[Any]:
    """The events of the plant days after `day`."""
    return [ev for ev in events if datetime.fromisoformat(ev.at).astimezone(tz).date() > day]


def _kpi_days(events: list[Any], tz: ZoneInfo) -> set[Any]:
    return {datetime.fromisoformat(ev.at).astimezone(tz).date() for ev in events}


def check(soak: Soak, seconds: float) -> Result:
    """Compare every terminal with the receiver; build the table."""
    from agent.config import KpiConfig
    from agent.daemon.services.visits import kpi_relevant, load_events
    from agent.daemon.store import Store
    from agent.domain import kpis
    from sync.receiver.store import read_events

    tz = ZoneInfo(TZ)
    central_db = soak.root / "central.db"
    # A step of the machine's own clock (NTP, a pause of the whole virtual machine) is recorded
    # by every daemon, or merged into a step the soak made: the steps cannot be judged then.
    machine_ms = procs.machine_clock_ms() - soak.machine_clock_ms
    machine_stepped = abs(machine_ms) > CLOCK_SLACK_MS // 2
    # after every event of every day played (a terminal's clock may be days ahead)
    as_of = datetime.now(UTC) + timedelta(seconds=max(n.clock_base_s for n in soak.nodes), days=1)
    failures: list[str] = []
    rows = [["terminal", "events", "receiver", "max seq", "twice", "kills", "cable", "modbus",
             "disk", "clock", "days", "KPI equal", "refused"]]  # fmt: skip
    plant_local: list[Any] = []
    plant_theirs: list[Any] = []
    total = 0
    compared: list[int] = []
    notes: list[str] = []
    for n in soak.nodes:
        store = Store(str(n.db))
        try:
            last = store.last_seq()
            mine = list(store.iter_events())
            kpi_mine = list(load_events(store, kpi=True, foreign=False))
        finally:
            store.close()
        theirs = list(read_events(str(central_db), n.name))  # a year's: one terminal at a time
        seqs = [ev.seq for ev in theirs]
        twice = len(seqs) - len(set(seqs))
        max_seq = max(seqs, default=0)
        total += last
        if len(theirs) != last or max_seq != last:
            failures.append(
                f"{n.name}: the receiver holds {len(theirs)} events up to seq {max_seq},"
                f" the terminal wrote {last}"
            )
        if twice:
            failures.append(f"{n.name}: {twice} seqs are held twice by the receiver")
        stepped = sorted((ev.seq, ev) for ev in theirs if ev.kind == "clock.stepped")
        seen = [int(ev.data["delta_ms"]) for _, ev in stepped]  # by seq: the wall times jump
        if not machine_stepped:
            failures.extend(_clock_problems(n, seen))
        by_seq = {ev.seq: _key(ev) for ev in theirs}
        differ = sum(1 for ev in mine if by_seq.get(ev.seq) != _key(ev))
        if differ:
            failures.append(f"{n.name}: {differ} events differ from the receiver's copies")
        kpi_theirs = [ev for ev in theirs if kpi_relevant(ev.kind)]
        # Retention deletes acknowledged events past `retention_days` of the terminal's own
        # (stepped) clock, so a run that plays more days than that compares only the days after
        # the last one retention touched, and the day after it (a wait there may have begun on it).
        held = {ev.seq for ev in mine}
        pruned = [ev for ev in theirs if ev.seq not in held]
        if pruned:
            n.pruned = (len(pruned), max(_kpi_days(pruned, tz)))
        if n.pruned is not None:
            # Both sides from the day after the last one retention touched: the same events
            # when nothing was lost, and a year's events need not be folded for a few days.
            kpi_mine = _after_day(kpi_mine, n.pruned[1], tz)
            kpi_theirs = _after_day(kpi_theirs, n.pruned[1], tz)
        days = {
            d
            for d in _kpi_days(kpi_mine, tz) | _kpi_days(kpi_theirs, tz)
            if n.pruned is None or d > n.pruned[1] + timedelta(days=1)
        }
        compared.append(len(days))
        equal = all(
            kpis.compute(kpi_mine, d, tz, KpiConfig(), as_of=as_of)
            == kpis.compute(kpi_theirs, d, tz, KpiConfig(), as_of=as_of)
            for d in days
        )
        if not equal:
            failures.append(f"{n.name}: its KPI report differs from the receiver's")
        plant_local.extend(kpi_mine)
        plant_theirs.extend(kpi_theirs)
        held_by_receiver = len(theirs)
        del theirs, mine, by_seq, held, pruned  # a year's events: one terminal at a time
        rows.append([n.name, str(last), str(held_by_receiver), str(max_seq), str(twice), str(n.kills),
                     str(n.cable_pulls), str(n.modbus_gone), str(n.disk_fills),
                     f"{len(n.clock_steps)}/{len(seen)}", str(n.days), "yes" if equal else "NO", str(n.refusals.total())])  # fmt: skip
    plant_days = _kpi_days(plant_local, tz) | _kpi_days(plant_theirs, tz)
    # the last plant day retention touched on any terminal
    retention_end = max((m.pruned[1] for m in soak.nodes if m.pruned), default=None)
    if retention_end is not None:
        kept = {d for d in plant_days if d > retention_end + timedelta(days=1)}
        plant_local = _after_day(plant_local, retention_end, tz)
        plant_theirs = _after_day(plant_theirs, retention_end, tz)
        note = (
            f"retention ({soak.opts.retention_days} days of each daemon's clock) deleted"
            f" acknowledged events of days up to {retention_end} on "
            + ", ".join(f"{m.name} ({m.pruned[0]})" for m in soak.nodes if m.pruned)
            + f": the KPI reports were compared on the {len(kept)} plant days after the day"
            f" following it (per terminal {min(compared)} to {max(compared)}), not on the"
            f" {len(plant_days) - len(kept)} before"
        )
        notes.append(note)
        plant_days = kept
    for d in plant_days:
        if kpis.compute(plant_local, d, tz, KpiConfig(), as_of=as_of) != kpis.compute(
            plant_theirs, d, tz, KpiConfig(), as_of=as_of
        ):
            failures.append(f"the plant's KPI report of {d} differs from the receiver's")
    memory, problems = _flat(soak.nodes[0])
    failures.extend(problems)
    for note in notes:
        memory = f"{memory}\n{note}" if memory else note
    if machine_stepped:
        note = (
            f"the machine's own clock moved by {machine_ms} ms against its monotonic clock"
            " during the run (NTP, or a pause of the whole machine): clock steps not judged"
        )
        memory = f"{memory}\n{note}" if memory else note
    faults = {
        "daemon kills": sum(n.kills for n in soak.nodes),
        "receiver kills": soak.receiver_kills,
        "cable pulls": sum(n.cable_pulls for n in soak.nodes),
        "modbus gone": sum(n.modbus_gone for n in soak.nodes),
        "disk fills": sum(n.disk_fills for n in soak.nodes),
        "clock steps": sum(len(n.clock_steps) for n in soak.nodes),
        "days played": max(n.days for n in soak.nodes),
    }
    refusals = sum((n.refusals for n in soak.nodes), collections.Counter[str]())
    logs = [("the receiver", soak.root / "receiver.log")]
    logs += [(n.name, n.folder / "daemon.log") for n in soak.nodes]
    failures += [problem for who, log in logs if (problem := _traceback_in(who, log))]
    return Result(rows, failures, faults, total, seconds, memory, refusals)


def _traceback_in(who: str, log: Path) -> str | None:
    """A failure naming the tracebacks in a log (a daemon carries on past an exception in a
    callback, so the checks alone could miss one), or None."""
    if not log.exists():
        return None
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if not starts:
        return None
    end = next((line for line in lines[starts[0] + 1 :] if not line.startswith(" ")), "")
    return f"{who}: its log holds {len(starts)} traceback(s), the first ending: {end}"


def _clock_problems(n: Node, seen_ms: list[int]) -> list[str]:
    """Every recorded step is one that was made; t1 (never killed) recorded each of its steps.

    A daemon killed while its clock was stepped starts from the stepped clock, so a step made
    while it was down is rightly not recorded: the others may record fewer than were made.
    """
    made_ms = [s * 1000 for s in n.clock_steps]
    out = [
        f"{n.name}: a clock step of {ms} ms was recorded, and no such step was made"
        for ms in seen_ms
        if not any(abs(ms - m) <= CLOCK_SLACK_MS for m in made_ms)
    ]
    if n.name == "t1" and (
        len(seen_ms) != len(made_ms)
        or any(abs(a - b) > CLOCK_SLACK_MS for a, b in zip(seen_ms, made_ms, strict=False))
    ):
        out.append(f"{n.name}: its clock was stepped by {made_ms} ms and it recorded {seen_ms}")
    return out


def _tenth(mib: float | None) -> str:
    """A tenth's figure; a dash for a tenth without a sample (the fault loop was busy)."""
    return "–" if mib is None else f"{mib:.1f}"


def _flat(n: Node) -> tuple[str, list[str]]:
    """t1's descriptors in the last quarter against the second, and its RSS once its visit
    projections are full: the second half of the rest of the run against the first."""
    s = n.samples
    if len(s) < 8:
        return "", [f"{n.name}: too few memory samples ({len(s)}) to judge"]
    t0, t1 = s[0][0] + WARMUP_S, s[-1][0]
    q = (t1 - t0) / 4
    second = [x for x in s if t0 + q <= x[0] < t0 + 2 * q]
    last = [x for x in s if x[0] >= t0 + 3 * q]
    if not second or not last:
        return "", [f"{n.name}: too few memory samples to judge"]
    out = []
    fd2, fd4 = max(x[2] for x in second), max(x[2] for x in last)
    tenth = (t1 - s[0][0]) / 10  # the whole curve, to tell a filling cache from a leak

    def curve(part: int) -> str:
        return " ".join(
            _tenth(
                max(
                    (x[part] for x in s if k * tenth <= x[0] - s[0][0] < (k + 1) * tenth),
                    default=None,
                )
            )
            for k in range(10)
        )

    full_at = n.full_at
    full = [] if full_at is None else [x for x in s if x[0] >= full_at + WARMUP_S]
    if full_at is not None and len(full) >= 8 and full[-1][0] - full[0][0] >= MIN_FULL_S:
        mid = (full[0][0] + full[-1][0]) / 2
        rss_a = max(x[1] for x in full if x[0] < mid)
        rss_b = max(x[1] for x in full if x[0] >= mid)
        judged = (
            f"full after {full_at - s[0][0]:.0f} s ({KEEP_CLOSED} visits closed, the timeline's"
            f" tail cut back), max RSS in"
            f" the first and the second half of the rest: {rss_a:.1f} and {rss_b:.1f} MiB"
        )
        if rss_b > rss_a + 4:
            out.append(f"{n.name}: RSS grew from {rss_a:.1f} MiB to {rss_b:.1f} MiB once full")
    else:
        judged = (
            f"RSS not judged: its visit folds never held all they keep for {MIN_FULL_S:.0f} s"
            f" ({n.closed} of {KEEP_CLOSED} visits closed, {n.visit_events} of the"
            f" {2 * KEEP_TAIL + 1} visit events that fill the timeline's tail; a longer run or a"
            " higher --rate fills them)"
        )
    memory = (
        f"{n.name} (never killed): {judged}; open descriptors {fd2} and {fd4} (max in the 2nd and"
        f" the last quarter); RSS by tenth of the run: {curve(1)}; of it anonymous (heap,"
        f" stacks): {curve(3)}"
    )
    if fd4 > fd2 + FD_SLACK:
        out.append(f"{n.name}: open descriptors grew from {fd2} to {fd4}")
    return memory, out


def run(opts: Options) -> Result:
    """Set up, run with faults, settle, check; always clean up."""
    root = Path(tempfile.mkdtemp(prefix="tally-soak-"))
    soak = Soak(opts, root)
    started = time.monotonic()
    try:
        soak.setup()
        sources = [threading.Thread(target=soak.source, args=(n,), daemon=True) for n in soak.nodes]
        for t in sources:
            t.start()
        until = time.monotonic() + opts.seconds
        if opts.faults:
            time.sleep(WARMUP_S)
            soak.faults(until)
        else:
            while time.monotonic() < until:
                soak.sample()
                time.sleep(0.25)
        soak.stop_sources.set()
        for t in sources:
            t.join(10)
        soak.settle(timeout=120 + opts.seconds)
        return check(soak, time.monotonic() - started)
    finally:
        soak.teardown()
        if opts.keep:
            print(f"soak: kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def table(result: Result) -> str:
    """The printed report."""
    rows = result.rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]  # fmt: skip
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    lines.append(
        f"{result.events} events in {result.seconds:.0f} s; faults: "
        + ", ".join(f"{k} {v}" for k, v in result.faults.items())
    )
    if result.refusals:
        lines.append("refused by the daemons (the scripted source's requests):")
        lines.extend(f"  {n} × {why}" for why, n in result.refusals.items())
    if result.memory:
        lines.append(result.memory)
    lines.append("checks: " + ("all passed" if result.ok else "FAILED"))
    lines.extend(f"  - {f}" for f in result.failures)
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """`python -m bench.soak [--terminals N] [--seconds S] ...`; exit 1 when a check fails."""
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    d = Options()
    p.add_argument("--terminals", type=int, default=d.terminals, help="how many terminals")
    p.add_argument("--seconds", type=float, default=d.seconds, help="how long the plant runs")
    p.add_argument("--rate", type=float, default=d.rate, help="API steps a second per terminal")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the fault schedule")
    p.add_argument("--kill-every", type=float, default=d.kill_every_s, metavar="S",
                   help="mean seconds between SIGKILLs of each killable daemon")  # fmt: skip
    p.add_argument("--clock-every", type=float, default=d.clock_every_s, metavar="S",
                   help="mean seconds between steps of each terminal's clock (0: never)")  # fmt: skip
    p.add_argument("--day-every", type=float, default=d.day_every_s, metavar="S",
                   help="move every terminal's clock on a day every S seconds (0: never)")  # fmt: skip
    p.add_argument("--retention-days", type=int, default=d.retention_days, metavar="N",
                   help="each daemon's [storage] retention_days (1 to 36500)")  # fmt: skip
    p.add_argument("--disk-mb", type=int, default=d.disk_mb, metavar="MB",
                   help="the size of t2's small disk, which the disk-full fault fills")  # fmt: skip
    p.add_argument("--no-faults", action="store_true", help="the same plant without faults")
    p.add_argument("--keep", action="store_true", help="keep the folder (logs, databases)")
    p.add_argument("--census", metavar="DIR", default="",
                   help="run t1 under bench.census: a census of its live objects in DIR every minute")  # fmt: skip
    p.add_argument("--year", action="store_true",
                   help="a compressed year of a busy plant (what `make soak` runs): "
                   + ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in YEAR.items())
                   + " (given options win)")  # fmt: skip
    if "--year" in argv:
        p.set_defaults(**YEAR)
    a = p.parse_args(argv)
    if not 1 <= a.retention_days <= 36_500:
        print("soak: give --retention-days from 1 to 36500", file=sys.stderr)
        return 2
    if not 8 <= a.disk_mb <= 65_536:
        print("soak: give --disk-mb from 8 to 65536", file=sys.stderr)
        return 2
    if a.terminals < 2 or a.seconds < 30 or a.rate <= 0:
        print("soak: give --terminals 2 or more, --seconds 30 or more and a positive --rate",
              file=sys.stderr)  # fmt: skip
        return 2
    opts = Options(
        terminals=a.terminals,
        seconds=a.seconds,
        rate=a.rate,
        seed=a.seed,
        kill_every_s=a.kill_every,
        day_every_s=a.day_every,
        retention_days=a.retention_days,
        disk_mb=a.disk_mb,
        clock_every_s=a.clock_every,
        faults=not a.no_faults,
        keep=a.keep,
        census=a.census,
    )
    compile_as_installed()  # the daemons load byte code, as installed ones do

    # Stopped from outside (SIGTERM, SIGHUP: a closed terminal), the soak still tears down: its
    # daemons stop and t2's small disk is unmounted (a dead soak would leave the mount behind).
    def stopped(signum: int, _frame: object) -> None:
        raise SystemExit(f"soak: stopped by {signal.Signals(signum).name}; cleaned up")

    signal.signal(signal.SIGTERM, stopped)
    signal.signal(signal.SIGHUP, stopped)
    result = run(opts)
    sys.stdout.write(table(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

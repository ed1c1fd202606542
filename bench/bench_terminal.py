"""A whole terminal's load on one daemon, next to the bare libraries doing the same device work.

The load: a truck scale (toledo) at 20 frames/s and a bag scale (ascii, 0.01 kg) at 10 frames/s
on pseudo-terminals, one Modbus TCP server with 4 packer units x 6 points polled at 1 Hz, sync
to a real receiver, and replication pulled from a second terminal that writes a note at a busy
plant's rate (16,000 events a day). Windows of TALLY_BENCH_TERMINAL_S seconds (default 60): the
daemon and, in the same window, `bench.bare` (pyserial reading ports of the same simulators,
pymodbus polling a server of the same units, storing nothing) on a twin set of simulators of its
own; then the daemon again with every simulator, the receiver and the peer gone. CPU is the
process's own utime + stime over the window (see bench/procs.py), so it holds on a loaded
machine, and the two side by side share whatever the machine's speed did meanwhile. With
TALLY_BENCH_TERMINAL_PARTS=1, windows of the daemon with some of its parts follow, each beside
the bare libraries doing that part's device work (PART_WINDOWS). With TALLY_BENCH_TERMINAL_DAYS=N
the measured daemon starts on a database that already holds N busy days of a weighbridge
terminal (`bench.bench_restart.fill`, sent to the server before the measured start): a full
terminal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench import procs
from bench.bench_packer import POINTS  # the same 4 units x 6 points
from bench.common import Row

WINDOW_S = float(os.environ.get("TALLY_BENCH_TERMINAL_S", "60"))
# TALLY_BENCH_TERMINAL_PARTS=1 adds windows of the daemon with some of its parts, each beside
# the bare libraries doing that part's device work (where the daemon's CPU goes): its devices
# without sync and replication, its packers alone, and its bare process (no device at all)
PARTS = os.environ.get("TALLY_BENCH_TERMINAL_PARTS", "") not in ("", "0")
DAYS = int(os.environ.get("TALLY_BENCH_TERMINAL_DAYS", "0"))  # history held at start
PART_WINDOWS = (
    (
        "devices only (scales and packers, no sync or peer)",
        ("terminal", "scales", "packers"),
        ("serial", "modbus"),
    ),
    ("packers only", ("terminal", "packers"), ("modbus",)),
    ("no device, no sync, no peer", ("terminal",), ()),
)
WARMUP_S = 10.0
GONE_SETTLE_S = 20.0  # every device has been seen gone and its retry timer is at its cap
NOTES_PER_DAY = 16_000
UNITS = 4


def packers_toml(port: int) -> str:
    """The [[packer]] tables of the 4 units on one server."""
    return "".join(
        f'[[packer]]\nname = "line{u}"\nhost = "127.0.0.1"\nport = {port}\ndevice_id = {u}\n'
        f"poll_s = 1.0\ntally_s = 60\nbag_kg = 50\n{POINTS}\n"
        for u in range(1, UNITS + 1)
    )


class Terminal:
    """The simulators, the receiver, the peer terminal and the measured daemon's config."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.stop_notes = threading.Event()
        self.scale_sim: subprocess.Popen[bytes] | None = None
        self.bag_sim: subprocess.Popen[bytes] | None = None
        self.packer_sim: subprocess.Popen[bytes] | None = None
        self.receiver: subprocess.Popen[bytes] | None = None
        self.gate: subprocess.Popen[bytes] | None = None

    def log(self, name: str) -> Path:
        """Where a child's output goes."""
        return self.folder / f"{name}.log"

    def start_devices(self, servers: bool = True) -> None:
        """Scale and bag-scale simulators, the packer server and, with `servers`, the receiver
        and the peer with its notes."""
        f = self.folder
        self.scale_sim, self.scale_pty = procs.tally(
            *("simulate", "scale", "--protocol", "toledo", "--rate", "20", "--seed", "1"),
            log=self.log("scale-sim"),
            first_line=True,
        )
        self.bag_sim, self.bag_pty = procs.tally(
            *("simulate", "scale", "--protocol", "ascii", "--division-kg", "0.01"),
            *("--rate", "10", "--weights", "50.02,49.96,50.08", "--seed", "2"),
            *("--empty-s", "1", "--ramp-s", "0.5", "--settle-s", "2", "--noise-kg", "0.02"),
            log=self.log("bag-sim"),
            first_line=True,
        )
        procs.link_port(f / "scale1", self.scale_pty)
        procs.link_port(f / "bags1", self.bag_pty)
        (f / "map.toml").write_text(packers_toml(502), encoding="utf-8")
        self.packer_sim, line = procs.tally(
            *("simulate", "packer", "--listen", "127.0.0.1:0", "--map", str(f / "map.toml")),
            log=self.log("packer-sim"),
            first_line=True,
        )
        self.modbus_port = int(line.rsplit(":", 1)[1])
        if servers:
            self._start_servers()

    def _start_servers(self) -> None:
        """The receiver, the peer terminal writing notes, and the measured daemon's config."""
        f = self.folder
        token, gate_token = "bench-terminal-wb1-0123456789", "bench-terminal-gate-0123456789"
        procs.private(f / "token", token)
        procs.private(f / "gate-token", gate_token)
        procs.private(f / "tokens", f"wb1:{token}\ngate:{gate_token}\n")
        procs.private(f / "readers", f"wb1:{token}\n")
        self.receiver, line = procs.tally(
            *("serve", "--db", str(f / "central.db"), "--listen", "127.0.0.1:0"),
            *("--tokens", str(f / "tokens")),
            log=self.log("receiver"),
            first_line=True,
        )
        self.url = line.removeprefix("listening ")
        gate = f / "gate"
        gate.mkdir()
        self.gate_port = procs.free_port()
        (gate / "tally.toml").write_text(
            f'[terminal]\nid = "gate"\ndatabase = "{gate}/tally.db"\n'
            f'socket = "{gate}/tally.sock"\n\n'
            f'[sync]\nurl = "{self.url}"\ntoken_file = "{f}/gate-token"\n\n'
            f'[feed]\nlisten = "127.0.0.1:{self.gate_port}"\ntokens_file = "{f}/readers"\n',
            encoding="utf-8",
        )
        self.gate, _ = procs.tally(
            "run", "--config", str(gate / "tally.toml"), log=self.log("gate")
        )
        procs.wait_ping(str(gate / "tally.sock"), self.gate)
        self.config = f / "tally.toml"
        self.sections = {
            "terminal": f'[terminal]\nid = "wb1"\ndatabase = "{f}/tally.db"\n'
            f'socket = "{f}/tally.sock"\n\n',
            "scales": f'[[scale]]\nname = "scale1"\nport = "{f / "scale1"}"\nprotocol = "toledo"\n\n'
            f'[[scale]]\nname = "bags1"\nport = "{f / "bags1"}"\nprotocol = "ascii"\n'
            'role = "bags"\npacker = "line1"\nmin_weight_kg = 20\nzero_band_g = 200\n'
            "band_g = 100\nhold_s = 1.0\nclear_s = 0.5\n\n",
            "sync": f'[sync]\nurl = "{self.url}"\ntoken_file = "{f}/token"\n\n',
            "peer": f'[[peer]]\nname = "gate"\nurl = "http://127.0.0.1:{self.gate_port}"\n'
            f'token_file = "{f}/token"\n\n',
            "packers": packers_toml(self.modbus_port),
        }
        self.write_config(*self.sections)
        threading.Thread(target=self._notes, daemon=True).start()

    def write_config(self, *parts: str) -> None:
        """The measured daemon's config with only these of `sections` (the bag scale belongs
        to packer line1, so "scales" needs "packers")."""
        self.config.write_text("".join(self.sections[p] for p in parts), encoding="utf-8")

    def _notes(self) -> None:
        """The rest of the plant: a note on the peer at a busy plant's rate."""
        from agent.daemon.client import DaemonUnavailable, request

        n = 0
        while not self.stop_notes.wait(86_400 / NOTES_PER_DAY):
            n += 1
            try:
                request(str(self.folder / "gate" / "tally.sock"), "note.add", text=f"bench {n}")
            except DaemonUnavailable:
                return

    def create_database(self) -> None:
        """The measured terminal's database as every start but the very first finds it: created
        and current (the first start also loads sqlite-utils to create it, 4.5 MiB more until
        the daemon restarts)."""
        from agent.daemon.store import init_database

        init_database(str(self.folder / "tally.db"), "wb1")

    def fill_history(self, days: int) -> int:
        """`days` busy days in the measured terminal's database, already sent to the server as
        a terminal's history is (its sender has nothing old to send); the events held.

        The server is given them by the daemon itself, started for that alone: marking them
        acknowledged instead left the server without them, and the measured daemon, seeing
        the server behind, sent all 24,240 again in its measuring window (0.9 MiB more RSS on
        46d6878).
        """
        from agent.daemon.store import Store
        from bench.bench_restart import fill
        from sync.sender.status import ACKED

        db = str(self.folder / "tally.db")
        held = fill(db, days)
        store = Store(db)
        try:
            last = store.last_seq()
            self.write_config("terminal", "sync")
            sender, _ = procs.tally("run", "--config", str(self.config), log=self.log("sender"))
            try:
                deadline = time.monotonic() + 600
                while int(store.get_state(ACKED, 0)) < last:
                    if time.monotonic() > deadline or sender.poll() is not None:
                        raise RuntimeError(f"the history was not sent; see {self.log('sender')}")
                    time.sleep(0.5)
            finally:
                procs.stop(sender)
                self.write_config(*self.sections)
        finally:
            store.close()
        return held

    def start_daemon(self) -> subprocess.Popen[bytes]:
        """The measured daemon, answering."""
        daemon, _ = procs.tally("run", "--config", str(self.config), log=self.log("daemon"))
        procs.wait_ping(str(self.folder / "tally.sock"), daemon)
        return daemon

    def devices_gone(self) -> None:
        """Every simulator, the receiver and the peer end."""
        self.stop_notes.set()
        for link in ("scale1", "bags1"):  # first: the daemon's retries must find nothing
            procs.unplug_port(self.folder / link)
        for p in (self.scale_sim, self.bag_sim, self.packer_sim, self.receiver, self.gate):
            procs.stop(p)

    def stop(self) -> None:
        """End whatever still runs."""
        self.devices_gone()


def start_bare(twin: Terminal, work: tuple[str, ...], log: Path) -> subprocess.Popen[bytes]:
    """`bench.bare` doing `work` ("serial": both scales' ports, "modbus": the 4 units) on the
    twin's simulators, ready."""
    args: list[str] = []
    if "serial" in work:
        args += ["--serial", twin.scale_pty, "--serial", twin.bag_pty]
    if "modbus" in work:
        args += ["--modbus", f"127.0.0.1:{twin.modbus_port}"]
        args += ["--units", ",".join(str(u) for u in range(1, UNITS + 1))]
    bare, _ = procs.tally("-m", "bench.bare", *args, log=log, first_line=True)
    return bare


def run() -> list[Row]:
    """The windows, printed as rows with the ratio of Tally to the bare libraries."""
    folder = Path(tempfile.mkdtemp(prefix="tally-bench-"))
    t = Terminal(folder)
    daemon: subprocess.Popen[bytes] | None = None
    bare: subprocess.Popen[bytes] | None = None
    # The bare libraries read simulators of their own, the same as the daemon's, in the same
    # window: a virtual machine's speed moves by a factor of two between minutes, and side by
    # side both figures move with it.
    twin = Terminal(folder / "twin")
    try:
        t.start_devices()
        (folder / "twin").mkdir()
        twin.start_devices(servers=False)
        t.create_database()
        history = t.fill_history(DAYS) if DAYS else 0
        daemon = t.start_daemon()
        bare = start_bare(twin, ("serial", "modbus"), t.log("bare"))
        time.sleep(WARMUP_S)
        (cpu, rss, wakes), (bare_cpu, bare_rss, bare_wakes) = procs.windows_wakeups(
            [daemon.pid, bare.pid], WINDOW_S
        )
        procs.stop(daemon)
        procs.stop(bare)
        parts: list[Row] = []
        for label, sections, work in PART_WINDOWS if PARTS else ():
            t.write_config(*sections)
            daemon = t.start_daemon()
            bare = start_bare(twin, work, t.log("bare"))
            time.sleep(WARMUP_S)
            (part_cpu, _, part_wakes), (part_bare, _, _) = procs.windows_wakeups(
                [daemon.pid, bare.pid], WINDOW_S
            )
            procs.stop(daemon)
            procs.stop(bare)
            parts += [
                Row(f"terminal daemon CPU, {label}", part_cpu, "% of one core"),
                Row(f"  bare libraries beside it ({' and '.join(work) or 'idle'})", part_bare,
                    "% of one core"),
                Row(f"terminal daemon wake-ups, {label}", part_wakes, "a second"),
            ]  # fmt: skip
        twin.stop()
        t.write_config(*t.sections)
        daemon = t.start_daemon()
        time.sleep(WARMUP_S / 2)
        t.devices_gone()
        time.sleep(GONE_SETTLE_S)
        gone_cpu, _, gone_wakes = procs.window_wakeups(daemon.pid, WINDOW_S)
    finally:
        procs.stop(daemon)
        procs.stop(bare)
        t.stop()
        twin.stop()
        shutil.rmtree(folder, ignore_errors=True)
    w = f"{WINDOW_S:g} s"
    held = [Row(f"terminal history held at start ({DAYS} busy days)", history, "events")]
    return [
        *(held if DAYS else []),
        Row(f"terminal daemon CPU, whole load ({w})", cpu, "% of one core"),
        Row("terminal bare libraries CPU, same device work", bare_cpu, "% of one core"),
        Row("terminal daemon / bare libraries CPU", cpu / max(bare_cpu, 1e-9), "x"),
        Row("terminal daemon RSS, whole load", rss, "MiB"),
        Row("terminal bare libraries RSS", bare_rss, "MiB"),
        Row(f"terminal daemon CPU, every device and server gone ({w})", gone_cpu, "% of one core"),
        Row("terminal daemon wake-ups, whole load", wakes, "a second"),
        Row("terminal bare libraries wake-ups, same device work", bare_wakes, "a second"),
        Row("terminal daemon wake-ups, every device and server gone", gone_wakes, "a second"),
        *parts,
    ]

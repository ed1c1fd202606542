"""`tally demo`: a whole simulated plant on loopback, driven truck by truck, with the operator UI.

The plant is three terminals and the central receiver, as a real plant runs them: gate1 (the
gate and the windows), wb1 (the weighbridge, reading the scale simulator) and pk1 (the packing
line, reading the packer simulator), each its own `tally run` with its own database; each
forwards its events to the receiver and pulls the others' (docs/replication.md), so every
terminal shows the whole plant. The operator UI opens on one of them (`--terminal`).

Reading order: `main` → `Plant.start` (the processes) → `Driver.truck` (one visit through every
stage, each stage on the terminal where it happens) → `summary` (what was weighed, counted and
synced, and whether every terminal agrees with the receiver). Everything runs in a temporary
folder on 127.0.0.1. Nothing is left behind: on the way out (a clean exit, an error, Ctrl-C,
SIGTERM, or SIGHUP when the terminal closes) the demo ends every child and removes the folder
itself; when it is killed outright, every child holds its lifeline (agent.daemon.lifeline), sees
it close and stops by itself, and the reaper started first removes the folder after them.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.errors import Unavailable

HELP = (
    "a simulated plant on loopback (gate, weighbridge and packing terminals, receiver) and the UI"
)

# The terminals of the demo plant and what each does.
TERMINALS = ("gate1", "wb1", "pk1")
GATE, SCALE, PACKING = TERMINALS

# The simulated trucks: empty and loaded weights alternate, so a visit queued just after a
# loaded truck was captured gets the next (empty) truck as its tare, and the loaded one after
# that as its gross.
TARE_KG, GROSS_KG, PLANNED_KG, BAG_KG = 15_000, 46_000, 31_000, 50
LIGHT_BELOW_KG = (TARE_KG + GROSS_KG) // 2
SCALE_ARGS = ["--protocol", "xk3190", "--rate", "10", "--weights", f"{TARE_KG},{GROSS_KG}"]
SCALE_ARGS += [
    "--empty-s",
    "2",
    "--ramp-s",
    "1",
    "--settle-s",
    "3",
    "--noise-kg",
    "2",
    "--seed",
    "7",
]
STAGE_PAUSE_S = 0.6  # the compressed clock: seconds between an operator's steps
LOADING_S = 1.5
START_TIMEOUT_S = 60.0  # a piece that is still starting (one that ended fails at once)
MATCH_TIMEOUT_S = 40.0
REPLICA_TIMEOUT_S = 20.0  # a stage recorded on one terminal reaching another (well under 1 s)
SYNC_TIMEOUT_S = 20.0


def packer_points_toml() -> str:
    """The packer simulator's own point map as [[packer.point]] tables (one source of truth)."""
    import json
    from dataclasses import fields

    from agent.config import PointConfig
    from drivers.packer_sim import default_points

    defaults = PointConfig("", 0, 0)
    tables = []
    for sp in default_points():
        pt = sp.point
        point = PointConfig(
            sp.role,
            pt.function,
            pt.address,
            pt.type,
            pt.word_order,
            pt.byte_swap,
            pt.scale,
            sp.modulus,
        )
        keys = [
            f"  {f.name} = {json.dumps(getattr(point, f.name))}"
            for f in fields(point)
            if f.name in ("role", "function", "address")
            or getattr(point, f.name) != getattr(defaults, f.name)
        ]
        tables.append("\n".join(["", "  [[packer.point]]", *keys]))
    return "\n".join(tables) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally demo`."""
    p.add_argument("--headless", action="store_true", help="no UI: drive trucks, then report")
    p.add_argument(
        "--seconds", type=float, default=60.0, help="how long to drive trucks headless (default 60)"
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (logs, databases)"
    )
    p.add_argument("--language", choices=("zh", "en"), default="zh", help="UI language")
    p.add_argument(
        "--terminal",
        choices=TERMINALS,
        default=GATE,
        help="the terminal whose operator UI opens: gate1 (gate, windows; the default), "
        "wb1 (weighbridge) or pk1 (packing)",
    )


def main(args: argparse.Namespace) -> int:
    """Start the plant, drive it (under the UI or headless), report, and clean up."""
    import json
    import os
    import shutil
    import signal
    import sys
    import tempfile
    from pathlib import Path

    from agent.errors import UsageError

    if args.seconds <= 0:
        raise UsageError("--seconds must be a positive number of seconds")

    from agent.daemon import lifeline

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Ctrl-C too: asyncio.run's own SIGINT handling only cancels the running task, which a
    # swallowed cancellation can outlive.
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_term)
    folder = Path(tempfile.mkdtemp(prefix="tally-demo-"))
    lifeline.start_reaper(folder, keep=args.keep)  # for when this process is killed outright
    plant = Plant(folder, args.language, log=None if args.json else sys.stderr)
    try:
        plant.start()
        if args.headless:
            report = plant.drive_for(args.seconds)
        else:
            report = plant.drive_under_ui(args.terminal)
    except DemoError as exc:
        print(f"tally demo: {exc}", file=sys.stderr)
        plant.print_log_tail(sys.stderr)
        return 1
    except KeyboardInterrupt:
        report = None
    finally:
        plant.stop()
        if args.keep:
            print(f"tally demo: kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if report is None:
        # Interrupted (Ctrl-C, SIGTERM, or SIGHUP when its terminal closed): every child is
        # stopped and the folder handled, so end now. An orderly exit would wait for library
        # threads (the UI's output to a terminal that is gone) and outlive the promise of
        # nothing left behind within seconds.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    elif args.headless:
        for key, value in report.items():
            print(f"{key:<18} {value}")
    return 0


class DemoError(Unavailable):
    """A piece of the plant did not start or did not do its part; the message says which."""


class Plant:
    """The processes of the simulated plant and the folder they live in.

    Each terminal T has its files side by side in the folder: T.toml, T.db, T.sock, T.log,
    T.token (its token at the receiver and at the other terminals' feeds) and T.readers (the
    tokens its own feed accepts).
    """

    def __init__(self, folder: Any, language: str, log: Any) -> None:
        import secrets

        self.folder = folder
        self.language = language
        self.log = log
        self.children: list[tuple[str, Any]] = []
        self.central = folder / "central.db"
        self.receiver_url = ""
        self.tokens = {t: secrets.token_hex(16) for t in TERMINALS}
        self.failed_log: Any = None

    def config(self, terminal: str) -> Any:
        """The terminal's tally.toml."""
        return self.folder / f"{terminal}.toml"

    def socket(self, terminal: str) -> str:
        """The terminal's local API socket."""
        return str(self.folder / f"{terminal}.sock")

    def database(self, terminal: str) -> Any:
        """The terminal's SQLite database."""
        return self.folder / f"{terminal}.db"

    def say(self, text: str) -> None:
        """Progress for a person watching a headless run."""
        if self.log is not None:
            print(text, file=self.log, flush=True)

    # --- processes -----------------------------------------------------------------------------

    def spawn(self, name: str, *argv: str) -> Any:
        """Start `tally ARGV...`; the returned function waits for its first stdout line (its
        address or device) and returns it, so several pieces can start at once."""
        import os
        import subprocess
        import sys
        import threading

        from agent.daemon import lifeline

        log_path = self.folder / f"{name.replace(' ', '-')}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - the child writes to it for its whole life
        proc = lifeline.popen(
            [sys.executable, "-m", "agent.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # Ctrl-C reaches the demo, which ends its children itself
        )
        self.children.append((name, proc))
        first: list[bytes] = []

        def pump() -> None:  # read the first line, then keep the pipe drained into the log
            assert proc.stdout is not None
            for i, chunk in enumerate(iter(proc.stdout.readline, b"")):
                if i == 0:
                    first.append(chunk)
                log.write(chunk)
                log.flush()

        threading.Thread(target=pump, name=f"{name}-stdout", daemon=True).start()
        import time

        deadline = time.monotonic() + START_TIMEOUT_S

        def first_line() -> str:
            while not first:
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.failed_log = log_path
                    raise DemoError(f"the {name} did not start (`tally {' '.join(argv)}`)")
                time.sleep(0.05)
            return first[0].decode("utf-8", "replace").strip()

        return first_line

    def start(self) -> None:
        """Simulators, receiver, then the three daemons on configs written for them."""
        import time

        from agent.daemon.client import DaemonUnavailable, request

        receiver_tokens = self.folder / "receiver.tokens"
        write_private(receiver_tokens, "".join(f"{t}:{k}\n" for t, k in self.tokens.items()))
        scale = self.spawn("scale simulator", "simulate", "scale", *SCALE_ARGS)
        # Port 0: each picks a free port as it binds and prints it (no port chosen here that
        # another program could take before the piece binds it).
        packer = self.spawn("packer simulator", "simulate", "packer", "--listen", "127.0.0.1:0")
        receiver = self.spawn(
            "receiver",
            *("serve", "--db", str(self.central), "--listen", "127.0.0.1:0"),
            *("--tokens", str(receiver_tokens)),
        )
        pty = scale()
        if not pty.startswith("/"):
            raise DemoError(f"the scale simulator printed {pty!r} instead of its device path")
        self.say(f"scale simulator on {pty}")
        packer_addr = packer().removeprefix("listening ")
        self.say(f"packer simulator on {packer_addr}")
        self.receiver_url = receiver().removeprefix("listening ")
        self.say(f"receiver on {self.receiver_url}")
        host, port = packer_addr.rsplit(":", 1)
        devices = {
            GATE: "",
            SCALE: SCALE_TOML.format(pty=pty),
            PACKING: PACKER_TOML.format(host=host, port=port) + packer_points_toml(),
        }
        feeds = {t: free_port() for t in TERMINALS}
        for t in TERMINALS:
            self.write_config(t, feeds, devices[t])
        procs = {t: self.spawn_daemon(t) for t in TERMINALS}
        deadline = time.monotonic() + START_TIMEOUT_S
        for t in TERMINALS:
            while True:
                try:
                    request(self.socket(t), "ping", timeout=1)
                    break
                except DaemonUnavailable:
                    if procs[t].poll() is not None or time.monotonic() > deadline:
                        self.failed_log = self.folder / f"{t}.log"
                        raise DemoError(
                            f"the daemon of {t} did not start (`tally run --config ...`)"
                        ) from None
                    time.sleep(0.1)
            self.say(f"{t} daemon answering on {self.socket(t)}")

    def write_config(self, t: str, feeds: dict[str, int], devices: str) -> None:
        """T.toml: the terminal, sync to the receiver, pulls from the receiver and the other
        terminals' feeds, its own feed, its devices."""
        token = self.folder / f"{t}.token"
        readers = self.folder / f"{t}.readers"
        write_private(token, f"{self.tokens[t]}\n")
        write_private(readers, "".join(f"{o}:{self.tokens[o]}\n" for o in TERMINALS if o != t))
        sources = [("central", self.receiver_url)]
        sources += [(o, f"http://127.0.0.1:{feeds[o]}") for o in TERMINALS if o != t]
        text = TERMINAL_TOML.format(
            terminal=t,
            folder=self.folder,
            language=self.language,
            url=self.receiver_url,
            token=token,
            feed=feeds[t],
            readers=readers,
        )
        text += "".join(PEER_TOML.format(name=n, url=u, token=token) for n, u in sources)
        self.config(t).write_text(text + devices, encoding="utf-8")

    def spawn_daemon(self, terminal: str) -> Any:
        """`tally run`: it prints nothing on stdout, so readiness is its answer to ping."""
        import os
        import sys

        from agent.daemon import lifeline

        log = open(self.folder / f"{terminal}.log", "ab")  # noqa: SIM115
        proc = lifeline.popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config(terminal))],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        self.children.append((f"{terminal} daemon", proc))
        return proc

    def stop(self) -> None:
        """End every child, newest first (the daemons before the devices they read)."""
        import subprocess

        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.terminate()
        for _name, proc in reversed(self.children):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.children.clear()

    def print_log_tail(self, out: Any) -> None:
        """The last lines of the log of the piece that failed."""
        path = self.failed_log or self.folder / f"{GATE}.log"
        if path.exists():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            print(f"--- last lines of {path.name}:", *lines, sep="\n", file=out)

    # --- driving -------------------------------------------------------------------------------

    def drive_for(self, seconds: float) -> dict[str, Any]:
        """Headless: drive trucks for `seconds`, wait for sync to catch up, and report."""
        import asyncio

        from agent.daemon.runtime import wind_down

        async def run() -> None:
            driver = Driver({t: self.socket(t) for t in TERMINALS}, self.say)
            try:
                # not wait_for: on 3.11 it can swallow a cancellation that races a result
                async with asyncio.timeout(seconds):
                    await driver.run()
            except TimeoutError:
                pass
            finally:
                await driver.close()

        # Not asyncio.run: its clean-up waits without limit for a task that does not end, and
        # an interrupt must end the demo within seconds.
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(run())
        finally:
            wind_down(loop)
        return self.summary(seconds)

    def drive_under_ui(self, terminal: str) -> dict[str, Any]:
        """Interactive: trucks are driven in a background thread while the operator watches
        `terminal`'s UI."""
        import asyncio
        import threading
        from zoneinfo import ZoneInfo

        from tui.app import TallyApp

        stop = threading.Event()
        errors: list[BaseException] = []

        def drive() -> None:
            async def run() -> None:
                driver = Driver({t: self.socket(t) for t in TERMINALS}, lambda _text: None)
                task = asyncio.ensure_future(driver.run())
                while not stop.is_set() and not task.done():
                    await asyncio.sleep(0.2)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except DemoError as exc:
                    errors.append(exc)
                await driver.close()

            asyncio.run(run())

        thread = threading.Thread(target=drive, name="demo-driver", daemon=True)
        thread.start()
        tz = ZoneInfo("Asia/Shanghai")
        try:
            TallyApp(self.socket(terminal), self.language, tz=tz, terminal=terminal).run()
        finally:
            stop.set()  # also when interrupted: the driver winds down while the plant stops
        thread.join(10)
        if errors:
            raise DemoError(str(errors[0]))
        return {}

    def counts(self) -> tuple[dict[str, int], int]:
        """Each terminal's own events and the receiver's events of the plant's terminals."""
        from agent.daemon.store import Store
        from sync.receiver.engine import read_stats

        events = {}
        for t in TERMINALS:
            store = Store(str(self.database(t)))
            try:
                events[t] = store.count()
            finally:
                store.close()
        streams = read_stats(str(self.central))
        synced = sum(int(s["events"]) for s in streams if s.get("terminal") in TERMINALS)
        return events, synced

    def summary(self, seconds: float) -> dict[str, Any]:
        """Counts from the daemons' databases, once the receiver holds every event (or time
        out), and whether every terminal's visits and KPIs equal the receiver's."""
        import time

        from agent.daemon.store import Store

        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while True:
            events, synced = self.counts()
            if synced >= sum(events.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        agree = self.replicas_agree(deadline=time.monotonic() + SYNC_TIMEOUT_S)

        def count(t: str, kind: str) -> int:
            store = Store(str(self.database(t)))
            try:
                return store.count(kind)
            finally:
                store.close()

        return {
            "seconds": seconds,
            "weighings": count(SCALE, "weighing.captured"),
            "visits_completed": count(GATE, "visit.exited"),
            "packer_tallies": count(PACKING, "packer.tally"),
            "events": sum(events.values()),
            "synced": synced,
            "terminals": list(TERMINALS),
            "replicas_agree": agree,
        }

    def replicas_agree(self, deadline: float) -> bool:
        """Whether every terminal's visits and today's KPI report equal the receiver's; asked
        again until `deadline` while events are still on their way."""
        import time

        while True:
            central = self.central_view()
            if all(self.terminal_view(t) == central for t in TERMINALS):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)

    def central_view(self) -> tuple[list[dict[str, Any]], Any]:
        """The receiver's visits (folded from every event it holds) and its KPI report of
        today (`GET /api/v1/kpi`)."""
        import json
        import urllib.request
        from zoneinfo import ZoneInfo

        from agent.config import KpiConfig
        from agent.domain.timeline import fold
        from agent.domain.visit_projection import Projection, relevant
        from sync.receiver.engine import read_events

        events = (ev for ev in read_events(str(self.central)) if relevant(ev.kind))
        shanghai = ZoneInfo("Asia/Shanghai")  # the demo plant's time zone
        visits = fold(events, lambda: Projection(KpiConfig(), tz=shanghai))
        ask = urllib.request.Request(
            f"{self.receiver_url}/api/v1/kpi?day={self.today()}",
            headers={"Authorization": f"Bearer {self.tokens[GATE]}"},
        )
        with urllib.request.urlopen(ask, timeout=30) as answer:
            kpi = json.loads(answer.read())
        return visit_list(visits), kpi

    def terminal_view(self, terminal: str) -> tuple[list[dict[str, Any]], Any]:
        """The terminal's visits and KPI report of today, folded from its own database (its
        events and the other terminals' it holds), as `tally rebuild` and `tally kpi` do."""
        import json
        from datetime import UTC, datetime
        from zoneinfo import ZoneInfo

        from agent import config as cfg
        from agent.daemon.services.visits import load_events, rebuild_from
        from agent.daemon.store import Store
        from agent.domain import kpis

        config = cfg.load(str(self.config(terminal)), check_paths=False)
        tz = ZoneInfo(config.terminal.timezone)
        store = Store(str(self.database(terminal)))
        try:
            visits = rebuild_from(store, config)
            report = kpis.compute(
                load_events(store, kpi=True), self.today(), tz, config.kpi, as_of=datetime.now(UTC)
            )
        finally:
            store.close()
        return visit_list(visits), json.loads(json.dumps(report))

    @staticmethod
    def today() -> Any:
        """The plant-local day (the demo's plant is in Asia/Shanghai)."""
        from datetime import UTC, datetime
        from zoneinfo import ZoneInfo

        return datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()


def visit_list(p: Any) -> list[dict[str, Any]]:
    """Every visit of a projection, open or closed, as published, in arrival order."""
    import json

    rows = [v.to_dict(None) for v in p.held()]
    return sorted((json.loads(json.dumps(r)) for r in rows), key=lambda r: str(r["visit"]))


TERMINAL_TOML = """[terminal]
id = "{terminal}"
timezone = "Asia/Shanghai"
database = "{folder}/{terminal}.db"
socket = "{folder}/{terminal}.sock"
language = "{language}"

[sync]
url = "{url}"
token_file = "{token}"
interval_s = 0.5

[feed]
listen = "127.0.0.1:{feed}"
tokens_file = "{readers}"

"""

PEER_TOML = """[[peer]]
name = "{name}"
url = "{url}"
token_file = "{token}"
backoff_max_s = 1.0

"""

SCALE_TOML = """[[scale]]
name = "scale1"
port = "{pty}"
protocol = "xk3190"
min_weight_kg = 500
hold_s = 1.0
min_samples = 3
clear_s = 0.5

"""

PACKER_TOML = """[[packer]]
name = "line1"
host = "{host}"
port = {port}
device_id = 1
poll_s = 0.5
bag_kg = 50
tally_s = 5
"""


class Driver:
    """The operators of the simulated plant: one truck after another through every stage, each
    stage on its own terminal, after the truck's previous stage has reached that terminal."""

    def __init__(self, sockets: dict[str, str], say: Any) -> None:
        from agent.daemon.client import AsyncClient

        self.clients = {t: AsyncClient(s) for t, s in sockets.items()}
        self.say = say
        self.states: dict[str, dict[str, Any]] = {t: {} for t in sockets}
        self._pumps: list[Any] = []

    async def run(self) -> None:
        """Connect, follow every terminal's live state, and drive trucks until cancelled."""
        import asyncio

        for t, client in self.clients.items():
            await client.connect()
            self._pumps.append(asyncio.ensure_future(self._follow(t)))
        n = 0
        while True:
            n += 1
            await self.truck(n)

    async def close(self) -> None:
        """Stop following and close the connections."""
        for pump in self._pumps:
            pump.cancel()
        for client in self.clients.values():
            await client.close()

    async def _follow(self, terminal: str) -> None:
        async for topic, state in self.clients[terminal].states():
            self.states[terminal][topic] = state

    async def op(self, terminal: str, op: str, **args: Any) -> Any:
        """One operator command at `terminal`; a refusal ends the demo with the daemon's
        sentence."""
        from agent.daemon.client import RequestRefused

        try:
            return await self.clients[terminal].request(op, **args)
        except RequestRefused as exc:
            raise DemoError(f"{terminal} refused {op} {args}: {exc}") from None

    async def wait_for(self, what: str, predicate: Any, timeout: float) -> Any:
        """Poll the live state until `predicate()` is truthy."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() > deadline:
                raise DemoError(f"{what} did not happen within {timeout:g} s; see the logs")
            await asyncio.sleep(0.1)

    def visit(self, terminal: str, visit_id: str) -> dict[str, Any]:
        """The visit as `terminal` last published it (empty when not open there)."""
        for v in (self.states[terminal].get("visits") or {}).get("open", []):
            if v.get("visit") == visit_id:
                return dict(v)
        return {}

    async def reaches(self, terminal: str, visit_id: str, what: str, key: str) -> None:
        """Wait until the visit's `key` (a stage's field; `stage:NAME`, the stage itself) is
        set on `terminal`: the operator there sees the truck's previous stage."""

        def seen() -> bool:
            v = self.visit(terminal, visit_id)
            if key.startswith("stage:"):
                return v.get("stage") == key.removeprefix("stage:")
            return bool(v.get(key))

        await self.wait_for(f"{what} reaching {terminal}", seen, REPLICA_TIMEOUT_S)

    def last_capture(self) -> dict[str, Any]:
        """The scale's last captured weighing ({} before the first)."""
        scale = self.states[SCALE].get("scale.scale1") or {}
        return dict(scale.get("last_weighing") or {})

    async def weigh(self, visit_id: str, role: str) -> int:
        """Queue the truck just before the simulator's matching truck; wait for the match."""
        import asyncio

        want_light = role == "tare"
        await self.wait_for(
            "a scale state from wb1", lambda: "scale.scale1" in self.states[SCALE], 20
        )

        def previous_was_other() -> bool:
            last = self.last_capture()
            return bool(last) and (int(last.get("weight_kg") or 0) < LIGHT_BELOW_KG) != want_light

        await self.wait_for("a weighing capture on scale1", previous_was_other, MATCH_TIMEOUT_S)
        await self.op(SCALE, "visit.queue", visit=visit_id, scale="scale1")
        key = f"{role}_kg"
        kg = await self.wait_for(
            f"the automatic {role} match",
            lambda: self.visit(SCALE, visit_id).get(key),
            MATCH_TIMEOUT_S,
        )
        await asyncio.sleep(STAGE_PAUSE_S)
        return int(kg)

    async def truck(self, n: int) -> None:
        """One visit: arrive and gate in at gate1, tare at wb1, load at pk1, gross (and seal)
        at wb1, exit at gate1."""
        import asyncio

        load = "bulk" if n % 2 else "bagged"
        plate = f"苏A{10000 + n}"
        v = await self.op(
            GATE,
            "visit.arrive",
            plate=plate,
            order=f"SO{n:04d}",
            product="P.O 42.5",
            load=load,
            planned_kg=PLANNED_KG,
        )
        vid = v["visit"]
        self.say(f"truck {n} {plate} ({load}) arrived at {GATE}")
        await asyncio.sleep(STAGE_PAUSE_S)
        await self.op(GATE, "visit.gate_in", visit=vid)
        await self.reaches(SCALE, vid, "the gate-in", "gate_in_at")
        tare = await self.weigh(vid, "tare")
        self.say(f"truck {n} tare {tare} kg at {SCALE}")
        await self.reaches(PACKING, vid, "the tare", "tare_kg")
        await self.op(PACKING, "visit.loading_start", visit=vid, point="line1")
        await asyncio.sleep(LOADING_S)
        if load == "bagged":
            await self.op(
                PACKING,
                "visit.loading_finish",
                visit=vid,
                point="line1",
                bags=PLANNED_KG // BAG_KG,
                bag_kg=BAG_KG,
            )
        else:
            await self.op(PACKING, "visit.loading_finish", visit=vid, point="line1")
        self.say(f"truck {n} loaded at {PACKING}")
        await self.reaches(SCALE, vid, "the end of loading", "stage:loaded")
        gross = await self.weigh(vid, "gross")
        self.say(f"truck {n} gross {gross} kg at {SCALE}")
        if load == "bulk":
            seals = [f"S{n:04d}A", f"S{n:04d}B"]
            await self.op(SCALE, "visit.seal", visit=vid, seals=seals)
            await self.reaches(GATE, vid, "the seals", "seals")
            await asyncio.sleep(STAGE_PAUSE_S)
            # the gate confirms the seals it sees before a sealed bulk truck leaves
            await self.op(GATE, "visit.exit", visit=vid, seals_seen=seals)
        else:
            await self.reaches(GATE, vid, "the gross", "gross_kg")
            await self.op(GATE, "visit.exit", visit=vid)
        self.say(f"truck {n} exited at {GATE}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_private(path: Any, text: str) -> None:
    """Write a file readable by this user alone (tokens)."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)

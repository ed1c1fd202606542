"""`tally demo`: a whole simulated plant on loopback, driven truck by truck, with the operator UI.

Reading order: `main` → `Plant.start` (the five processes) → `Driver.truck` (one visit through
every stage) → `summary` (what was weighed, counted and synced). Everything runs in a temporary
folder on 127.0.0.1. Nothing is left behind: on the way out (a clean exit, an error, Ctrl-C,
SIGTERM, or SIGHUP when the terminal closes) the demo ends every child and removes the folder
itself; when it is killed outright, every child holds its lifeline (agent.daemon.lifeline), sees
it close and stops by itself, and the reaper started first removes the folder after them.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.errors import Unavailable

HELP = "a simulated plant on loopback (scale, packer, receiver, daemon) and the operator UI"

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
START_TIMEOUT_S = 30.0
MATCH_TIMEOUT_S = 40.0
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


def main(args: argparse.Namespace) -> int:
    """Start the plant, drive it (under the UI or headless), report, and clean up."""
    import json
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

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)
    folder = Path(tempfile.mkdtemp(prefix="tally-demo-"))
    lifeline.start_reaper(folder, keep=args.keep)  # for when this process is killed outright
    plant = Plant(folder, args.language, log=None if args.json else sys.stderr)
    try:
        plant.start()
        report = plant.drive_for(args.seconds) if args.headless else plant.drive_under_ui()
    except DemoError as exc:
        print(f"tally demo: {exc}", file=sys.stderr)
        plant.print_log_tail(sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        plant.stop()
        if args.keep:
            print(f"tally demo: kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    elif args.headless:
        for key, value in report.items():
            print(f"{key:<18} {value}")
    return 0


class DemoError(Unavailable):
    """A piece of the plant did not start or did not do its part; the message says which."""


class Plant:
    """The processes of the simulated plant and the folder they live in."""

    def __init__(self, folder: Any, language: str, log: Any) -> None:
        self.folder = folder
        self.language = language
        self.log = log
        self.children: list[tuple[str, Any]] = []
        self.config = folder / "tally.toml"
        self.socket = str(folder / "tally.sock")
        self.database = folder / "tally.db"
        self.central = folder / "central.db"
        self.failed_log: Any = None

    def say(self, text: str) -> None:
        """Progress for a person watching a headless run."""
        if self.log is not None:
            print(text, file=self.log, flush=True)

    # --- processes -----------------------------------------------------------------------------

    def spawn(self, name: str, *argv: str) -> str:
        """Start `tally ARGV...` and return its first stdout line (its address or device)."""
        import os
        import subprocess
        import sys
        import threading

        from agent.daemon import lifeline

        log_path = self.folder / f"{name}.log"
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
        while not first:
            if proc.poll() is not None or time.monotonic() > deadline:
                self.failed_log = log_path
                raise DemoError(f"the {name} did not start (`tally {' '.join(argv)}`)")
            time.sleep(0.05)
        return first[0].decode("utf-8", "replace").strip()

    def start(self) -> None:
        """Simulators, receiver, then the daemon on a config written for them."""
        import secrets
        import time

        from agent.daemon.client import DaemonUnavailable, request

        pty = self.spawn("scale simulator", "simulate", "scale", *SCALE_ARGS)
        if not pty.startswith("/"):
            raise DemoError(f"the scale simulator printed {pty!r} instead of its device path")
        self.say(f"scale simulator on {pty}")
        packer_addr = self.spawn(
            "packer simulator", "simulate", "packer", "--listen", f"127.0.0.1:{free_port()}"
        ).removeprefix("listening ")
        self.say(f"packer simulator on {packer_addr}")
        token = secrets.token_hex(16)
        tokens = self.folder / "tokens"
        write_private(tokens, f"demo:{token}\n")
        write_private(self.folder / "token", f"{token}\n")
        url = self.spawn(
            "receiver",
            *("serve", "--db", str(self.central), "--listen", f"127.0.0.1:{free_port()}"),
            *("--tokens", str(tokens)),
        ).removeprefix("listening ")
        self.say(f"receiver on {url}")
        host, port = packer_addr.rsplit(":", 1)
        self.config.write_text(
            CONFIG.format(
                folder=self.folder,
                language=self.language,
                pty=pty,
                packer_host=host,
                packer_port=port,
                url=url,
            )
            + packer_points_toml(),
            encoding="utf-8",
        )
        self.spawn_daemon()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                request(self.socket, "ping", timeout=1)
                break
            except DaemonUnavailable:
                if self.children[-1][1].poll() is not None or time.monotonic() > deadline:
                    self.failed_log = self.folder / "daemon.log"
                    raise DemoError("the daemon did not start (`tally run --config ...`)") from None
                time.sleep(0.1)
        self.say(f"daemon answering on {self.socket}")

    def spawn_daemon(self) -> None:
        """`tally run`: it prints nothing on stdout, so readiness is its answer to ping."""
        import os
        import sys

        from agent.daemon import lifeline

        log = open(self.folder / "daemon.log", "ab")  # noqa: SIM115
        proc = lifeline.popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config)],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        self.children.append(("daemon", proc))

    def stop(self) -> None:
        """End every child, newest first (the daemon before the devices it reads)."""
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
        path = self.failed_log or self.folder / "daemon.log"
        if path.exists():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            print(f"--- last lines of {path.name}:", *lines, sep="\n", file=out)

    # --- driving -------------------------------------------------------------------------------

    def drive_for(self, seconds: float) -> dict[str, Any]:
        """Headless: drive trucks for `seconds`, wait for sync to catch up, and report."""
        import asyncio

        async def run() -> None:
            driver = Driver(self.socket, self.say)
            try:
                await asyncio.wait_for(driver.run(), seconds)
            except TimeoutError:
                pass
            finally:
                await driver.close()

        asyncio.run(run())
        return self.summary(seconds)

    def drive_under_ui(self) -> dict[str, Any]:
        """Interactive: trucks are driven in a background thread while the operator watches."""
        import asyncio
        import threading
        from zoneinfo import ZoneInfo

        from tui.app import TallyApp

        stop = threading.Event()
        errors: list[BaseException] = []

        def drive() -> None:
            async def run() -> None:
                driver = Driver(self.socket, lambda _text: None)
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
        TallyApp(self.socket, self.language, tz=ZoneInfo("Asia/Shanghai"), terminal="demo").run()
        stop.set()
        thread.join(10)
        if errors:
            raise DemoError(str(errors[0]))
        return {}

    def summary(self, seconds: float) -> dict[str, Any]:
        """Counts from the daemon's database, once the receiver holds every event (or time out)."""
        import json
        import sys
        import time

        from agent.daemon import lifeline
        from agent.daemon.store import Store

        store = Store(str(self.database))
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        try:
            while True:
                events = store.count()
                out = lifeline.run(
                    [
                        sys.executable,
                        "-m",
                        "agent.cli",
                        "serve",
                        "stats",
                        "--db",
                        str(self.central),
                        "--json",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                streams = json.loads(out.stdout or "{}").get("terminals", [])
                synced = sum(int(s["events"]) for s in streams if s.get("terminal") == "demo")
                if synced >= events or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            return {
                "seconds": seconds,
                "weighings": store.count("weighing.captured"),
                "visits_completed": store.count("visit.exited"),
                "packer_tallies": store.count("packer.tally"),
                "events": events,
                "synced": synced,
            }
        finally:
            store.close()


CONFIG = """[terminal]
id = "demo"
timezone = "Asia/Shanghai"
database = "{folder}/tally.db"
socket = "{folder}/tally.sock"
language = "{language}"

[[scale]]
name = "scale1"
port = "{pty}"
protocol = "xk3190"
min_weight_kg = 500
hold_s = 1.0
min_samples = 3
clear_s = 0.5

[sync]
url = "{url}"
token_file = "{folder}/token"
interval_s = 0.5

[[packer]]
name = "line1"
host = "{packer_host}"
port = {packer_port}
device_id = 1
poll_s = 0.5
bag_kg = 50
tally_s = 5
"""


class Driver:
    """The operators of the simulated plant: one truck after another through every stage."""

    def __init__(self, socket: str, say: Any) -> None:
        from agent.daemon.client import AsyncClient

        self.client = AsyncClient(socket)
        self.say = say
        self.states: dict[str, Any] = {}
        self._pump: Any = None

    async def run(self) -> None:
        """Connect, follow the live state, and drive trucks until cancelled."""
        import asyncio

        await self.client.connect()
        self._pump = asyncio.ensure_future(self._follow())
        n = 0
        while True:
            n += 1
            await self.truck(n)

    async def close(self) -> None:
        """Stop following and close the connection."""
        if self._pump is not None:
            self._pump.cancel()
        await self.client.close()

    async def _follow(self) -> None:
        async for topic, state in self.client.states():
            self.states[topic] = state

    async def op(self, op: str, **args: Any) -> Any:
        """One operator command; a refusal ends the demo with the daemon's sentence."""
        from agent.daemon.client import RequestRefused

        try:
            return await self.client.request(op, **args)
        except RequestRefused as exc:
            raise DemoError(f"the daemon refused {op} {args}: {exc}") from None

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
                raise DemoError(f"{what} did not happen within {timeout:g} s; see daemon.log")
            await asyncio.sleep(0.1)

    def visit(self, visit_id: str) -> dict[str, Any]:
        """The visit as last published (empty when not open)."""
        for v in (self.states.get("visits") or {}).get("open", []):
            if v.get("visit") == visit_id:
                return dict(v)
        return {}

    def last_capture(self) -> dict[str, Any]:
        """The scale's last captured weighing ({} before the first)."""
        scale = self.states.get("scale.scale1") or {}
        return dict(scale.get("last_weighing") or {})

    async def weigh(self, visit_id: str, role: str) -> int:
        """Queue the truck just before the simulator's matching truck; wait for the match."""
        import asyncio

        want_light = role == "tare"
        await self.wait_for(
            "a scale state from the daemon", lambda: "scale.scale1" in self.states, 20
        )

        def previous_was_other() -> bool:
            last = self.last_capture()
            return bool(last) and (int(last.get("weight_kg") or 0) < LIGHT_BELOW_KG) != want_light

        await self.wait_for("a weighing capture on scale1", previous_was_other, MATCH_TIMEOUT_S)
        await self.op("visit.queue", visit=visit_id, scale="scale1")
        key = f"{role}_kg"
        kg = await self.wait_for(
            f"the automatic {role} match", lambda: self.visit(visit_id).get(key), MATCH_TIMEOUT_S
        )
        await asyncio.sleep(STAGE_PAUSE_S)
        return int(kg)

    async def truck(self, n: int) -> None:
        """One visit through every stage: arrive, gate, tare, load, gross, (seal), exit."""
        import asyncio

        load = "bulk" if n % 2 else "bagged"
        plate = f"苏A{10000 + n}"
        v = await self.op(
            "visit.arrive",
            plate=plate,
            order=f"SO{n:04d}",
            product="P.O 42.5",
            load=load,
            planned_kg=PLANNED_KG,
        )
        vid = v["visit"]
        self.say(f"truck {n} {plate} ({load}) arrived")
        await asyncio.sleep(STAGE_PAUSE_S)
        await self.op("visit.gate_in", visit=vid)
        tare = await self.weigh(vid, "tare")
        self.say(f"truck {n} tare {tare} kg")
        await self.op("visit.loading_start", visit=vid, point="line1")
        await asyncio.sleep(LOADING_S)
        if load == "bagged":
            await self.op(
                "visit.loading_finish",
                visit=vid,
                point="line1",
                bags=PLANNED_KG // BAG_KG,
                bag_kg=BAG_KG,
            )
        else:
            await self.op("visit.loading_finish", visit=vid, point="line1")
        gross = await self.weigh(vid, "gross")
        self.say(f"truck {n} gross {gross} kg")
        if load == "bulk":
            seals = [f"S{n:04d}A", f"S{n:04d}B"]
            await self.op("visit.seal", visit=vid, seals=seals)
            await asyncio.sleep(STAGE_PAUSE_S)
            # the gate confirms the seals it sees before a sealed bulk truck leaves
            await self.op("visit.exit", visit=vid, seals_seen=seals)
        else:
            await self.op("visit.exit", visit=vid)
        self.say(f"truck {n} exited")


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

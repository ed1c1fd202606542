"""One plant, many terminals: gate1, wb1 and pk1 as real daemons with the receiver, the scale
and packer simulators; every stage shows on every terminal, also after a partition."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.domain.events import Event
from agent.domain.timeline import fold
from agent.domain.visit_projection import Projection
from tests.daemon import Daemon, events, scale_simulator, tally, wait_for, write_config
from tests.e2e.test_visits_ctl import ctl, local_day, refused
from tests.e2e.test_visits_scale import GROSS, TARE, queue_before
from tests.sync.helpers import Receiver, write_private
from tests.tui.tmux import Tmux

ROOT = Path(__file__).resolve().parents[2]
TERMINALS = ("gate1", "wb1", "pk1")
TOKENS = {t: f"token-of-{t}-0123456789" for t in TERMINALS}
PLATE = "苏A12345"
TALLY = [sys.executable, "-m", "agent.cli"]
DEADLINE_S = 30  # generous: the 2 s a stage takes to reach every terminal is measured in bench/


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def packer_block(port: int) -> str:
    """The sample config's first [[packer]] with its point map, on the simulator's port."""
    sample = tomllib.loads((ROOT / "systemd" / "tally.toml").read_text(encoding="utf-8"))
    packer = {**sample["packer"][0], "port": port, "poll_s": 0.2}
    lines = ["[[packer]]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in packer.items() if k != "point"]
    for point in packer.get("point", []):
        lines.append("[[packer.point]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in point.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def packer_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The packer simulator and its port (a test may end it early: the packer goes offline)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "simulate", "packer", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening "), line
        yield proc, int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def packer_sim(packer_process: tuple[subprocess.Popen[str], int]) -> int:
    return packer_process[1]


@pytest.fixture
def scale_sim() -> Iterator[str]:
    with scale_simulator(
        "--protocol",
        "xk3190",
        "--seed",
        "1",
        "--rate",
        "20",
        "--weights",
        f"{TARE},{GROSS}",
        "--empty-s",
        "1",
        "--ramp-s",
        "0.3",
        "--settle-s",
        "5",
        "--noise-kg",
        "2",
    ) as port:
        yield port


class Plant:
    """Three terminals and the receiver; each terminal pulls from the others and the receiver."""

    def __init__(self, tmp: Path, scale_port: str, packer_port: int) -> None:
        self.receiver = Receiver(
            tmp / "receiver", "".join(f"{t}:{tok}\n" for t, tok in TOKENS.items())
        )
        self.feeds = {t: free_port() for t in TERMINALS}
        self.configs: dict[str, Path] = {}
        self.tmp = tmp
        self.devices = {
            "wb1": f'[[scale]]\nname = "scale1"\nport = "{scale_port}"\nprotocol = "xk3190"\n'
            "hold_s = 1.0\nmin_samples = 3\nclear_s = 0.3\n",
            "pk1": packer_block(packer_port),
            "gate1": "[kpi]\nqueue_alert = 0\n",  # one truck waiting raises queue_long
        }
        self.daemons: dict[str, Daemon] = {}

    def start_receiver(self) -> None:
        self.receiver.start()

    def write(self) -> None:
        for t in TERMINALS:
            folder = self.tmp / t
            folder.mkdir(parents=True, exist_ok=True)
            token = write_private(folder / "token", TOKENS[t])
            readers = write_private(
                folder / "feed-tokens", "".join(f"{o}:{TOKENS[o]}\n" for o in TERMINALS if o != t)
            )
            peers = "".join(
                f'[[peer]]\nname = "{o}"\nurl = "http://127.0.0.1:{self.feeds[o]}"\n'
                f'token_file = "{token}"\nwait_s = 5.0\nbackoff_max_s = 1.0\n\n'
                for o in TERMINALS
                if o != t
            )
            extra = (
                f'[sync]\nurl = "{self.receiver.url}"\ntoken_file = "{token}"\n'
                "interval_s = 0.2\nbackoff_max_s = 1.0\n\n"
                f'[[peer]]\nname = "central"\nurl = "{self.receiver.url}"\n'
                f'token_file = "{token}"\nwait_s = 5.0\nbackoff_max_s = 1.0\n\n{peers}'
                f'[feed]\nlisten = "127.0.0.1:{self.feeds[t]}"\ntokens_file = "{readers}"\n\n'
                f"{self.devices[t]}"
            )
            self.configs[t] = write_config(folder, extra, terminal=t)

    def start(self, *names: str) -> None:
        for t in names or TERMINALS:
            self.daemons[t] = Daemon(self.configs[t]).start()

    def stop(self, *names: str) -> None:
        for t in names or TERMINALS:
            d = self.daemons.pop(t, None)
            if d is not None:
                d.stop(timeout=60)  # generous: the machine may be busy

    def visit(self, t: str, vid: str) -> dict[str, Any] | None:
        r = tally("ctl", "--config", str(self.configs[t]), "--json", "visits", "--visit", vid)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def everywhere(self, vid: str, check: Any) -> None:
        """Wait until every running terminal's `tally ctl visits --json` satisfies `check`."""
        for t in self.daemons:
            wait_for(lambda t=t: (v := self.visit(t, vid)) is not None and check(v), DEADLINE_S)


def kpi(config: Path, day: str) -> Any:
    """`tally kpi --config F --day D --json`: the report from the terminal's own database."""
    r = tally("kpi", "--config", str(config), "--day", day, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def central_kpi(plant: Plant, day: str) -> Any:
    answer = httpx.get(
        f"{plant.receiver.url}/api/v1/kpi",
        params={"day": day},
        headers={"Authorization": f"Bearer {TOKENS['gate1']}"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def plant(tmp_path: Path, scale_sim: str, packer_sim: int) -> Iterator[Plant]:
    p = Plant(tmp_path, scale_sim, packer_sim)
    p.start_receiver()
    p.write()
    p.start()
    try:
        yield p
    finally:
        p.stop()
        p.receiver.stop()


def test_a_truck_through_three_terminals_shows_on_each(
    plant: Plant, packer_process: tuple[subprocess.Popen[str], int]
) -> None:
    gate, wb, pk = (plant.configs[t] for t in TERMINALS)
    vid = ctl(
        gate,
        "arrive",
        "--plate",
        PLATE,
        "--order",
        "SO1",
        "--product",
        "P.O 42.5",
        "--load",
        "bagged",
        "--planned-kg",
        "30000",
    )["visit"]
    plant.everywhere(vid, lambda v: v["stage"] == "arrived")

    # The gate's queue_long reaches the packing line (plant-wide attention).
    def gate_alerts_at_pk1() -> set[tuple[str, str]]:
        shown = plant.daemons["pk1"].request("plant.status")["alerts"]
        return {(a["terminal"], a["alert"]) for a in shown}

    wait_for(lambda: ("gate1", "queue_long") in gate_alerts_at_pk1(), DEADLINE_S)
    ctl(gate, "gate-in", "--plate", PLATE)
    wait_for(lambda: ("gate1", "queue_long") not in gate_alerts_at_pk1(), DEADLINE_S)
    plant.everywhere(vid, lambda v: v["stage"] == "gated_in")

    queue_before(plant.daemons["wb1"], wb, PLATE, TARE)
    plant.everywhere(vid, lambda v: v["stage"] == "tared")

    started = ctl(pk, "loading-start", "--plate", PLATE, "--point", "line1")
    assert started["counter"]["packer"] == "line1"
    plant.everywhere(vid, lambda v: v["stage"] == "loading")
    ctl(pk, "loading-finish", "--plate", PLATE, "--bags", "600", "--bag-kg", "50")
    plant.everywhere(vid, lambda v: v["stage"] == "loaded")

    queue_before(plant.daemons["wb1"], wb, PLATE, GROSS)
    plant.everywhere(vid, lambda v: v["stage"] == "weighed")
    ctl(gate, "exit", "--plate", PLATE)
    plant.everywhere(vid, lambda v: v["stage"] == "exited")
    exited = plant.visit("gate1", vid)
    assert exited is not None
    day = local_day(exited["stage_since"])

    # Every terminal's KPI report for the day equals the receiver's (same events, same fold).
    def agree() -> bool:
        reports = [kpi(plant.configs[t], day) for t in TERMINALS]
        central = central_kpi(plant, day)
        return all(r == central for r in reports) and central["daily_completion"]["completed_t"] > 0

    wait_for(agree, DEADLINE_S)

    status = plant.daemons["gate1"].request("status")
    assert sorted(p["name"] for p in status["replicas"]) == ["central", "pk1", "wb1"]
    assert all(p["last_contact"] for p in status["replicas"])

    # pk1's packer stops (its simulator goes away); the operator gives the reason and the
    # repair minutes there, and the drivers' board at the gate shows them (plant-wide attention).
    packer_process[0].terminate()
    reason = ["packer-reason", "--packer", "line1", "--reason", "belt torn", "--repair-min", "25"]
    wait_for(lambda: tally("ctl", "--config", str(pk), *reason).returncode == 0, DEADLINE_S)
    board = Tmux([*TALLY, "board", "--config", str(gate), "--language", "en"])
    try:
        wait_for(lambda: "■ pk1 line1  belt torn  25 min" in board.screen(), DEADLINE_S)
        assert "○ pk1 line1 offline" in board.screen()  # the plant line names the device too
    finally:
        board.close()


def test_a_feed_refuses_a_pull_without_a_valid_token(plant: Plant) -> None:
    url = f"http://127.0.0.1:{plant.feeds['gate1']}/v1/pull"
    body = {"cursors": [], "wait_s": 0}
    assert httpx.post(url, json=body).status_code == 401
    bad = {"Authorization": "Bearer not-a-reader-token"}
    assert httpx.post(url, json=body, headers=bad).status_code == 401
    good = {"Authorization": f"Bearer {TOKENS['wb1']}"}
    answer = httpx.post(url, json=body, headers=good)
    assert answer.status_code == 200
    assert "gate1" in {s["terminal"] for s in answer.json()["streams"]}
    central = httpx.post(f"{plant.receiver.url}/v1/pull", json=body)
    assert central.status_code == 401


def active_alerts(d: Daemon) -> set[str]:
    return {a["alert"] for a in d.request("status")["alerts"]}


def test_a_silent_source_raises_peer_unreachable_and_contact_clears_it(tmp_path: Path) -> None:
    port = free_port()
    token = write_private(tmp_path / "token", TOKENS["gate1"])
    config = write_config(
        tmp_path / "gate1",
        f'[[peer]]\nname = "central"\nurl = "http://127.0.0.1:{port}"\n'
        f'token_file = "{token}"\nwait_s = 1.0\nbackoff_max_s = 0.5\nunreachable_alert_s = 1\n',
        terminal="gate1",
    )
    receiver = Receiver(tmp_path / "receiver", f"gate1:{TOKENS['gate1']}\n")
    receiver.port = port
    with Daemon(config) as d:
        wait_for(lambda: "peer_unreachable.central" in active_alerts(d), DEADLINE_S)
        peer = d.request("replicas.status")["peers"][0]
        assert (peer["name"], peer["state"], peer["last_contact"]) == (
            "central",
            "unreachable",
            None,
        )
        with receiver:
            wait_for(lambda: "peer_unreachable.central" not in active_alerts(d), DEADLINE_S)
            peer = d.request("replicas.status")["peers"][0]
            assert (peer["state"], peer["events_behind"]) == ("up to date", 0)
            text = tally("status", "--config", str(config)).stdout
            assert "  plant     central: up to date, lag 0 s, 0 events behind" in text


def open_visits(plant: Plant, t: str) -> list[tuple[str, str]]:
    snap = plant.daemons[t].request("visits.list", live=False)
    return sorted((v["visit"], v["stage"]) for v in snap["open"])


def test_a_partition_heals_into_one_plant_timeline(plant: Plant) -> None:
    """The receiver and the peers go away in the middle of the visits; each terminal keeps
    recording; afterwards every terminal and the receiver hold the same events, visits and
    KPI report."""
    gate, pk = plant.configs["gate1"], plant.configs["pk1"]
    first = ctl(
        gate,
        "arrive",
        "--plate",
        "苏A10001",
        "--order",
        "SO1",
        "--product",
        "P.O 42.5",
        "--load",
        "bagged",
        "--planned-kg",
        "30000",
    )["visit"]
    ctl(gate, "gate-in", "--plate", "苏A10001")
    plant.everywhere(first, lambda v: v["stage"] == "gated_in")

    # Partition: gate1 alone (receiver, wb1 and pk1 stopped) records a new truck.
    plant.receiver.stop()
    plant.stop("wb1", "pk1")
    second = ctl(
        gate,
        "arrive",
        "--plate",
        "苏A10002",
        "--order",
        "SO2",
        "--product",
        "P.O 42.5",
        "--load",
        "bagged",
        "--planned-kg",
        "20000",
    )["visit"]
    ctl(gate, "gate-in", "--plate", "苏A10002")
    # ... then pk1 alone (gate1 stopped too) loads the truck it already knew, and the truck
    # gate1 registered alone, by plate and order: a warning naming the lag, not a refusal.
    plant.stop("gate1")
    plant.start("pk1")
    ctl(pk, "loading-start", "--plate", "苏A10001", "--point", "line2")
    assert plant.visit("pk1", second) is None  # it cannot know the truck gate1 saw alone
    message = refused(pk, "loading-start", "--plate", "苏A10002", "--point", "line1")
    assert message.startswith(
        "tally: plate 苏A10002 has no open visit; record its arrival first;"
        " or give its order to record it by plate and order;"
        " this terminal may not have the other terminals' latest events: "
    )
    r = tally(
        "ctl", "--config", str(pk), "loading-start", "--plate", "苏A10002", "--order", "SO2",
        "--point", "line1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    provisional = json.loads(r.stdout)
    assert (provisional["visit"], provisional["stage"], provisional["provisional"]) == (
        "pending:苏A10002/SO2",
        "loading",
        True,
    )
    assert r.stderr.startswith(
        "tally: warning: no arrival of 苏A10002 for order SO2 has reached this terminal;"
        " recorded by plate and order, the stage joins the visit when its arrival does (lag: "
    )
    assert "gate1 " in r.stderr and "central " in r.stderr and r.stderr.count("\n") == 1
    assert provisional["warnings"] == [r.stderr.removeprefix("tally: warning: ").strip()]
    (code,) = provisional["warning_codes"]  # the same warning for a UI to translate
    assert (code["code"], code["params"]["plate"], code["params"]["order"]) == (
        "pending_stage",
        "苏A10002",
        "SO2",
    )
    assert sorted(s["source"] for s in code["params"]["lag"]) == ["central", "gate1", "wb1"]

    # Heal: the stage pk1 recorded by plate and order joins the visit gate1 registered.
    plant.receiver.start()
    plant.start("gate1", "wb1")
    plant.everywhere(second, lambda v: v["stage"] == "loading" and v["point"] == "line1")
    plant.everywhere(first, lambda v: v["stage"] == "loading")
    expected = open_visits(plant, "gate1")
    assert expected == sorted([(first, "loading"), (second, "loading")])
    for t in TERMINALS:
        wait_for(lambda t=t: open_visits(plant, t) == expected, DEADLINE_S)

    # No event lost or doubled: every node holds each stream whole, once.
    def held(t: str) -> dict[str, int]:
        conn = sqlite3.connect(plant.tmp / t / "tally.db")
        try:
            own = conn.execute("SELECT count(*), max(seq) FROM events").fetchone()
            foreign = conn.execute(
                "SELECT terminal, count(*), max(seq), min(seq) FROM foreign_events"
                " GROUP BY terminal, epoch"
            ).fetchall()
        finally:
            conn.close()
        out = {t: own[1]}
        for term, n, top, low in foreign:
            assert (n, low) == (top, 1), f"{t} holds {term} with a gap or a double"
            out[term] = top
        return out

    def converged() -> bool:
        views = [held(t) for t in TERMINALS]
        central = {
            term: top
            for term, top in plant.receiver.rows(
                "SELECT terminal, max(seq) FROM events GROUP BY terminal"
            )
        }
        return all(v == views[0] for v in views) and views[0] == central

    wait_for(converged, DEADLINE_S)
    # Every terminal and the receiver hold the same visits (the receiver's events folded by
    # the same domain fold) and the same KPI report, compared as JSON. The scale and the packer
    # keep recording (captures, tallies), so wait for a moment when all have the same events.
    day = local_day(plant.visit("gate1", first)["stage_since"])  # type: ignore[index]

    differ: dict[str, Any] = {}

    def agree(what: str, mine: Any, central: Any) -> bool:
        differ.clear()
        for t in TERMINALS:
            a, b = mine(t), central()
            if a != b:
                differ[f"{t} {what}"] = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
        return not differ

    def visits(t: str) -> Any:  # the scale keeps capturing: unassigned weighings come and go
        snap = plant.daemons[t].request("visits.list", live=False)
        return {k: v for k, v in snap.items() if k != "unassigned"}

    def central_visits_now() -> Any:
        return {k: v for k, v in central_visits(plant).items() if k != "unassigned"}

    for check in (
        lambda: agree("visits", visits, central_visits_now),
        lambda: agree("kpi", lambda t: kpi(plant.configs[t], day), lambda: central_kpi(plant, day)),
    ):
        try:
            wait_for(check, DEADLINE_S)
        except TimeoutError:
            raise AssertionError(differ) from None
    opened = plant.daemons["pk1"].request("visits.list", live=False)["open"]
    assert [(v["visit"], v.get("provisional")) for v in opened] == [(first, None), (second, None)]
    assert central_kpi(plant, day)["bag_load_wait"]["count"] == 2  # the joined truck once


def central_visits(plant: Plant) -> Any:
    """The open visits and queues folded from the receiver's events by the terminals' fold."""
    rows = plant.receiver.rows(
        "SELECT terminal, epoch, seq, kind, at, mono_ns, boot, data FROM events"
    )
    events = [Event(t, e, s, k, a, m, b, json.loads(d)) for t, e, s, k, a, m, b, d in rows]
    return json.loads(json.dumps(fold(events, Projection).snapshot(live=False)))


def test_a_feed_whose_port_is_taken_keeps_the_daemon_recording_and_listens_once_free(
    tmp_path: Path,
) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    readers = write_private(tmp_path / "readers", f"wb1:{TOKENS['wb1']}\n")
    config = write_config(
        tmp_path / "gate1",
        f'[feed]\nlisten = "127.0.0.1:{port}"\ntokens_file = "{readers}"\n',
        terminal="gate1",
    )
    body = {"cursors": [], "wait_s": 0}
    auth = {"Authorization": f"Bearer {TOKENS['wb1']}"}
    with Daemon(config) as d:
        wait_for(lambda: "feed_unavailable" in active_alerts(d), DEADLINE_S)
        (alert,) = [a for a in d.request("status")["alerts"] if a["alert"] == "feed_unavailable"]
        assert alert["detail"] == (
            f"the feed cannot listen on 127.0.0.1:{port} (Address already in use); stop the"
            " program holding that port or set [feed] listen to a free one"
        )
        # the daemon still records what happens at its post
        visit = ctl(
            config, "arrive", "--plate", PLATE, "--order", "SO1", "--product", "P.O 42.5",
            "--load", "bulk", "--planned-kg", "30000",
        )["visit"]  # fmt: skip
        holder.close()
        wait_for(lambda: "feed_unavailable" not in active_alerts(d), DEADLINE_S)
        url = f"http://127.0.0.1:{port}/v1/pull"
        answer = httpx.post(url, json=body, headers=auth)
        assert answer.status_code == 200
        assert "gate1" in {s["terminal"] for s in answer.json()["streams"]}
    kinds = [e["kind"] for e in events(config)]
    assert kinds.count("alert.raised") == 1 and kinds.count("alert.cleared") == 1
    assert visit in {e["data"].get("visit") for e in events(config, "visit.arrived")}

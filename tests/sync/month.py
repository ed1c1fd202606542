"""A generated month of events of several terminals in several plants, for the server's tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.domain.events import Event
from tests.agent.timeline import Timeline

# Plants and their terminals, as the tokens file declares them.
PLANTS = {"north": ("wb1", "pk1"), "south": ("wb2",)}
READER_TOKEN = "reader-token-0000000009"


def tokens_file() -> str:
    """A tokens file with plants, an unplaced-free layout and one evaluation-group reader."""
    lines = ["# plant/terminal:token"]
    for plant, terminals in PLANTS.items():
        lines += [f"{plant}/{t}:tok-{t}-0000000001" for t in terminals]
    lines.append(f"@kaoping:{READER_TOKEN}")
    return "\n".join(lines) + "\n"


def token(terminal: str) -> str:
    """The token of a terminal in `tokens_file`."""
    return f"tok-{terminal}-0000000001"


def _visit(t: Timeline, rng: random.Random, vid: str, load: str) -> list[Event]:
    planned = rng.choice([20000, 30000, 40000])
    out = [t.event("visit.arrived", visit=vid, plate="苏A12345", order=f"SO{vid}",
                   product="P.O 42.5", load=load, planned_kg=planned)]  # fmt: skip

    def step(minutes: float, kind: str, **data: Any) -> None:
        t.advance(minutes)
        out.append(t.event(kind, visit=vid, **data))

    step(rng.uniform(1, 20), "visit.gate_in")
    step(rng.uniform(1, 5), "visit.queued_at_scale", scale="s1")
    step(rng.uniform(1, 16), "visit.weighed", weighing=f"{vid}t", role="tare", weight_kg=15000)
    step(rng.uniform(10, 150), "visit.loading_started", point="line1")
    if load == "bagged":
        bags = planned // 50
        step(rng.uniform(20, 60), "visit.loading_finished", point="line1", bags=bags, bag_kg=50)
    else:
        step(rng.uniform(10, 40), "visit.loading_finished", point="line1")
        step(rng.uniform(1, 15), "visit.sealed", seals=[f"S{vid}"])
    step(rng.uniform(1, 5), "visit.queued_at_scale", scale="s1")
    step(rng.uniform(1, 14), "visit.weighed", weighing=f"{vid}g", role="gross",
         weight_kg=15000 + planned)  # fmt: skip
    step(rng.uniform(1, 5), "visit.exited")
    return out


def month_events(first: datetime, days: int, seed: int = 7) -> dict[str, list[Event]]:
    """Each terminal's events over `days` days from `first` (UTC, plant morning)."""
    rng = random.Random(seed)
    out: dict[str, list[Event]] = {}
    for terminal in (t for ts in PLANTS.values() for t in ts):
        t = Timeline(terminal=terminal, epoch="e1", boot="b1", start=first)
        events: list[Event] = []
        for d in range(days):
            t.wall = first + timedelta(days=d)
            for n in range(rng.randint(2, 4)):
                vid = f"{terminal}-{d}-{n}"
                events += _visit(t, rng, vid, rng.choice(["bagged", "bulk"]))
                if terminal.startswith("pk"):
                    bags = rng.randint(300, 600)
                    events.append(t.event("packer.tally", packer="line1", bags=bags,
                                          returned=rng.randint(0, 30), broken=rng.randint(0, 20),
                                          running_s=rng.randint(600, 900), bag_kg=50))  # fmt: skip
        out[terminal] = events
    return out


def envelope(ev: Event) -> dict[str, Any]:
    """The wire form of an event."""
    return {
        "terminal": ev.terminal,
        "epoch": ev.epoch,
        "seq": ev.seq,
        "id": f"{ev.terminal}:{ev.epoch}:{ev.seq}",
        "kind": ev.kind,
        "at": ev.at,
        "mono_ns": ev.mono_ns,
        "boot": ev.boot,
        "data": ev.data,
    }


FIRST = datetime(2026, 10, 1, 0, 30, tzinfo=UTC)  # 08:30 in Asia/Shanghai

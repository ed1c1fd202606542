"""Pure parts of health: the disk_low decision, the newest weighing, the summary and its screen."""

from __future__ import annotations

from typing import Any

import pytest

from agent.cli.commands.status import render
from agent.daemon.health import Disk, disk_low_action, newest_weighing, summarize


@pytest.mark.parametrize(
    ("free", "floor", "active", "action"),
    [
        (500, 200, False, None),
        (199, 200, False, "raise"),
        (199, 200, True, None),
        (210, 200, True, None),  # within the 10 % band above the floor: no flapping
        (220, 200, True, "clear"),
        (0, 0, False, None),
        (0, 0, True, "clear"),  # the floor was switched off
        (1, 1, True, None),
        (2, 1, True, "clear"),
    ],
)
def test_disk_low_action(free: int, floor: int, active: bool, action: str | None) -> None:
    assert disk_low_action(free, floor, active) == action


def test_newest_weighing() -> None:
    a = {"weighing": "a", "at": "2026-01-02T03:04:05.000Z", "weight_kg": 1}
    b = {"weighing": "b", "at": "2026-01-02T03:04:06.000Z", "weight_kg": 2}
    assert newest_weighing(None, a, b, None) == b
    assert newest_weighing(b, a) == b
    assert newest_weighing(None, None) is None


HEALTH = {
    "version": "0.1.0",
    "uptime_s": 3725,
    "last_seq": 812,
    "disk_free_mb": 150,
    "disk_full": False,
    "clock_offset_ms": 3,
    "last_weighing_at": "2026-01-02T03:04:05.000Z",
}
DISK = Disk("/var/lib/tally", 150, 30000)
WEIGHING = {
    "weighing": "w1",
    "scale": "scale1",
    "weight_kg": 48200,
    "at": HEALTH["last_weighing_at"],
}


def _summary(**over: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "terminal": "wb1",
        "devices": {},
        "sync": None,
        "sync_configured": False,
        "disk": Disk("/var/lib/tally", 5000, 30000),
        "min_free_mb": 200,
        "last_weighing": None,
        "alerts": [],
        "clock_stepped_at": None,
    }
    kw.update(over)
    return summarize(HEALTH, **kw)


def test_summary_of_a_healthy_terminal() -> None:
    assert _summary() == {
        "healthy": True,
        "problems": [],
        "terminal": "wb1",
        "version": "0.1.0",
        "uptime_s": 3725,
        "last_seq": 812,
        "devices": {},
        "sync": {"enabled": False},
        "disk": {
            "path": "/var/lib/tally",
            "free_mb": 5000,
            "total_mb": 30000,
            "min_free_mb": 200,
            "full": False,
        },
        "clock": {"offset_ms": 3, "stepped_at": None},
        "last_weighing": None,
        "alerts": [],
        "replicas": [],
    }


def test_summary_of_an_unhealthy_terminal_names_every_problem() -> None:
    s = _summary(
        devices={
            "scale1": {"online": True, "reason": "", "since": "t1", "kind": "scale"},
            "line1": {"online": False, "reason": "timeout", "since": "t2", "kind": "packer"},
        },
        sync={
            "enabled": True,
            "backlog": 4000,
            "oldest_unsent_s": 1800.4,
            "state": "backoff",
            "last_error": "connection refused",
            "dead_letters": 2,
        },
        sync_configured=True,
        disk=DISK,
        last_weighing=WEIGHING,
    )
    assert s["healthy"] is False
    assert s["problems"] == [
        "device line1 is offline since t2 (timeout)",
        "the disk holding /var/lib/tally has 150 MiB free, below 200 MiB",
        "the oldest unsent event is 1800 s old (4000 waiting); last error: connection refused",
        "2 events were rejected by the server",
    ]
    assert render(s) == "\n".join(
        [
            "tally wb1: UNHEALTHY",
            "  version   0.1.0, up 1 h 02 min, last seq 812",
            "  devices   line1: OFFLINE since t2 (timeout)",
            "            scale1: online since t1",
            "  sync      backlog 4000, oldest unsent 30 min 00 s, state backoff,"
            " last error: connection refused",
            "  disk      150 MiB free of 30000 MiB at /var/lib/tally (floor 200 MiB)",
            "  clock     offset 3 ms since start, last step never",
            "  weighing  48200 kg on scale1 at 2026-01-02T03:04:05.000Z",
            "  problems  device line1 is offline since t2 (timeout)",
            "            the disk holding /var/lib/tally has 150 MiB free, below 200 MiB",
            "            the oldest unsent event is 1800 s old (4000 waiting);"
            " last error: connection refused",
            "            2 events were rejected by the server",
        ]
    )


def test_summary_when_the_disk_is_full_and_sync_is_starting() -> None:
    full = {**HEALTH, "disk_full": True}
    s = summarize(
        full,
        terminal="wb1",
        devices={},
        sync=None,
        sync_configured=True,
        disk=Disk("/var/lib/tally", 0, 30000),
        min_free_mb=200,
        last_weighing=None,
        alerts=[{"alert": "disk_full", "detail": "full", "stored": False}],
        clock_stepped_at="2026-01-02T00:00:00.000Z",
    )
    assert s["problems"] == [
        "the disk holding /var/lib/tally is full; events are held until space returns"
    ]
    assert s["sync"] == {
        "enabled": True,
        "backlog": None,
        "oldest_unsent_s": None,
        "state": "starting",
    }
    assert render(s).splitlines()[3:] == [
        "  sync      backlog ?, oldest unsent none, state starting",
        "  disk      0 MiB free of 30000 MiB at /var/lib/tally (floor 200 MiB), FULL",
        "  clock     offset 3 ms since start, last step 2026-01-02T00:00:00.000Z",
        "  weighing  none yet",
        "  alerts    disk_full: full",
        "  problems  the disk holding /var/lib/tally is full; events are held until space returns",
    ]

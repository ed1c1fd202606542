"""The pure parts of sd_notify: socket addresses, watchdog interval and the STATUS= line."""

from __future__ import annotations

from typing import Any

import pytest

from agent.daemon.notify import notify_address, status_line, watchdog_interval_s


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("@/org/freedesktop/systemd1/notify", b"\0/org/freedesktop/systemd1/notify"),
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("", None),
        ("relative/path", None),
    ],
)
def test_notify_address(value: str, address: str | bytes | None) -> None:
    assert notify_address(value) == address


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "42"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "43"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], interval: float | None) -> None:
    assert watchdog_interval_s(env, 42) == interval


def test_status_line_without_anything() -> None:
    assert status_line({}) == "no devices; sync off; no weighing yet"


def test_status_line_with_devices_backlog_and_weighings() -> None:
    topics: dict[str, Any] = {
        "devices": {
            "scale1": {"online": True, "reason": "", "since": "x", "kind": "scale"},
            "line1": {"online": False, "reason": "timeout", "since": "x", "kind": "packer"},
        },
        "sync": {"enabled": True, "backlog": 17},
        "scale.scale1": {
            "last_weighing": {"weighing": "a", "weight_kg": 48200, "at": "2026-01-02T03:04:05.000Z"}
        },
        "scale.scale2": {
            "last_weighing": {"weighing": "b", "weight_kg": 15000, "at": "2026-01-02T03:00:00.000Z"}
        },
        "scale.scale3": {"last_weighing": None},
    }
    assert status_line(topics) == (
        "devices 1/2 online (offline: line1); backlog 17; "
        "last weighing 48200 kg at 2026-01-02T03:04:05.000Z"
    )

"""Handover stops and the unattended weighbridge: pure rules with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from agent.domain.attendance import ScaleWatch, Unattended, is_handover, unattended

TZ = ZoneInfo("Asia/Shanghai")
SHIFTS = ("00:00", "08:00", "16:00")


def at(h: int, m: int = 0) -> datetime:
    """A UTC time on 2026-11-29 (local = +8 h: 00:00 UTC is the 08:00 local shift change)."""
    return datetime(2026, 11, 29, h, m, tzinfo=UTC)


def test_a_stop_within_the_window_of_a_shift_change_is_a_handover_stop() -> None:
    flagged = {
        (h, m): is_handover(at(h, m), SHIFTS, TZ, 15)
        for h, m in [(23, 44), (23, 46), (0, 0), (0, 15), (0, 16), (4, 0), (8, 10), (16, 0)]
    }
    assert flagged == {
        (23, 44): False,
        (23, 46): True,
        (0, 0): True,
        (0, 15): True,
        (0, 16): False,
        (4, 0): False,
        (8, 10): True,  # 16:10 local
        (16, 0): True,  # 00:00 local, the night shift
    }
    assert is_handover(at(0), SHIFTS, TZ, 0) is False  # a window of 0 turns the rule off


def test_a_scale_with_trucks_queued_and_no_weighing_for_ten_minutes_is_unattended() -> None:
    limit = timedelta(minutes=10)

    def look(now: datetime, **scales: ScaleWatch) -> Unattended:
        return unattended(scales, now, limit)

    online = at(1)
    # queued at 2:00, nothing captured: due at 2:10, raised from then
    s1 = ScaleWatch(online, (at(2), at(2, 3)), None)
    assert look(at(2, 9), s1=s1) == Unattended({}, at(2, 10))
    assert look(at(2, 10), s1=s1) == Unattended({"s1": at(2)}, None)
    # a capture at 2:12 clears it and starts the count again
    s1 = ScaleWatch(online, (at(2, 3),), at(2, 12))
    assert look(at(2, 13), s1=s1) == Unattended({}, at(2, 22))
    # an empty queue or an offline scale is never unattended
    assert look(at(3), s1=ScaleWatch(online, (), at(2, 12))) == Unattended({}, None)
    assert look(at(3), s1=ScaleWatch(None, (at(2),), None)) == Unattended({}, None)
    # a scale back online counts from then; the earliest due of several scales is next
    assert look(
        at(3),
        s1=ScaleWatch(at(2, 55), (at(2),), None),
        s2=ScaleWatch(online, (at(2, 52),), at(2, 40)),
    ) == Unattended({}, at(3, 2))

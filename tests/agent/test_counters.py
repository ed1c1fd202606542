from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import PackerConfig, PointConfig
from agent.domain.counters import (
    Anomaly,
    Delta,
    Discontinuity,
    PackerState,
    Progress,
    Rates,
    Settings,
    Started,
    Stopped,
    Tally,
    close,
    counter_delta,
    give_reason,
    observe,
    tick,
)

T0 = datetime(2026, 11, 29, 2, 0, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# --- counter_delta -------------------------------------------------------------------------------


def test_first_reading_is_the_baseline() -> None:
    assert counter_delta("bags", None, 12345, 65536, 0, 20) == Delta(0)


def test_rise_is_the_difference() -> None:
    assert counter_delta("bags", 100, 103, 65536, 1, 20) == Delta(3)


def test_16_bit_wrap() -> None:
    assert counter_delta("bags", 65534, 2, 65536, 1, 20) == Delta(
        4, Discontinuity("bags", 65534, 2, "wrap")
    )


def test_32_bit_wrap() -> None:
    assert counter_delta("bags", 2**32 - 1, 0, 2**32, 1, 20) == Delta(
        1, Discontinuity("bags", 2**32 - 1, 0, "wrap")
    )


def test_display_limit_wrap() -> None:
    assert counter_delta("bags", 99_998, 3, 100_000, 1, 20) == Delta(
        5, Discontinuity("bags", 99_998, 3, "wrap")
    )


def test_fall_from_the_middle_is_a_reset() -> None:
    assert counter_delta("bags", 30_000, 5, 65536, 1, 20) == Delta(
        5, Discontinuity("bags", 30_000, 5, "reset")
    )


def test_power_cycle_just_before_the_wrap_is_a_reset() -> None:
    assert counter_delta("bags", 65_239, 3, 65536, 1, 20) == Delta(
        3, Discontinuity("bags", 65_239, 3, "reset")
    )


def test_running_time_is_split_exactly_at_interval_boundaries() -> None:
    s = settings()
    readings: list[tuple[float, dict[str, int | bool]]] = [
        (t + 0.4, {"running": True}) for t in range(0, 130)
    ]
    state, out = run(s, readings)
    tallies = [o for o in out if isinstance(o, Tally)]
    assert [(t.start, t.end, t.running_ms) for t in tallies] == [
        (at(0.4), at(60), 59_600),
        (at(60), at(120), 60_000),
    ]
    assert state.running_ms == 9_400


def test_fall_to_a_high_value_is_a_reset() -> None:
    assert counter_delta("bags", 65_000, 40_000, 65536, 7200, 20) == Delta(
        40_000, Discontinuity("bags", 65_000, 40_000, "reset")
    )


def test_impossible_delta_is_an_anomaly_not_counted() -> None:
    assert counter_delta("bags", 100, 5100, 65536, 2, 20) == Delta(
        0, None, Anomaly("bags", 100, 5100, 5000, 40)
    )


def test_reset_with_impossible_value_is_both() -> None:
    assert counter_delta("bags", 30_000, 9_000, 65536, 1, 20) == Delta(
        0, Discontinuity("bags", 30_000, 9_000, "reset"), Anomaly("bags", 30_000, 9_000, 9_000, 20)
    )


def test_elapsed_under_a_second_counts_as_one() -> None:
    assert counter_delta("bags", 0, 20, 65536, 0.1, 20) == Delta(20)


MODULI = st.sampled_from([65536, 2**32, 100_000, 10_000])


@given(MODULI, st.data())
def test_never_negative(modulus: int, data: st.DataObject) -> None:
    prev = data.draw(st.none() | st.integers(0, modulus - 1))
    cur = data.draw(st.integers(0, modulus - 1))
    elapsed = data.draw(st.floats(0, 1e6))
    d = counter_delta("p", prev, cur, modulus, elapsed, 20)
    assert d.delta >= 0
    assert (d.discontinuity is None) == (prev is None or cur >= prev)


@given(MODULI, st.data())
def test_small_advance_across_wrap_is_exact(modulus: int, data: st.DataObject) -> None:
    prev = data.draw(st.integers(0, modulus - 1))
    n = data.draw(st.integers(0, min(modulus // 4, 2000)))
    cur = (prev + n) % modulus
    d = counter_delta("p", prev, cur, modulus, 100, 20)
    assert d.delta == n
    assert d.anomaly is None
    assert d.discontinuity == (Discontinuity("p", prev, cur, "wrap") if cur < prev else None)


@given(st.integers(0, 65535), st.lists(st.integers(0, 15), max_size=200))
def test_sum_of_deltas_equals_advance(start: int, steps: list[int]) -> None:
    prev, total = start, 0
    for n in steps:
        cur = (prev + n) % 65536
        total += counter_delta("p", prev, cur, 65536, 1, 20).delta
        prev = cur
    assert total == sum(steps)


# --- the packer core -----------------------------------------------------------------------------


def settings(running: bool = True, **kw: object) -> Settings:
    points = [
        PointConfig("bags", 3, 0, "uint16"),
        PointConfig("returned", 3, 1, "uint16"),
        PointConfig("broken", 3, 2, "uint16"),
        PointConfig("loaded", 3, 4, "uint32"),
    ]
    if running:
        points.append(PointConfig("running", 1, 0, "bool"))
    kw.setdefault("poll_s", 5.0)  # readings up to 15 s apart earn running time
    cfg = PackerConfig(name="line1", tally_s=60, stop_after_s=120, points=tuple(points), **kw)  # type: ignore[arg-type]
    return Settings.from_config(cfg)


def run(
    s: Settings,
    readings: list[tuple[float, dict[str, int | bool]]],
    state: PackerState | None = None,
) -> tuple[PackerState, list[object]]:
    st_ = state or PackerState()
    out: list[object] = []
    for t, values in readings:
        st_, o = observe(s, st_, values, at(t))
        out.extend(o)
    return st_, out


def test_tally_interval_from_running_point() -> None:
    s = settings()
    readings: list[tuple[float, dict[str, int | bool]]] = [
        (0, {"bags": 100, "returned": 5, "broken": 1, "loaded": 7, "running": True}),
        (10, {"bags": 105, "returned": 5, "broken": 1, "loaded": 9, "running": True}),
        (20, {"bags": 110, "returned": 6, "broken": 1, "loaded": 9, "running": False}),
        (30, {"bags": 110, "returned": 6, "broken": 2, "loaded": 12, "running": False}),
        (61, {"bags": 111, "returned": 6, "broken": 2, "loaded": 12, "running": True}),
    ]
    state, out = run(s, readings)
    tallies = [o for o in out if isinstance(o, Tally)]
    assert tallies == [Tally("line1", at(0), at(60), 10, 1, 1, 20_000, 50)]
    assert state.loaded == 5
    assert (state.start, state.bags, state.running_ms, state.seen) == (at(60), 1, 0, True)
    assert tallies[0].data() == {
        "packer": "line1",
        "from": "2026-11-29T02:00:00.000Z",
        "to": "2026-11-29T02:01:00.000Z",
        "bags": 10,
        "returned": 1,
        "broken": 1,
        "running_s": 20.0,
        "bag_kg": 50,
    }


def test_running_from_activity_without_running_point() -> None:
    s = settings(running=False, idle_s=15)
    readings: list[tuple[float, dict[str, int | bool]]] = [
        (0, {"bags": 0}),
        (1, {"bags": 0}),
        (2, {"bags": 1}),
        (3, {"bags": 2}),
        (10, {"bags": 2}),
        (20, {"bags": 2}),
    ]
    state, out = run(s, readings)
    # credited: 1→2 (bag), 2→3 (bag), 3→10 (within idle_s of the bag at 3); not 10→20 (idle 17 s)
    assert state.running_ms == 9_000
    assert state.running is False
    assert [o for o in out if isinstance(o, Progress) and o.running_ms] == [
        Progress(at(2), 1, 0, 0, 1000),
        Progress(at(3), 1, 0, 0, 1000),
        Progress(at(10), 0, 0, 0, 7000),
    ]


def test_long_gap_earns_no_running_time() -> None:
    s = settings()
    state, _ = run(s, [(0, {"running": True}), (1, {"running": True}), (30, {"running": True})])
    assert state.running_ms == 1000


def test_wrap_and_reset_outputs() -> None:
    s = settings()
    state, out = run(
        s,
        [
            (0, {"bags": 65530, "running": True}),
            (1, {"bags": 3, "running": True}),
            (2, {"bags": 1, "running": True}),
            (3, {"bags": 2, "running": True}),
        ],
    )
    assert [o for o in out if isinstance(o, Discontinuity)] == [
        Discontinuity("bags", 65530, 3, "wrap"),
        Discontinuity("bags", 3, 1, "reset"),
    ]
    assert state.bags == 9 + 1 + 1


def test_anomaly_moves_the_baseline_without_counting() -> None:
    s = settings()
    state, out = run(s, [(0, {"bags": 10}), (1, {"bags": 5000}), (2, {"bags": 5002})])
    assert [o for o in out if isinstance(o, Anomaly)] == [Anomaly("bags", 10, 5000, 4990, 20)]
    assert state.bags == 2


def test_stop_after_and_start_again() -> None:
    s = settings()
    readings: list[tuple[float, dict[str, int | bool]]] = [
        (0, {"running": True}),
        (10, {"running": False}),
        (100, {"running": False}),
        (131, {"running": False}),
        (140, {"running": False}),
        (150, {"running": True}),
    ]
    state, out = run(s, readings)
    events = [o for o in out if isinstance(o, Stopped | Started)]
    assert events == [Stopped(at(0), None, None), Started(at(150))]
    assert state.stopped is False


def test_operator_reason() -> None:
    s = settings()
    state, _ = run(s, [(0, {"running": True}), (200, {"running": False})])
    state, stopped = give_reason(state, "spout 3 jammed", 45, at(210))
    assert stopped == Stopped(at(0), "spout 3 jammed", 45)
    assert (state.stopped, state.reason, state.repair_min) == (True, "spout 3 jammed", 45)
    state, out = observe(s, state, {"running": True}, at(220))
    assert Started(at(220)) in out
    assert (state.stopped, state.reason, state.repair_min) == (False, None, None)


def test_reason_refused_while_running() -> None:
    s = settings()
    state, _ = run(s, [(0, {"running": True})])
    with pytest.raises(ValueError, match=r"^running$"):
        give_reason(state, "x", 1, at(1))


def test_state_json_round_trip_and_clean_close() -> None:
    s = settings()
    state, _ = run(s, [(0, {"bags": 5, "running": True}), (5, {"bags": 8, "running": True})])
    again = PackerState.from_json(state.to_json())
    assert again == state
    closed, tally = close(s, again, at(7))
    assert tally == Tally("line1", at(0), at(7), 3, 0, 0, 7000, 50)  # ran up to the stop
    assert (closed.start, closed.bags, closed.seen) == (at(7), 0, False)
    # the next interval after a restart starts aligned, counting what happened meanwhile
    after, out = observe(s, closed, {"bags": 20, "running": True}, at(3600 + 5))
    assert [o for o in out if isinstance(o, Tally)] == []
    assert (after.start, after.bags) == (at(3600), 12)


def test_tick_closes_interval_without_reading() -> None:
    s = settings()
    state, _ = run(s, [(0, {"bags": 1})])
    state, out = tick(s, state, at(59))
    assert out == []
    state, out = tick(s, state, at(60))
    assert out == [Tally("line1", at(0), at(60), 0, 0, 0, 0, 50)]
    state, out = tick(s, state, at(125))
    assert out == []  # the interval saw no reading
    assert state.start == at(120)


# --- rates ---------------------------------------------------------------------------------------


def test_rates_last15_and_day() -> None:
    r = Rates("Asia/Shanghai")
    r = r.add(Progress(at(-1000), 100, 0, 0, 300_000))  # outside the 15-minute window
    r = r.add(Progress(at(0), 500, 20, 5, 900_000))
    assert r.view(at(10), 50) == {
        "last15": {"bags_h": 2000.0, "t_h": 100.0, "return_rate": 0.04, "broken_rate": 0.01},
        "day": {
            "bags": 600,
            "returned": 20,
            "broken": 5,
            "running_h": 0.333,
            "t_h": 90.0,
            "return_rate": 0.0333,
            "broken_rate": 0.0083,
        },
    }


def _summed_window(added: list[Progress], now: datetime) -> tuple[int, int, int, int]:
    """The window's sums as `Rates` summed them before it kept them: every sample a reading
    left in the window (each reading dropping those 15 minutes older than itself), then those
    older than 15 minutes before `now` left out."""
    kept: list[Progress] = []
    for p in added:
        kept = [x for x in kept if x.at > p.at - timedelta(seconds=900)]
        if p.bags or p.returned or p.broken or p.running_ms:
            kept.append(p)
    recent = [x for x in kept if x.at > now - timedelta(seconds=900)]
    return (
        sum(x.bags for x in recent),
        sum(x.returned for x in recent),
        sum(x.broken for x in recent),
        sum(x.running_ms for x in recent),
    )


# a reading's step in seconds: mostly forwards, sometimes a clock set back or far ahead
STEPS = st.one_of(st.integers(0, 30), st.integers(-1200, 0), st.integers(300, 2000))
PROGRESS = st.tuples(
    STEPS, st.integers(0, 9), st.integers(0, 2), st.integers(0, 1), st.integers(0, 2000)
)


@given(st.lists(PROGRESS, max_size=300), st.integers(0, 1000))
def test_the_windows_running_sums_equal_the_window_summed_again(
    steps: list[tuple[int, int, int, int, int]], later: int
) -> None:
    r = Rates("Asia/Shanghai")
    added: list[Progress] = []
    t = 0
    for step, bags, returned, broken, ms in steps:
        t += step
        p = Progress(at(t), bags, returned, broken, ms)
        r = r.add(p)
        added.append(p)
        now = at(t + later)
        bags_h = r.view(now, 50)["last15"]["bags_h"]
        sums = _summed_window(added, now)
        assert r.window == _summed_window(added, at(t))
        assert bags_h == (round(sums[0] * 3_600_000 / sums[3], 1) if sums[3] > 0 else None)
    assert [x.at for x in r.samples] == sorted(x.at for x in r.samples)


def test_rates_reset_on_local_day_and_empty_view() -> None:
    r = Rates("Asia/Shanghai")
    r = r.add(Progress(datetime(2026, 11, 29, 15, 59, tzinfo=UTC), 10, 0, 0, 1000))
    r = r.add(Progress(datetime(2026, 11, 29, 16, 1, tzinfo=UTC), 3, 1, 0, 1000))
    view = r.view(datetime(2026, 11, 29, 16, 2, tzinfo=UTC), 50)
    assert view["day"]["bags"] == 3
    empty = Rates("Asia/Shanghai").view(at(0), 50)
    assert empty == {
        "last15": {"bags_h": None, "t_h": None, "return_rate": None, "broken_rate": None},
        "day": {
            "bags": 0,
            "returned": 0,
            "broken": 0,
            "running_h": 0.0,
            "t_h": None,
            "return_rate": None,
            "broken_rate": None,
        },
    }

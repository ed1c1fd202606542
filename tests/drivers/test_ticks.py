"""The daemon's tick grid: periodic work shares wake-ups."""

from __future__ import annotations

import asyncio

import pytest

from drivers.ticks import GRID_S, next_tick, on_grid, sleep_on_beat, sleep_on_grid, sleep_until


@pytest.mark.parametrize(
    ("t", "after", "at_or_after"),
    [(0.0, 0.1, 0.0), (0.05, 0.1, 0.1), (0.1, 0.2, 0.1), (12.3, 12.4, 12.3), (12.3001, 12.4, 12.4)],
)
def test_ticks_of_the_grid(t: float, after: float, at_or_after: float) -> None:
    assert next_tick(t) == pytest.approx(after)
    assert on_grid(t) == pytest.approx(at_or_after)
    assert on_grid(t) >= t - 1e-9


def test_a_time_a_float_error_off_a_tick_is_on_it() -> None:
    t = 0.1 * 3  # 0.30000000000000004
    assert on_grid(t) == pytest.approx(0.3)
    assert on_grid(t) < 0.35


async def test_sleepers_with_different_delays_wake_together_on_one_tick() -> None:
    loop = asyncio.get_running_loop()
    woke: dict[str, float] = {}

    async def sleeper(name: str, delay: float) -> None:
        await sleep_on_grid(delay)
        woke[name] = loop.time()

    # start just after a tick, so both delays end before the next but one
    await sleep_until(next_tick(loop.time()) + 0.01)
    start = loop.time()
    await asyncio.gather(sleeper("a", 0.02), sleeper("b", 0.06))
    assert woke["a"] >= start + 0.02 and woke["b"] >= start + 0.06
    assert abs(woke["a"] - woke["b"]) < 0.01  # one tick, one turn of the loop
    assert abs(woke["a"] / GRID_S - round(woke["a"] / GRID_S)) < 0.2  # on (just after) a tick


async def test_sleep_until_a_time_past_returns_at_once() -> None:
    loop = asyncio.get_running_loop()
    before = loop.time()
    await sleep_until(before - 5)
    assert loop.time() - before < 0.05


async def test_watches_of_one_period_started_apart_wake_on_the_same_beat() -> None:
    """Two watches that look every 0.5 s, the second started 0.23 s after the first, look in
    the same turns of the loop (with sleep_on_grid they would stay 0.2 s apart)."""
    loop = asyncio.get_running_loop()
    looks: dict[str, list[float]] = {"a": [], "b": []}

    async def watch(name: str, times: int) -> None:
        for _ in range(times):
            await sleep_on_beat(0.5)
            looks[name].append(loop.time())

    first = asyncio.create_task(watch("a", 3))  # its looks span every beat of b's two
    await asyncio.sleep(0.23)
    await asyncio.gather(first, watch("b", 2))
    assert len(looks["b"]) == 2
    for t in looks["b"]:
        assert min(abs(t - u) for u in looks["a"]) < 0.005, (looks, t)
        assert abs(t / 0.5 - round(t / 0.5)) < 0.05

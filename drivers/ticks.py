"""The daemon's tick grid: timers set on it fire together, in one wake-up of the event loop."""

from __future__ import annotations

import asyncio
import math

# A wake-up of an idle process costs more than most of the work it does (docs/performance.md),
# so the periodic work of a terminal (reading its scales, publishing their weights, polling its
# packers, the sender's look for new events, the clock and health watches) is timed on one grid
# of the loop's clock and shares wake-ups instead of each taking its own.
GRID_S = 0.1


def next_tick(now: float, grid_s: float = GRID_S) -> float:
    """The first tick of the grid strictly after `now` (loop time, seconds)."""
    return (math.floor(now / grid_s) + 1) * grid_s


def on_grid(t: float, grid_s: float = GRID_S) -> float:
    """The first tick of the grid at or after `t`."""
    ticks = t / grid_s
    nearest = round(ticks)
    if abs(ticks - nearest) < 1e-6:  # on a tick already, give or take the float's error
        return nearest * grid_s
    return math.ceil(ticks) * grid_s


async def sleep_until(when: float) -> None:
    """Sleep until loop time `when` (a timer at exactly that time, so timers set on the same
    tick fire in the same turn of the loop)."""
    loop = asyncio.get_running_loop()
    if when <= loop.time():
        await asyncio.sleep(0)
        return
    future: asyncio.Future[None] = loop.create_future()
    handle = loop.call_at(when, _wake, future)
    try:
        await future
    finally:
        handle.cancel()


async def sleep_on_grid(delay: float) -> None:
    """Sleep at least `delay` seconds, until the grid's next tick at or after then."""
    loop = asyncio.get_running_loop()
    await sleep_until(on_grid(loop.time() + delay))


async def sleep_on_beat(period_s: float) -> None:
    """Sleep until the next multiple of `period_s` on the loop's clock (a beat): work repeated
    with the same period, such as the watches that look every 5 s, then wakes in one turn of
    the loop whenever each of them began, instead of each on its own phase."""
    loop = asyncio.get_running_loop()
    await sleep_until(next_tick(loop.time(), period_s))


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

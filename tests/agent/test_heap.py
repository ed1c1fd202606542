"""The heap trim: freed pages in the middle of the C heap go back to the system, on a beat."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.daemon import heap

HOLES = textwrap.dedent(
    """
    from agent.daemon.heap import trimmer
    from bench.procs import status_mib

    def rss_mib():
        return status_mib("self", "VmRSS:")

    trim = trimmer()
    assert trim is not None
    # 60,000 blocks of 1000 bytes (each from malloc, not pymalloc), every 30th kept: the
    # freed ones are holes between live blocks that glibc keeps unless it is asked
    blocks = [bytes(1000) for _ in range(60_000)]
    kept = blocks[::30] + blocks[-1:]
    del blocks
    before = rss_mib()
    gave = trim()
    after = rss_mib()
    print(before, after, gave)
    """
)


@pytest.mark.skipif(heap.trimmer() is None, reason="this C library has no malloc_trim")
def test_a_trim_gives_the_holes_in_the_heap_back_to_the_system() -> None:
    root = Path(__file__).resolve().parents[2]  # where `bench` imports from
    out = subprocess.run(
        [sys.executable, "-c", HOLES],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    before, after, gave = float(out[0]), float(out[1]), int(out[2])
    # about 55 MiB lay free between the kept blocks: most of it leaves the process's RSS
    assert gave == 1
    assert before - after > 30, (before, after)


BIG_BLOCKS = textwrap.dedent(
    """
    import sys
    from agent.daemon.heap import mallinfo, tune

    if sys.argv[1] == "tuned":
        assert tune()
    big = bytearray(4 << 20)  # mapped on its own, and freed: glibc raises its threshold to 4 MiB
    del big
    blocks = [bytearray(200_000) for _ in range(20)]
    print(mallinfo()["hblks"])
    """
)


@pytest.mark.skipif(heap.mallinfo() is None, reason="this C library has no mallinfo2")
def test_a_tuned_heap_maps_big_blocks_on_their_own_after_a_bigger_one_was_freed() -> None:
    def mapped(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", BIG_BLOCKS, mode],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return int(out.stdout)

    # untuned, the 200 KB blocks come from the heap, where each would leave a hole when freed
    assert mapped("tuned") - mapped("plain") >= 20


def test_the_daemon_trims_once_a_beat() -> None:
    calls: list[float] = []

    def fake_trim() -> int:
        calls.append(asyncio.get_running_loop().time())
        return 0

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.create_task(heap.HeapTrim(interval_s=0.05, trim=fake_trim).run())
        while len(calls) < 4 and loop.time() - started < 10:
            await asyncio.sleep(0.01)
        task.cancel()
        return loop.time() - started

    took = asyncio.run(scenario())
    assert len(calls) >= 4
    # each trim waits for a beat of its own after the last: never more than one a beat
    assert len(calls) <= took / 0.05 + 1


def test_where_the_c_library_cannot_trim_the_service_ends_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap, "trimmer", lambda: None)

    async def scenario() -> None:
        await asyncio.wait_for(heap.HeapTrim(interval_s=0.05).run(), 1)

    asyncio.run(scenario())  # returns: the supervisor then leaves it ended


def test_without_ctypes_the_heap_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """An old libffi under the unit's MemoryDenyWriteExecute cannot load ctypes: the daemon
    must start all the same, untuned."""
    monkeypatch.setitem(sys.modules, "ctypes", None)  # any import of it now fails
    heap._glibc.cache_clear()
    heap._mallinfo2.cache_clear()
    try:
        assert heap.tune() is False
        assert heap.trimmer() is None
        assert heap.mallinfo() is None
    finally:
        monkeypatch.undo()
        heap._glibc.cache_clear()
        heap._mallinfo2.cache_clear()

"""The soak's census tells Python's small objects from the C allocator's blocks."""

from __future__ import annotations

from pathlib import Path

from bench.census import census


def _heap(path: Path) -> dict[str, float]:
    census(path)
    words = path.read_text(encoding="utf-8").splitlines()[1].split()
    assert words[:2] == ["pymalloc", "arenas"], words
    return {
        "arenas": float(words[2]),
        "live": float(words[4]),
        "c_used": float(words[11]),
    }


def test_the_census_sees_where_the_heap_grew(tmp_path: Path) -> None:
    """A hundred thousand small tuples land in pymalloc's blocks, a 32 MiB buffer in the C
    allocator: the census's heap line shows each where it is."""
    before = _heap(tmp_path / "c1")
    small = [(i, str(i)) for i in range(100_000)]  # a tuple and a short string each
    big = bytearray(32 << 20)
    after = _heap(tmp_path / "c2")
    assert after["live"] - before["live"] > 5, (before, after)
    # a process with a big heap (an xdist worker late in the run) may find room in the arenas it
    # has: the count need not grow, but 1 MiB arenas always hold the live blocks
    assert after["arenas"] >= after["live"] > 0, (before, after)
    assert after["c_used"] - before["c_used"] > 31, (before, after)
    del small, big

"""`python -m bench.census run --config F`: `tally run` plus a census of live objects every minute.

For finding what grows in a long-running daemon (`python -m bench.soak --census DIR` runs the
never-killed t1 this way). Every `TALLY_CENSUS_EVERY_S` (default 60) seconds the census service
writes `cNNN` into `TALLY_CENSUS_DIR`: a header line (monotonic seconds, RSS and its anonymous
part in MiB, `sys.getallocatedblocks()`, the number of objects the garbage collector tracks), a
line on where the heap is (Python's own allocator: its arenas, the bytes in live blocks and the
free ones; the C allocator: what it holds from the system, in use and free), the 60 commonest
types with their counts, and the 15 largest containers with who holds them. It runs on the
daemon's loop and takes a moment; it is a bench tool, not part of the product.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import agent.cli.services
from agent.cli import main
from agent.daemon.heap import mallinfo
from agent.daemon.runtime import Context, Service, ServiceFactory
from bench.procs import status_mib


def _holder(container: object, skip: list[Any]) -> list[str]:
    """Who holds `container`: `Class.attribute` for an object's attribute, else the type."""
    out = []
    for r in gc.get_referrers(container):
        if any(r is s for s in skip):
            continue
        if isinstance(r, dict):
            keys = [k for k, v in r.items() if v is container][:1]
            owner = next(
                (
                    type(o).__qualname__
                    for o in gc.get_referrers(r)
                    if getattr(o, "__dict__", None) is r
                ),
                "dict",
            )
            out.append(f"{owner}.{keys[0] if keys else '?'}")
        else:
            out.append(type(r).__qualname__)
    return out[:3]


def c_heap_mib() -> tuple[float, float, float]:
    """The C allocator's heap in MiB: held from the system (its arenas and mmapped blocks), in
    use, and free inside it; zeros where glibc's `mallinfo2` is missing."""
    m = mallinfo()
    if m is None:
        return 0.0, 0.0, 0.0
    mib = 1 << 20
    return (
        (m["arena"] + m["hblkhd"]) / mib,
        (m["uordblks"] + m["hblkhd"]) / mib,
        m["fordblks"] / mib,
    )


def pymalloc_mib() -> tuple[int, float, float]:
    """Python's small-object allocator: arenas held, MiB in live blocks, MiB free in its pools
    (from `sys._debugmallocstats`, which writes to the process's stderr: caught in a file)."""
    with tempfile.TemporaryFile(mode="w+") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()

    def number(label: str) -> int:
        m = re.search(rf"{label}\s*=\s*([\d,]+)", text)
        return int(m.group(1).replace(",", "")) if m else 0

    unused = re.search(r"(\d+) unused pools \* (\d+) bytes", text)
    free = number("# bytes in available blocks") + (
        int(unused.group(1)) * int(unused.group(2)) if unused else 0
    )
    mib = 1 << 20
    return (
        number("# arenas allocated current"),
        number("# bytes in allocated blocks") / mib,
        free / mib,
    )


def census(path: Path) -> None:
    """Write one census to `path`."""
    objs = gc.get_objects()
    counts = collections.Counter(type(o).__qualname__ for o in objs)
    containers = (dict, list, set, collections.deque)
    big = sorted((o for o in objs if isinstance(o, containers) and len(o) > 300), key=len)[-15:]
    lines = [f"{len(o)} {type(o).__name__} {_holder(o, [objs, big])}" for o in reversed(big)]
    header = (
        f"t {time.monotonic():.0f} rss {status_mib('self', 'VmRSS:'):.1f} anon"
        f" {status_mib('self', 'RssAnon:'):.1f} blocks {sys.getallocatedblocks()} objects {len(objs)}"
    )
    del objs, big
    arenas, live, spare = pymalloc_mib()
    held, used, free = c_heap_mib()
    heap = (
        f"pymalloc arenas {arenas} live {live:.1f} free {spare:.1f}"
        f" malloc held {held:.1f} used {used:.1f} free {free:.1f}"
    )
    common = [f"{n} {name}" for name, n in counts.most_common(60)]
    path.write_text("\n".join([header, heap, *common, "--- largest containers", *lines]) + "\n")


class Census:
    """The census service: one census every `every_s` seconds into `folder`."""

    name = "census"

    def __init__(self, folder: Path, every_s: float) -> None:
        self.folder, self.every_s = folder, every_s

    async def run(self) -> None:
        """Sleep, count, repeat."""
        n = 0
        while True:
            await asyncio.sleep(self.every_s)
            n += 1
            census(self.folder / f"c{n:03d}")


def build(ctx: Context) -> list[Service]:
    """The service factory added to the daemon's own."""
    folder = Path(os.environ.get("TALLY_CENSUS_DIR", "census"))
    folder.mkdir(parents=True, exist_ok=True)
    return [Census(folder, float(os.environ.get("TALLY_CENSUS_EVERY_S", "60")))]


def run(argv: Sequence[str]) -> int:
    """The command line with `build` appended to the daemon's service factories."""
    product = agent.cli.services.factories

    def factories() -> list[ServiceFactory]:
        return [*product(), build]

    agent.cli.services.factories = factories
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

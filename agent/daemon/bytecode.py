"""The daemon's byte code as its unit loads it: optimised (-OO), under a cache prefix of its own.

`tally.service` runs the daemon with PYTHONOPTIMIZE=2 (no docstrings and no asserts in memory:
1.5 MiB less of a 39 MiB daemon, docs/performance.md) and PYTHONPYCACHEPREFIX=PREFIX/pycache.
A daemon that found no optimised byte code would compile every module it imports at each start
(6 MiB more, kept, and 0.7 s of CPU, measured), and it may not write any, so `make install` runs
`python -m agent.daemon.bytecode --prefix PREFIX [--stage DESTDIR]`: every module of the
standard library and of the venv, compiled the way the daemon looks for it. The files carry the
hash of their source (not its time), so a staged tree copied into place stays valid, and a
source that changed (a Python upgrade) is compiled again the next time it runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import py_compile
import re
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

OPTIMIZE = 2
# Below a root, parts no daemon imports: the standard library's tests, GUI and old tools, and
# the packages of the Python the venv was made from (a root of their own where they count), and
# the venv's installers.
SKIP = re.compile(
    r"/(test|tests|idlelib|tkinter|turtledemo|lib2to3|ensurepip|pydoc_data"
    r"|site-packages|dist-packages|pip|setuptools|pkg_resources)(/|$)"
)


def cache_file(source: Path, prefix: Path) -> Path:
    """Where Python looks for `source`'s optimised byte code under the cache prefix `prefix`
    (importlib's own rule, so the two cannot disagree)."""
    saved = sys.pycache_prefix
    sys.pycache_prefix = str(prefix)
    try:
        return Path(importlib.util.cache_from_source(str(source), optimization=OPTIMIZE))
    finally:
        sys.pycache_prefix = saved


def python_roots() -> list[Path]:
    """The folders of this Python's modules: its standard library and its venv's packages."""
    return [Path(sysconfig.get_path(name)) for name in ("stdlib", "purelib", "platlib")]


def sources(roots: Iterable[Path]) -> Iterator[Path]:
    """Every .py file under `roots`, without the parts SKIP names, each once."""
    seen: set[Path] = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            if SKIP.search(folder[len(str(root)) :]):
                dirs.clear()
                continue
            for name in sorted(files):
                path = Path(folder) / name
                if name.endswith(".py") and path not in seen:
                    seen.add(path)
                    yield path


def current(source: bytes, cfile: Path) -> bool:
    """Whether `cfile` already holds byte code of exactly `source` (a checked-hash file)."""
    try:
        with open(cfile, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return (
        len(head) == 16
        and head[:4] == importlib.util.MAGIC_NUMBER
        and int.from_bytes(head[4:8], "little") == 0b11  # hash-based, checked
        and head[8:] == importlib.util.source_hash(source)
    )


def compile_one(job: tuple[str, str, str]) -> int:
    """Compile one source to `cfile` naming it `shown` in tracebacks: 1 when written, 0 when it
    was current, -1 when it does not compile (a file for another Python version)."""
    source, cfile, shown = job
    try:
        data = Path(source).read_bytes()
    except OSError:
        return -1
    if current(data, Path(cfile)):
        return 0
    done = py_compile.compile(
        source,
        cfile=cfile,
        dfile=shown,
        optimize=OPTIMIZE,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        quiet=2,
    )
    return 1 if done else -1


def compile_all(
    roots: Iterable[Path], prefix: Path, stage: Path | None = None, workers: int = 4
) -> dict[str, int]:
    """Compile every source under `roots` for a daemon whose cache prefix is `prefix`.

    With `stage`, `prefix` (and the roots under it) lie in a staging folder (`make install
    DESTDIR=`) whose contents will be moved to `/`: the files go where the moved tree will look
    for them and name the moved sources. `workers` processes compile (at most one a core).
    """
    jobs = []
    for source in sources(roots):
        final = source
        if stage is not None and source.is_relative_to(stage):
            final = Path("/", source.relative_to(stage))
        cfile = cache_file(final, prefix)
        if stage is not None:
            cfile = Path(stage, cfile.relative_to("/"))
        jobs.append((str(source), str(cfile), str(final)))
    counts = {"written": 0, "current": 0, "failed": 0}
    names = {1: "written", 0: "current", -1: "failed"}
    with ProcessPoolExecutor(max_workers=max(1, min(workers, os.cpu_count() or 1))) as pool:
        for result in pool.map(compile_one, jobs, chunksize=64):
            counts[names[result]] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    """`python -m agent.daemon.bytecode --prefix PREFIX [--stage DESTDIR]`."""
    p = argparse.ArgumentParser(prog="python -m agent.daemon.bytecode", description=__doc__)
    p.add_argument("--prefix", required=True, help="where the venv lives once installed")
    p.add_argument("--stage", default="", help="the staging folder (make install DESTDIR=)")
    args = p.parse_args(argv)
    stage = Path(os.path.abspath(args.stage)) if args.stage else None
    prefix = Path(args.prefix)
    if not prefix.is_absolute():
        p.error(f"--prefix {args.prefix} is not an absolute path; give the install's PREFIX")
    counts = compile_all(python_roots(), Path(prefix, "pycache"), stage)
    print(
        f"byte code for the optimised daemon under {prefix}/pycache: {counts['written']} written,"
        f" {counts['current']} current, {counts['failed']} not for this Python"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

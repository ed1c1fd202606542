"""Runner for `make bench`: each bench_*.py has `run() -> list[Row]`; one table is printed."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

from bench.common import Row, compile_as_installed, machine_line


def main(argv: list[str]) -> int:
    """Run the benchmarks named on the command line (all when none) and print the table."""
    import os

    import bench

    # Sizes as flags (each sets the environment variable its benchmark reads).
    flags = {"--server-events": "TALLY_BENCH_SERVER_EVENTS"}
    engines = ("sqlite", "postgresql")
    rest: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "--server-engine":
            value = next(it, "")
            if value not in engines:
                print(f"{a} needs one of {', '.join(engines)}, such as {a} sqlite", file=sys.stderr)
                return 2
            os.environ["TALLY_BENCH_SERVER_ENGINE"] = value
        elif a in flags:
            value = next(it, "")
            if not value.isdigit():
                print(f"{a} needs a whole number, such as {a} 300000", file=sys.stderr)
                return 2
            os.environ[flags[a]] = value
        else:
            rest.append(a)
    argv = rest
    compile_as_installed()  # the daemons load byte code, as installed ones do
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    machine = machine_line()  # before the benchmarks load the machine
    rows: list[Row] = []
    for name in names:
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(module.run())
        print(f"  {name} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    width = max((len(r.name) for r in rows), default=10)
    print(machine)
    print(f"{'benchmark':<{width}}  {'value':>14}  unit")
    print("-" * (width + 24))
    for r in rows:
        print(f"{r.name:<{width}}  {r.value:>14,.2f}  {r.unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

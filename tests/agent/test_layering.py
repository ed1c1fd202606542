"""Layering held by tests: light imports for the daemon and for `tally --help`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def _tops(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


def test_import_agent_runtime_loads_neither_textual_nor_httpx() -> None:
    tops = _tops(_loaded_after("import agent.daemon.runtime"))
    assert tops.isdisjoint({"textual", "httpx", "tui", "sync"}), tops & {"textual", "httpx"}


def test_tally_help_loads_no_textual_pymodbus_httpx() -> None:
    code = (
        "import sys\nfrom agent import cli\nsys.argv=['tally','--help']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass"
    )
    tops = _tops(_loaded_after(code))
    assert tops.isdisjoint({"textual", "pymodbus", "httpx", "serial", "sqlite_utils"})


def test_only_the_owning_package_imports_each_library() -> None:
    owners = {"serial": "drivers", "pymodbus": "drivers", "httpx": "sync", "textual": "tui"}
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {"tests", "bench", ".venv", "build"}:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.strip().split()
            if len(words) >= 2 and words[0] in {"import", "from"}:
                lib = words[1].split(".")[0]
                if lib in owners and rel.parts[0] != owners[lib]:
                    offenders.append(f"{rel}: {line.strip()}")
    assert offenders == []

"""Layering held by tests: light imports for the daemon and for `tally --help`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(code: str) -> set[str]:
    # a None entry is a module kept from loading, not a loaded one
    probe = (
        f"{code}\nimport sys, json\n"
        "print(json.dumps(sorted(m for m, mod in sys.modules.items() if mod is not None)))"
    )
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


def test_the_daemon_and_its_sync_load_no_command_line_or_drawing_library() -> None:
    # httpx imported click, rich and pygments for its own command line: 7 MiB in every daemon
    code = "from agent import cli\nfrom agent.cli import services\nimport sync.sender.forwarder"
    tops = _tops(_loaded_after(code))
    assert "httpx" in tops
    assert tops.isdisjoint({"rich", "pygments", "textual"}), tops & {"rich", "pygments"}


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


LAYERS = "Layers: drivers <- config <- domain <- daemon <- sync <- tui <- cli"
INDEPENDENCE = "The sender and the receiver are separate parts of sync"


def _lint_imports(
    tmp: Path, back_import: tuple[str, str] | None
) -> subprocess.CompletedProcess[str]:
    """lint-imports on a copy of the packages, with `import B` appended to module file A."""
    for package in ("agent", "drivers", "sync", "tui"):
        shutil.copytree(ROOT / package, tmp / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    if back_import is not None:
        path, module = back_import
        with (tmp / path).open("a", encoding="utf-8") as f:
            f.write(f"\nimport {module}  # a deliberate back-import\n")
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo"],
        capture_output=True,
        text=True,
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(tmp)},
    )


def test_import_contracts_hold() -> None:
    r = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert (r.returncode, r.stdout.splitlines()[-1]) == (0, "Contracts: 7 kept, 0 broken."), (
        r.stdout
    )


@pytest.mark.parametrize(
    ("back_import", "contract", "line"),
    [
        (("agent/domain/plates.py", "agent.cli"), LAYERS, "agent.domain.plates -> agent.cli"),
        (
            ("drivers/serial_scale.py", "agent.daemon.store"),
            LAYERS,
            "drivers.serial_scale -> agent.daemon.store",
        ),
        (
            ("sync/sender/status.py", "sync.receiver.store"),
            INDEPENDENCE,
            "sync.sender.status -> sync.receiver.store",
        ),
    ],
    ids=["domain-imports-cli", "driver-imports-store", "sender-imports-receiver"],
)
def test_a_back_import_breaks_its_contract(
    tmp_path: Path, back_import: tuple[str, str], contract: str, line: str
) -> None:
    r = _lint_imports(tmp_path, back_import)
    out = r.stdout.splitlines()
    assert r.returncode == 1, r.stdout
    assert any(text.startswith(f"{contract} BROKEN") for text in out), r.stdout
    broken = out[out.index("Broken contracts") :]
    assert contract in broken
    assert any(text.startswith(f"- {line} ") for text in broken), r.stdout

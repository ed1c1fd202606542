"""The optimised byte code `make install` writes is where, and what, an optimised Python loads."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.daemon import bytecode

MODULE = '"""A module with a docstring."""\n\nassert False, "asserts are gone"\nVALUE = 1\n'


def _python(src: Path, prefix: Path, code: str) -> subprocess.CompletedProcess[str]:
    """An optimised Python with `prefix` as its cache prefix, writing nothing, verbose."""
    env = {
        **os.environ,
        "PYTHONOPTIMIZE": "2",
        "PYTHONPYCACHEPREFIX": str(prefix),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(src),
        "PYTHONVERBOSE": "1",
    }
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )


def test_an_optimised_python_loads_the_written_byte_code_and_not_the_source(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (src / "pkg" / "mod.py").write_text(MODULE, encoding="utf-8")
    prefix = tmp_path / "pycache"
    assert bytecode.compile_all([src], prefix) == {"written": 2, "current": 0, "failed": 0}
    cfile = bytecode.cache_file(src / "pkg" / "mod.py", prefix)
    assert cfile.is_file() and cfile.is_relative_to(prefix)

    ran = _python(src, prefix, "import pkg.mod; print(pkg.mod.__doc__, pkg.mod.VALUE)")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.split() == ["None", "1"]  # no docstring, and the assert is gone
    assert f"{cfile} matches {src / 'pkg' / 'mod.py'}" in ran.stderr

    # Run again, nothing is written; a changed source is compiled again and loaded.
    assert bytecode.compile_all([src], prefix) == {"written": 0, "current": 2, "failed": 0}
    (src / "pkg" / "mod.py").write_text(MODULE.replace("VALUE = 1", "VALUE = 2"), "utf-8")
    assert bytecode.compile_all([src], prefix)["written"] == 1
    ran = _python(src, prefix, "import pkg.mod; print(pkg.mod.VALUE)")
    assert ran.stdout.split() == ["2"] and f"{cfile} matches" in ran.stderr


def test_a_staged_tree_gets_the_byte_code_its_final_place_looks_for(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    lib = stage / "opt" / "app" / "lib"
    lib.mkdir(parents=True)
    (lib / "mod.py").write_text("def f() -> int:\n    return 1\n", encoding="utf-8")
    (lib / "other_python.py").write_text("match = (\n", encoding="utf-8")  # does not compile
    (lib / "tests").mkdir()
    (lib / "tests" / "test_mod.py").write_text("X = 1\n", encoding="utf-8")

    counts = bytecode.compile_all([lib], Path("/opt/app/pycache"), stage)
    assert counts == {"written": 1, "current": 0, "failed": 1}
    final = bytecode.cache_file(Path("/opt/app/lib/mod.py"), Path("/opt/app/pycache"))
    staged = stage / final.relative_to("/")
    assert staged.is_file()
    code = marshal.loads(staged.read_bytes()[16:])
    assert code.co_filename == "/opt/app/lib/mod.py"  # tracebacks name the installed file
    assert not list((stage / "opt" / "app" / "pycache").rglob("test_mod*"))


def test_a_relative_prefix_is_refused_with_a_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        bytecode.main(["--prefix", "opt/tally"])
    assert ended.value.code == 2
    assert "--prefix opt/tally is not an absolute path" in capsys.readouterr().err

"""`make install DESTDIR=...`: the venv, units, sysusers/tmpfiles and a config never overwritten."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.daemon import bytecode

REPO = Path(__file__).resolve().parents[2]


def _install(dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "make",
            "-C",
            str(REPO),
            "--no-print-directory",
            "install",
            f"DESTDIR={dest}",
            f"PY={sys.executable}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_install_into_a_staging_folder_and_again_as_an_upgrade(tmp_path: Path) -> None:
    dest = tmp_path / "stage"
    done = _install(dest)
    assert done.returncode == 0, done.stderr[-3000:]
    conf = dest / "etc/tally/tally.toml"
    assert conf.read_bytes() == (REPO / "systemd/tally.toml").read_bytes()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert f"installed {conf}" in done.stdout

    unit = (dest / "etc/systemd/system/tally.service").read_text(encoding="utf-8")
    assert "ExecStart=/opt/tally/bin/tally run --config /etc/tally/tally.toml" in unit.splitlines()
    assert (dest / "etc/systemd/system/tally-tui@.service").is_file()
    assert (dest / "usr/lib/sysusers.d/tally.conf").read_bytes() == (
        REPO / "systemd/tally.sysusers"
    ).read_bytes()
    assert (dest / "usr/lib/tmpfiles.d/tally.conf").read_bytes() == (
        REPO / "systemd/tally.tmpfiles"
    ).read_bytes()
    assert (dest / "opt/tally/share/doc/tally/README.md").is_file()
    assert os.readlink(dest / "usr/local/bin/tally") == "/opt/tally/bin/tally"

    # The staged scripts already name their final home, and the package is a real copy.
    venv = dest / "opt/tally"
    shebang = (venv / "bin/tally").read_text(encoding="utf-8").splitlines()[0]
    assert re.fullmatch(r"#!/opt/tally/bin/python3?", shebang)
    probe = subprocess.run(
        [
            str(venv / "bin/python"),
            "-c",
            "import agent, importlib.metadata as m;"
            " print(m.version('tally')); print(agent.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    version, where = probe.stdout.splitlines()
    assert version == "0.1.0"
    assert where.startswith(str(venv / "lib"))
    helped = subprocess.run(
        [str(venv / "bin/python"), "-m", "agent.cli", "status", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert helped.returncode == 0 and helped.stdout.startswith("usage: tally status")

    # The unit runs the daemon optimised; its byte code waits where the installed tree looks.
    assert "Environment=PYTHONOPTIMIZE=2 PYTHONPYCACHEPREFIX=/opt/tally/pycache" in unit
    staged = next((venv / "lib").glob("python3*/site-packages/agent/daemon/runtime.py"))
    final = Path("/", staged.relative_to(dest))
    cfile = dest / bytecode.cache_file(final, Path("/opt/tally/pycache")).relative_to("/")
    assert bytecode.current(staged.read_bytes(), cfile)
    assert "byte code for the optimised daemon under /opt/tally/pycache" in done.stdout

    # An upgrade keeps an edited config and puts the new sample beside it.
    edited = conf.read_text(encoding="utf-8").replace('id = "wb1"', 'id = "wb7"')
    conf.write_text(edited, encoding="utf-8")
    again = _install(dest)
    assert again.returncode == 0, again.stderr[-3000:]
    assert conf.read_text(encoding="utf-8") == edited
    assert (dest / "etc/tally/tally.toml.new").read_bytes() == (
        REPO / "systemd/tally.toml"
    ).read_bytes()
    assert f"kept your {conf}; the new sample is {conf}.new" in again.stdout
    assert re.search(r"byte code for the optimised daemon .*: 0 written, \d+ current", again.stdout)

"""The systemd units verify cleanly, rate 2.0 or better, and keep the serial ports reachable."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNITS = ["tally.service", "tally-tui@.service"]

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package: systemd)",
)


def _staged(tmp_path: Path) -> list[Path]:
    """Copies of the units whose ExecStart points at an executable that exists here."""
    staged = []
    for name in [*UNITS, "tally-tui@tty1.service"]:
        src = SYSTEMD / name.replace("@tty1", "@")
        text = src.read_text(encoding="utf-8").replace("/opt/tally/bin/tally", sys.executable)
        dest = tmp_path / name
        dest.write_text(text, encoding="utf-8")
        staged.append(dest)
    return staged


def _analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


@needs_analyze
def test_units_verify_without_a_warning(tmp_path: Path) -> None:
    staged = _staged(tmp_path)
    done = _analyze("verify", "--man=no", *[f"./{p.name}" for p in staged], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # verify exits 0 on unknown or misspelt settings; they show up as messages naming the file.
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "tally" in line]
    assert ours == []


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt setting is reported."""
    staged = _staged(tmp_path)[0]
    staged.write_text(
        staged.read_text(encoding="utf-8").replace("Type=notify", "Type=notifyy"), "utf-8"
    )
    done = _analyze("verify", "--man=no", f"./{staged.name}", cwd=tmp_path)
    assert "Failed to parse service type" in done.stderr


@needs_analyze
@pytest.mark.parametrize("unit", ["tally.service", "tally-tui@tty1.service"])
def test_security_exposure_is_at_most_2(tmp_path: Path, unit: str) -> None:
    _staged(tmp_path)
    done = _analyze("security", "--offline=yes", "--threshold=20", f"./{unit}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found is not None, done.stdout[-500:]
    assert float(found.group(1)) <= 2.0


def _settings(name: str) -> list[tuple[str, str]]:
    pairs = []
    for line in (SYSTEMD / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            pairs.append((key, value))
    return pairs


def test_the_hardening_keeps_the_serial_ports_reachable() -> None:
    settings = _settings("tally.service")
    assert ("SupplementaryGroups", "dialout") in settings
    assert ("DevicePolicy", "closed") in settings
    allowed = [v for k, v in settings if k == "DeviceAllow"]
    assert allowed == ["char-ttyS rw", "char-ttyUSB rw", "char-ttyACM rw"]
    keys = {k for k, _ in settings}
    # Each of these would hide /dev/tty* or the dialout group from the daemon.
    assert keys.isdisjoint({"PrivateDevices", "PrivateUsers", "DynamicUser"})


def test_the_service_is_notify_with_a_watchdog_and_the_token_as_credential() -> None:
    settings = dict(_settings("tally.service"))
    assert {
        k: settings[k] for k in ("Type", "WatchdogSec", "Restart", "User", "LoadCredential")
    } == {
        "Type": "notify",
        "WatchdogSec": "30s",
        "Restart": "always",
        "User": "tally",
        "LoadCredential": "token:/etc/tally/token",
    }
    assert (settings["StateDirectory"], settings["RuntimeDirectory"]) == ("tally", "tally")
    assert settings["ConfigurationDirectory"] == "tally"


@pytest.mark.skipif(os.geteuid() != 0, reason="creating files owned by tally needs root")
@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers / systemd-tmpfiles are not installed (Debian package: systemd)",
)
def test_sysusers_and_tmpfiles_in_a_fresh_root(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n")
    (etc / "shadow").touch()
    (etc / "gshadow").touch()
    (etc / "tally").mkdir()
    (etc / "tally" / "tally.toml").write_text("[terminal]\n")
    for tool, conf in (
        ("systemd-sysusers", "tally.sysusers"),
        ("systemd-tmpfiles", "tally.tmpfiles"),
    ):
        args = [tool, f"--root={tmp_path}"]
        if tool == "systemd-tmpfiles":
            args.append("--create")
        done = subprocess.run([*args, str(SYSTEMD / conf)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    users = {
        line.split(":")[0]: line.split(":") for line in (etc / "passwd").read_text().splitlines()
    }
    groups = {
        line.split(":")[0]: line.split(":") for line in (etc / "group").read_text().splitlines()
    }
    uid, gid = int(users["tally"][2]), int(users["tally"][3])
    assert users["tally"][5:] == ["/var/lib/tally", "/usr/sbin/nologin"]
    assert int(groups["tally"][2]) == gid
    assert groups["dialout"][3] == "tally"

    def owner(path: Path) -> tuple[str, int, int]:
        st = path.stat()
        return (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)

    assert owner(etc / "tally") == ("0o750", 0, gid)
    assert owner(etc / "tally" / "token") == ("0o600", 0, 0)
    assert owner(etc / "tally" / "tally.toml") == ("0o640", 0, gid)
    assert owner(tmp_path / "var" / "lib" / "tally") == ("0o750", uid, gid)

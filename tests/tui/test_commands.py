"""`tally tui` / `tally board` stay light to import and read only what they need from the config."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.cli.commands.tui import client_settings
from agent.config import BoardConfig
from tests.daemon import tally, write_config


def test_the_commands_do_not_import_textual_until_run() -> None:
    code = (
        "import sys, agent.cli; agent.cli.build_parser(); "
        "print(sorted(m for m in ('textual', 'tui.app') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


def test_settings_come_from_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, terminal="wb2")
    text = path.read_text(encoding="utf-8").replace("[terminal]\n", '[terminal]\nlanguage = "en"\n')
    path.write_text(text, encoding="utf-8")
    args = argparse.Namespace(config=str(path), language=None)
    assert client_settings(args) == {
        "socket_path": str(tmp_path / "tally.sock"),
        "language": "en",
        "tz": ZoneInfo("Asia/Shanghai"),
        "terminal": "wb2",
        "board": BoardConfig(),  # no [board]: the standard texts
    }


def test_a_missing_config_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    result = tally("tui", "--config", str(tmp_path / "nope.toml"))
    assert (result.returncode, result.stderr) == (
        2,
        f"{tmp_path / 'nope.toml'}: no such file; pass the path of a tally.toml\n",
    )

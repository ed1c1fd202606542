"""The real `tally tui` in tmux against the real daemon reading the scale simulator."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon, scale_simulator, wait_for, write_config
from tests.tui.tmux import Tmux

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="needs tmux (.ci/run installs the Debian package)"
)


@pytest.fixture
def simulator() -> Iterator[str]:
    """The scale simulator on a pseudo-terminal."""
    with scale_simulator(
        "--protocol",
        "xk3190",
        "--weights",
        "15000,46000",
        "--empty-s",
        "1",
        "--ramp-s",
        "1",
        "--settle-s",
        "2",
        "--noise-kg",
        "2",
        "--seed",
        "3",
    ) as port:
        yield port


def test_live_weight_moves_and_a_weighing_appears(tmp_path: Path, simulator: str) -> None:
    config = write_config(
        tmp_path,
        f'[[scale]]\nname = "scale1"\nport = "{simulator}"\nprotocol = "xk3190"\n'
        "hold_s = 1.0\nmin_samples = 3\nclear_s = 0.5\n",
    )
    with Daemon(config):
        tui = Tmux(
            [sys.executable, "-m", "agent.cli", "tui", "--config", str(config), "--language", "en"]
        )
        try:
            digit_rows: set[str] = set()

            def seen() -> bool:
                lines = tui.screen().splitlines()
                if len(lines) > 4:
                    digit_rows.add("\n".join(lines[1:4]))  # the three rows of the large digits
                return len(digit_rows) >= 3 and bool(
                    re.search(r"last weighing: \d{2},\d{3} kg", "\n".join(lines))
                )

            wait_for(seen, timeout=60, interval=0.3)
            screen = tui.screen()
            assert "● connected" in screen
            assert "scale1  online" in screen
        finally:
            tui.close()

"""`tally tui`: the operators' terminal UI, a client of the running daemon."""

from __future__ import annotations

import argparse
from typing import Any

from agent.config import DEFAULT_PATH

HELP = "the operators' terminal UI (weighbridge, loading, yard, today, health)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally tui`."""
    p.add_argument(
        "--config",
        default=None,
        help=f"the tally.toml naming the socket and language (default {DEFAULT_PATH}; "
        "built-in defaults when that file does not exist)",
    )
    p.add_argument("--language", choices=("zh", "en"), help="override terminal.language")


def client_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Socket, language, time zone, terminal id and the exception board's texts from the config
    (defaults without one)."""
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from agent import config as cfg

    if args.config is None and not Path(DEFAULT_PATH).exists():
        config = cfg.Config()
    else:
        config = cfg.load(args.config or DEFAULT_PATH, check_paths=False)
    terminal = config.terminal
    return {
        "board": config.board,
        "socket_path": terminal.socket,
        "language": args.language or terminal.language,
        "tz": ZoneInfo(terminal.timezone),
        "terminal": terminal.id,
    }


def main(args: argparse.Namespace) -> int:
    """Run the UI until the operator quits; capture goes on in the daemon regardless."""
    from tui.app import TallyApp

    TallyApp(**client_settings(args)).run()
    return 0

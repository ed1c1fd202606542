"""`tally board`: the drivers' queue display, a read-only client of the running daemon."""

from __future__ import annotations

import argparse

from agent.cli.commands.tui import add_arguments as _tui_arguments

HELP = "the drivers' public display: queue order, waits, stopped packers"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The same options as `tally tui`."""
    _tui_arguments(p)


def main(args: argparse.Namespace) -> int:
    """Show the board until quit (q or Ctrl+Q)."""
    from agent.cli.commands.tui import client_settings
    from tui.board import BoardApp

    BoardApp(**client_settings(args)).run()
    return 0

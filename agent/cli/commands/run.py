"""`tally run`: the daemon."""

from __future__ import annotations

import argparse

from agent.config import DEFAULT_PATH

HELP = "run the daemon (owns the devices and the database)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally run`."""
    p.add_argument("--config", default=DEFAULT_PATH, help="the tally.toml to use")


def main(args: argparse.Namespace) -> int:
    """Validate the config, then run the daemon until stopped."""
    from agent import config as cfg
    from agent.cli.services import factories
    from agent.daemon import runtime

    config = cfg.load(args.config)
    return runtime.serve(config, factories())

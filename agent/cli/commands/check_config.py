"""`tally check-config`: validate a configuration file."""

from __future__ import annotations

import argparse

HELP = "validate a config file; print ok or every problem (exit 2)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally check-config`."""
    p.add_argument("file", help="the tally.toml to check")


def main(args: argparse.Namespace) -> int:
    """Print `ok` or raise ConfigError (the CLI prints each problem and exits 2)."""
    from agent import config as cfg

    cfg.load(args.file)
    print("ok")
    return 0

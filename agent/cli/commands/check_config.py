"""`tally check-config`: validate a configuration file."""

from __future__ import annotations

import argparse

HELP = "validate a config file; print ok or every problem (exit 2)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally check-config`."""
    p.add_argument("file", help="the tally.toml to check")


def main(args: argparse.Namespace) -> int:
    """Print `ok` or raise ConfigError (the CLI prints each problem and exits 2).

    Besides the file itself, the files it names that `tally run` loads at start (token files,
    TLS certificates and keys) are loaded too, so what passes here does not stop the daemon.
    """
    from agent import config as cfg

    config = cfg.load(args.file)
    problems: list[str] = []
    if config.sync is not None:
        from sync.sender.forwarder import check_files

        problems.extend(check_files(config.sync))
    if config.peers or config.feed is not None:
        from sync.replica.service import check_files as check_replica_files

        problems.extend(check_replica_files(config.peers, config.feed))
    if problems:
        raise cfg.ConfigError(problems)
    print("ok")
    return 0

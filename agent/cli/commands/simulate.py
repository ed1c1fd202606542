"""`tally simulate`: the simulated devices (scale on a pseudo-terminal, packer on Modbus)."""

from __future__ import annotations

import argparse
import importlib

HELP = "run a simulated scale indicator or packer for tests and demos"

# (device, module): each module has add_arguments(parser) and main(args) -> int.
SIMULATORS = [("scale", "drivers.scale_sim"), ("packer", "drivers.packer_sim")]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One subcommand per simulator present in this build."""
    sub = p.add_subparsers(dest="device", metavar="DEVICE", required=True)
    for name, module_name in SIMULATORS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        sp = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sp)
        sp.set_defaults(_sim=module.main)


def main(args: argparse.Namespace) -> int:
    """Run the chosen simulator."""
    return int(args._sim(args))

"""`tally simulate`: the simulated devices (scale on a pseudo-terminal, packer on Modbus)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from drivers import packer_sim, scale_sim

if TYPE_CHECKING:
    from drivers.packer_sim import SimPoint

HELP = "run a simulated scale indicator or packer for tests and demos"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One subcommand per simulator."""
    sub = p.add_subparsers(dest="device", metavar="DEVICE", required=True)
    sp = sub.add_parser("scale", help=scale_sim.HELP, description=scale_sim.HELP)
    scale_sim.add_arguments(sp)
    sp.set_defaults(_sim=scale_sim.main)
    sp = sub.add_parser("packer", help=packer_sim.HELP, description=packer_sim.HELP)
    packer_sim.add_arguments(sp)
    sp.set_defaults(_sim=_packer)


def main(args: argparse.Namespace) -> int:
    """Run the chosen simulator."""
    return int(args._sim(args))


def _packer(args: argparse.Namespace) -> int:
    """The packer simulator with the units and points of `--map` (its own map without)."""
    return packer_sim.main(args, load_map(args.map) if args.map else None)


def load_map(path: str) -> list[tuple[int, tuple[SimPoint, ...]]]:
    """(unit id, points) of every [[packer]] in a tally.toml; raise ConfigError when bad."""
    import tomllib

    from agent.config import ConfigError, parse

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the map ({exc.strerror})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: is not valid TOML ({exc}); fix the syntax"]) from None
    config = parse({"terminal": {"id": "sim"}, "packer": data.get("packer", [])}, path)
    units: dict[int, tuple[SimPoint, ...]] = {}
    for p in config.packers:
        units.setdefault(
            p.device_id,
            tuple(packer_sim.SimPoint(pt.role, pt.point(), pt.modulus) for pt in p.points),
        )
    if not units:
        raise ConfigError([f"{path}: has no [[packer]] with [[packer.point]] tables"])
    return sorted(units.items())

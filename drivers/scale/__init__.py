"""Weighing-indicator formats (docs/devices.md): pure splitters and parsers, one per module.

Every module of this package that is a format registers itself in `registry.PROTOCOLS` when
imported; importing the package imports them all, so a new format is one new module.
"""

import importlib
import pkgutil

from drivers.scale.reading import Corrupt, Item, Reading, Splitter, to_kg
from drivers.scale.registry import (
    PROTOCOLS,
    Protocol,
    UnknownProtocol,
    encode,
    make_splitter,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "PROTOCOLS",
    "Corrupt",
    "Item",
    "Protocol",
    "Reading",
    "Splitter",
    "UnknownProtocol",
    "encode",
    "make_splitter",
    "register",
    "to_kg",
]

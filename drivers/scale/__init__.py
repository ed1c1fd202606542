"""Weighing-indicator formats (docs/devices.md): pure splitters and parsers, one per module."""

from drivers.scale.reading import Corrupt, Item, Reading, Splitter, to_kg
from drivers.scale.registry import PROTOCOLS, UnknownProtocol, encode, make_splitter

__all__ = [
    "PROTOCOLS",
    "Corrupt",
    "Item",
    "Reading",
    "Splitter",
    "UnknownProtocol",
    "encode",
    "make_splitter",
    "to_kg",
]

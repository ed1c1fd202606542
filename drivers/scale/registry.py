"""Indicator formats by name: each format module registers itself here when it is imported."""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from drivers.errors import DriverError
from drivers.scale.reading import Splitter


class Encoder(typing.Protocol):
    """Makes one frame of a format for the simulator and the tests."""

    def __call__(
        self,
        weight: Decimal | None,
        *,
        stable: bool = True,
        net: bool = False,
        checksum: bool = True,
        parity: bool = False,
    ) -> bytes:
        """One frame showing `weight` in kg (None: out of range, ValueError where the format
        cannot say so); `checksum=False` leaves out an optional checksum, `parity=True` sets
        bit 7 as a 7E1 line read at 8N1 shows it (both ignored where the format has none)."""
        ...  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Protocol:
    """One format: its name (the `protocol` config value), how to split and parse its bytes,
    how to make its frames, and what it carries.

    `splitter(checksum)` makes a fresh splitter (`checksum=False` accepts frames without an
    optional checksum); `optional_checksum` says the format can be sent without one (the
    config's `checksum = false`, tried by `tally scale detect`); `seven_bit` that it is sent
    with 7 data bits (the only formats detect tries on a 7E1 line); `repeats` how many times
    an indicator sends each displayed value; `order` its place in lists and in detection
    (ties: the one registered first).
    """

    name: str
    splitter: Callable[[bool], Splitter]
    encode: Encoder
    has_stable_flag: bool
    has_checksum: bool
    optional_checksum: bool = False
    seven_bit: bool = False
    repeats: int = 1
    order: int = 100


PROTOCOLS: dict[str, Protocol] = {}


def register(protocol: Protocol) -> Protocol:
    """Add a format to PROTOCOLS (kept in `order`); ValueError when the name is taken."""
    if protocol.name in PROTOCOLS:
        raise ValueError(f"scale protocol {protocol.name!r} is registered twice")
    ranked = sorted([*PROTOCOLS.values(), protocol], key=lambda p: p.order)
    PROTOCOLS.clear()
    PROTOCOLS.update((p.name, p) for p in ranked)
    return protocol


def names() -> list[str]:
    """The registered format names, in their order."""
    return list(PROTOCOLS)


class UnknownProtocol(DriverError, ValueError):
    """The protocol name is not one of PROTOCOLS."""


def get(protocol: str) -> Protocol:
    """The format called `protocol`; UnknownProtocol naming the known ones when there is none."""
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise UnknownProtocol(
            f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}"
        ) from None


def make_splitter(protocol: str, *, checksum: bool = True) -> Splitter:
    """A fresh splitter for `protocol`; `checksum=False` accepts Toledo frames without byte 18."""
    return get(protocol).splitter(checksum)


def encode(
    protocol: str,
    weight: Decimal | None,
    *,
    stable: bool = True,
    net: bool = False,
    checksum: bool = True,
    parity: bool = False,
) -> bytes:
    """One frame of `protocol` showing `weight` in kg (None = out of range where expressible)."""
    return get(protocol).encode(weight, stable=stable, net=net, checksum=checksum, parity=parity)

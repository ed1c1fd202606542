"""Indicator formats by name: each is one module with a splitter class and an encoder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from drivers.scale import ascii as ascii_format
from drivers.scale import toledo, xk3190, xk3190_eq
from drivers.scale.reading import Splitter


@dataclass(frozen=True, slots=True)
class Protocol:
    """One format: its splitter factory (taking the checksum switch) and whether it has flags."""

    name: str
    splitter: Callable[[bool], Splitter]
    has_stable_flag: bool
    has_checksum: bool


PROTOCOLS: dict[str, Protocol] = {
    "toledo": Protocol("toledo", toledo.ToledoSplitter, True, True),
    "xk3190": Protocol("xk3190", xk3190.Xk3190Splitter, False, True),
    "xk3190-eq": Protocol("xk3190-eq", xk3190_eq.EqSplitter, False, False),
    "ascii": Protocol("ascii", ascii_format.AsciiSplitter, True, False),
}


class UnknownProtocol(ValueError):
    """The protocol name is not one of PROTOCOLS."""


def make_splitter(protocol: str, *, checksum: bool = True) -> Splitter:
    """A fresh splitter for `protocol`; `checksum=False` accepts Toledo frames without byte 18."""
    try:
        return PROTOCOLS[protocol].splitter(checksum)
    except KeyError:
        raise UnknownProtocol(
            f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}"
        ) from None


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
    if protocol == "toledo":
        return toledo.encode(
            weight if weight is not None else Decimal(0),
            stable=stable,
            net=net,
            overload=weight is None,
            checksum=checksum,
            parity=parity,
        )
    if protocol == "ascii":
        return ascii_format.encode(weight, stable=stable, net=net)
    if weight is None:
        raise ValueError(f"{protocol} cannot express out of range")
    if protocol == "xk3190":
        return xk3190.encode(weight)
    if protocol == "xk3190-eq":
        return xk3190_eq.encode(weight)
    raise UnknownProtocol(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")

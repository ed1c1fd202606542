"""What one `tally ctl` operation is: its name, options and how it becomes an API request."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Arg:
    """One option of a ctl operation, passed to argparse as is."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CtlOp:
    """A command-line operation: its name, options and how it becomes an API request."""

    name: str
    help: str
    api_op: str
    args: tuple[Arg, ...] = ()
    to_request: Callable[[argparse.Namespace], dict[str, Any]] | None = None

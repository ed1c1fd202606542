"""Tally agent: configuration, pure domain, the daemon's I/O shells and the command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tally")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

"""Tally agent: configuration, pure domain, the daemon's I/O shells and the command line."""

# The package's version, read by setuptools at build time (pyproject.toml: dynamic). Written here
# rather than read back from the installed metadata: importlib.metadata brings email and zipfile
# into every daemon for a string.
__version__ = "0.1.0"

"""Tally agent: domain, storage, daemon, local API and command line."""

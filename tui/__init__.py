"""Textual operator UI, a client of the daemon's local API."""

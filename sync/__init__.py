"""Sync: the sender (outbox to server) and the reference central receiver."""

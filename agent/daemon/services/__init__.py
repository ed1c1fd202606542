"""Daemon services, one per device kind and per domain: each folds live events and answers its ops."""

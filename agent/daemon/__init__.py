"""The daemon's I/O shells: runtime, store, local API, alerts, health and one service per capability."""

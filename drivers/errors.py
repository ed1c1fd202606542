"""Errors a device or simulator setup can cause: one clear sentence saying what to do."""


class DriverError(Exception):
    """A device cannot be used as asked; the message is one sentence naming what to change."""


class SimulatorUsageError(DriverError):
    """A simulator's option is bad or its address is taken (exit code 2 on the command line)."""

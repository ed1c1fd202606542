"""Errors a user can cause on the command line: one sentence, exit code 2."""


class UsageError(Exception):
    """Bad usage or bad input: printed as one sentence, exit code 2."""

"""Errors a user can cause on the command line: one sentence, exit code 2."""


class UsageError(Exception):
    """Bad usage or bad input: printed as one sentence, exit code 2."""


class InvalidInput(UsageError):
    """Text or a number that breaks the input rule (agent.domain.text_rules): one sentence."""

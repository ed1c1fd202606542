"""The one tree of "one clear sentence" errors: each names the problem and what to do.

TallyError
├── UsageError      bad usage or input on the command line (exit 2)
├── ConfigError     the configuration cannot be used; one line per problem (exit 2)
├── Refused         an operator command or request was refused (the API answers ok=false)
│                   (Refusal, WindowError, CheckError, PlateError, CommandError, RequestRefused)
├── StoreError      the database cannot be used (exit 2; DiskFullError)
└── Unavailable     something the command needs does not answer or cannot start (exit 1)
                    (DaemonUnavailable, StartupError)

Errors of the drivers (drivers.errors.DriverError) sit below this layer and are mapped to
exit code 2 by the command line.
"""


class TallyError(Exception):
    """One clear sentence naming the problem and what to do; `exit_code` on the command line."""

    exit_code = 2


class UsageError(TallyError):
    """Bad usage or bad input: printed as one sentence, exit code 2."""


class ConfigError(TallyError):
    """The configuration file cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Refused(TallyError):
    """An operator command or request cannot be accepted; the message says why."""


class Unavailable(TallyError):
    """Something the command needs does not answer or cannot start (exit code 1)."""

    exit_code = 1


class InvalidInput(UsageError):
    """Text or a number that breaks the input rule (agent.domain.text_rules): one sentence."""

"""Test launcher: the real `tally` command line with the test hooks added to the service table.

`python -m tests.daemon_main run --config FILE` is `tally run --config FILE` plus tests.hooks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import agent.cli.services
from agent.cli import main
from agent.daemon.runtime import ServiceFactory
from tests import hooks


def run(argv: Sequence[str]) -> int:
    """Run the command line with `hooks.build` appended to the daemon's service factories."""
    product = agent.cli.services.factories

    def factories() -> list[ServiceFactory]:
        return [*product(), hooks.build]

    agent.cli.services.factories = factories
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

"""Hooks for whole-process tests, installed only by the test launcher (tests.daemon_main).

- SIGUSR2 blocks the daemon's event loop with `time.sleep` for $TALLY_TEST_BLOCK_S seconds
  (default 5), as a wedged loop would: the watchdog pings must stop meanwhile.
- The local API op `debug.append {"kind", "data"}` appends one event and answers with its
  envelope only once it is stored (the disk-full test uses it as an operator command).

They live in tests/ so nothing in the installed product can turn them on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from agent.daemon.api import CommandError

if TYPE_CHECKING:
    from agent.daemon.runtime import Context, Service

log = logging.getLogger("tally.testhooks")


def build(ctx: Context) -> list[Service]:
    """A service factory: install the hooks on the running loop and the local API."""
    block_s = float(os.environ.get("TALLY_TEST_BLOCK_S", "5"))

    def block() -> None:
        log.warning("test hook: blocking the event loop for %.1f s", block_s)
        time.sleep(block_s)
        log.warning("test hook: event loop unblocked")

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, block)

    async def append(req: dict[str, Any]) -> Any:
        kind, data = req.get("kind", "test.note"), req.get("data", {})
        if not isinstance(kind, str) or not kind.startswith("test.") or not isinstance(data, dict):
            raise CommandError("debug.append needs kind 'test.*' and data as a JSON object")
        ev = await ctx.writer.append(kind, data)
        return ev.to_dict()

    ctx.api.register("debug.append", append)
    log.warning("test hooks are enabled (tests.daemon_main)")
    return []

"""Wakes the pull feed's waiting long-polls when something new is stored; free of Starlette, so
a daemon that only pulls from its peers never imports the feed's web stack."""

from __future__ import annotations

import asyncio


class Notifier:
    """Wakes waiting long-polls when something was stored; `bump` may be called from any
    thread once `bind` gave it the loop."""

    def __init__(self) -> None:
        self.version = 0
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: set[asyncio.Future[None]] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the waiters run on."""
        self._loop = loop

    def bump(self) -> None:
        """Something new is held: wake every waiter (thread-safe once bound; on the loop,
        the first call binds it)."""
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                return
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def close(self) -> None:
        """The server is stopping: answer every waiting long-poll now (on the loop)."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        self.version += 1
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait(self, version: int, timeout: float) -> None:
        """Return when the version passed `version` or after `timeout` seconds."""
        if self.version != version or timeout <= 0:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        # not wait_for: on 3.11 it can swallow a cancellation that races the wake-up
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

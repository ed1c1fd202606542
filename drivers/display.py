"""Outdoor weight displays (大屏): re-emit a live weight to a serial port in a scale format.

Frames come from the scale encoders (drivers/scale/), so a display reads exactly what an
indicator of that format would send. While the scale is offline the display is blanked:
Toledo and ASCII send their out-of-range frame (shown as dashes or blank), XK3190 cannot
express it and sends nothing, which blanks such displays after their own timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from drivers.scale import registry
from drivers.serial_scale import PortError, PortSettings, open_port

PROTOCOLS = ("toledo", "xk3190", "ascii")


@dataclass(frozen=True, slots=True)
class Shown:
    """What the display should show: a weight in kg (None = blank) and its stable flag."""

    weight: Decimal | None
    stable: bool = True


def frame(protocol: str, shown: Shown) -> bytes:
    """One frame of `protocol` for `shown` (b"" where the format cannot blank)."""
    if shown.weight is None:
        if protocol == "xk3190":
            return b""
        return registry.encode(protocol, None, stable=False)
    return registry.encode(protocol, shown.weight, stable=shown.stable)


class SerialDisplay:
    """Writes `source()` to the port `rate_hz` times a second; reopens the port by itself."""

    def __init__(
        self,
        settings: PortSettings,
        protocol: str,
        rate_hz: float,
        on_state: Callable[[bool, str], Any] | None = None,
        backoff_max_s: float = 30.0,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"a display speaks {', '.join(PROTOCOLS)}, not {protocol!r}")
        self.settings = settings
        self.protocol = protocol
        self.interval_s = 1.0 / rate_hz
        self.on_state = on_state
        self.backoff_max_s = backoff_max_s
        self.frames = 0

    async def _state(self, online: bool, reason: str) -> None:
        if self.on_state is not None:
            result = self.on_state(online, reason)
            if asyncio.iscoroutine(result):
                await result

    async def run(self, source: Callable[[], Shown]) -> None:
        """Send frames until cancelled."""
        delay = 1.0
        while True:
            try:
                port = await asyncio.to_thread(open_port, self.settings, 1.0)
            except PortError as exc:
                await self._state(False, str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            delay = 1.0
            await self._state(True, "")
            try:
                while True:
                    data = frame(self.protocol, source())
                    if data:
                        await asyncio.to_thread(port.write, data)
                        self.frames += 1
                    await asyncio.sleep(self.interval_s)
            except (OSError, ValueError) as exc:
                await self._state(False, f"lost {self.settings.url} ({exc})")
            except Exception as exc:  # pyserial's SerialException is not an OSError
                await self._state(False, f"lost {self.settings.url} ({exc})")
            finally:
                with contextlib.suppress(Exception):
                    port.close()

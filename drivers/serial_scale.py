"""The serial scale driver: any pyserial URL, frames split in a pure splitter, reconnects alone."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import select
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import serial

from drivers.errors import DriverError
from drivers.scale import PROTOCOLS, Item, Reading, make_splitter
from drivers.ticks import GRID_S, next_tick, on_grid, sleep_until

READ_TIMEOUT_S = 0.1
READ_CHUNK = 4096  # bytes one wake-up of the loop takes from a port at most
# While frames flow, a port is read once a tick of the daemon's grid, every port on the same
# ticks: one wake-up a tenth of a second for all its scales, instead of one per frame and port
# (a wake-up is most of what a frame costs; docs/performance.md).
READ_GRID_S = GRID_S
# A scale with nothing to watch but the next change (an empty deck at zero, a weighed load still
# on it) is read on this coarser grid, five times fewer wake-ups for the same frames; the first
# frame of a change brings it back to READ_GRID_S (docs/performance.md, "An empty deck is read twice a
# second").
QUIET_GRID_S = 0.5
RETRY_BEAT_S = 1.0  # a port's next try, once a second or more away, is on a whole second
_SILENT = TimeoutError("silence")  # put on the queue by the silence timer
DETECT_BAUDS = (9600, 2400, 1200, 4800, 19200)
# (bytesize, parity, stopbits); 7E1 is how Mettler Toledo terminals usually run.
DETECT_FRAMINGS = ((8, "N", 1), (7, "E", 1), (8, "E", 1), (8, "O", 1))


@dataclass(frozen=True, slots=True)
class PortSettings:
    """Where and how to open the port (a device path or any pyserial URL)."""

    url: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1


@dataclass(frozen=True, slots=True)
class Online:
    """The port is open and valid frames arrive."""


@dataclass(frozen=True, slots=True)
class Offline:
    """The port could not be opened, was lost, or stayed silent; `reason` says which."""

    reason: str


@dataclass(frozen=True, slots=True)
class Frame:
    """One item from the splitter (a reading or a corrupt marker), when its bytes arrived, and
    how many items that read of the port brought (a reader kept waiting gets every frame the
    port buffered meanwhile in one read)."""

    mono_ns: int
    item: Item
    batch: int = 1


DriverEvent = Online | Offline | Frame
Emit = Callable[[DriverEvent], Awaitable[None]]


class PortError(DriverError):
    """The port cannot be opened or read; the message names it and the cause."""


def open_port(settings: PortSettings, timeout: float = READ_TIMEOUT_S) -> Any:
    """Open the port exclusively (where the platform supports it); raise PortError."""
    try:
        port = serial.serial_for_url(
            settings.url,
            do_not_open=True,
            baudrate=settings.baudrate,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=settings.stopbits,
            timeout=timeout,
            exclusive=True,
        )
        port.open()
    except Exception as exc:  # SerialException, OSError, termios.error, ValueError alike
        raise PortError(_cannot_open(settings.url, _short(exc))) from None
    return port


def _cannot_open(url: str, why: str) -> str:
    return f"cannot open {url} ({why})"


def _short(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


class SerialScale:
    """Reads one indicator: `await run(emit)` forever, reconnecting with backoff.

    A port that disappears (read error, EOF) or sends no valid frame for `silence_s` is
    closed, reported `Offline`, and reopened after 0.5 s, then doubling to 10 s while it keeps
    failing. The event loop itself watches a local tty or pseudo-terminal and reads it without
    blocking (one wake-up per chunk, no thread); a URL port is read on a thread with a short
    timeout. Either way the loop never blocks on the port.
    """

    def __init__(
        self,
        settings: PortSettings,
        protocol: str,
        *,
        checksum: bool = True,
        silence_s: float = 2.0,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.splitter = make_splitter(protocol, checksum=checksum)
        self.silence_s = silence_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.online = False
        self.quiet = False  # read on QUIET_GRID_S: the owner says there is nothing to watch
        self._reader: LoopReader | None = None

    def _tick_s(self) -> float:
        """The grid the port is read on now: the silence watch falls on the same ticks."""
        return QUIET_GRID_S if self.quiet else READ_GRID_S

    def pace(self, quiet: bool) -> None:
        """Read the port on the quiet grid (True) or the read grid again (False); the owner
        calls it as it judges the frames (cheap when nothing changes)."""
        if quiet is self.quiet:
            return
        self.quiet = quiet
        if self._reader is not None:
            self._reader.pace(self._tick_s())

    async def run(self, emit: Emit) -> None:
        """Read until cancelled, emitting Online, Offline and Frame events."""
        delay = self.backoff_min_s
        while True:
            reason, had_frames = await self._session(emit)
            self.online = False
            await emit(Offline(reason))
            delay = self.backoff_min_s if had_frames else delay
            # a try a second or more away falls on a whole second: the scales that are gone try
            # in one wake-up (and a quick first try stays quick, on the grid)
            beat = RETRY_BEAT_S if delay >= RETRY_BEAT_S else GRID_S
            await sleep_until(on_grid(asyncio.get_running_loop().time() + delay, beat))
            delay = min(delay * 2, self.backoff_max_s)

    async def _session(self, emit: Emit) -> tuple[str, bool]:
        url = self.settings.url
        if "://" not in url and not os.path.exists(url):
            # an unplugged adapter's device is gone: say so without a thread (and its wake-ups)
            return _cannot_open(url, os.strerror(errno.ENOENT)), False
        try:
            port = await asyncio.to_thread(open_port, self.settings)
        except PortError as exc:
            return str(exc), False
        loop = asyncio.get_running_loop()
        # each chunk with the monotonic time its read returned
        queue: asyncio.Queue[tuple[int, bytes] | BaseException] = asyncio.Queue()
        stop = threading.Event()
        thread: threading.Thread | None = None
        fd = _loop_fd(port)
        reader: LoopReader | None = None
        self.quiet = False  # a new session reads on the read grid until told otherwise
        if fd is not None:
            reader = self._reader = LoopReader(fd, queue, loop)
            reader.watch()
        else:
            thread = threading.Thread(
                target=_read_loop, args=(port, queue, loop, stop), name="scale-reader", daemon=True
            )
            thread.start()
        self.splitter.reset()
        had_frames = False
        # One timer for the silence, moved lazily: a frame only notes its time, and the timer,
        # when it fires, sleeps on if a frame came meanwhile (a timeout per read cost a timer
        # per frame, 30 a second for two scales).
        last_frame = loop.time()
        timer: asyncio.TimerHandle | None = None

        def silence_check() -> None:
            nonlocal timer
            due = last_frame + self.silence_s
            if loop.time() >= due:
                queue.put_nowait(_SILENT)
            else:
                timer = loop.call_at(next_tick(due, self._tick_s()), silence_check)

        timer = loop.call_at(next_tick(last_frame + self.silence_s, self._tick_s()), silence_check)
        try:
            while True:
                data = await queue.get()
                if data is _SILENT:
                    if loop.time() < last_frame + self.silence_s:
                        # frames were waiting behind a slow emit (a commit on a busy PC) when
                        # the timer fired: they count, so the silence is not over
                        timer = loop.call_at(
                            next_tick(last_frame + self.silence_s, self._tick_s()), silence_check
                        )
                        continue
                    return f"no valid frame for {self.silence_s:g} s", had_frames
                if isinstance(data, BaseException):
                    return f"the port was lost ({_short(data)})", had_frames
                # the time the chunk was read: frames that waited behind a busy loop come in
                # one read, and the batch tells the capture's gap watch they were kept, not lost
                now_ns, chunk = data
                items = list(self.splitter.feed(chunk))
                for item in items:
                    if isinstance(item, Reading):
                        last_frame = loop.time()
                        had_frames = True
                        if not self.online:
                            self.online = True
                            await emit(Online())
                    await emit(Frame(now_ns, item, len(items)))
        finally:
            if timer is not None:
                timer.cancel()
            if reader is not None:
                reader.stop()
                self._reader = None
            stop.set()
            if thread is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(asyncio.to_thread(thread.join, 2.0))
            with contextlib.suppress(Exception):
                port.close()


def _loop_fd(port: Any) -> int | None:
    """The descriptor of a local tty or pseudo-terminal, which the event loop watches itself;
    None for a URL port (socket://, rfc2217://, spy://, ...), which a thread reads."""
    fd = getattr(port, "fd", None)
    return fd if type(port) is serial.Serial and isinstance(fd, int) else None


class LoopReader:
    """Reads a local port on the event loop without blocking, handing each chunk, stamped with
    the time it was read, to the session's queue.

    A port is watched (`add_reader`) and read when it has bytes, one wake-up of the loop per
    chunk. Once its bytes come faster than `FAST_GRIDS` ticks of the `READ_GRID_S` grid apart,
    the watch stops and the port is read on the grid's ticks instead: the same ticks for every
    port, so all of a terminal's fast scales share one wake-up a tenth of a second whatever
    their frame rates (a wake-up costs more than the frames it brings; docs/performance.md). A
    read on a tick takes every frame the port kept since the last; while the owner finds nothing
    to watch in the frames (`pace`), the ticks come every `QUIET_GRID_S` instead. After
    `IDLE_TICKS` ticks in a row with nothing, the port is watched again. A slow port (an
    indicator that sends a frame a second, or only when stable) is never read on ticks, which
    would wake the loop for nothing.

    An error or end of file (a pseudo-terminal whose other side closed, a USB adapter pulled)
    ends the session. So do `SPURIOUS_MAX` wake-ups of the watch in a row that find nothing to
    read: a port that keeps saying it has data and gives none would otherwise keep the loop busy
    for ever.
    """

    SPURIOUS_MAX = 50
    IDLE_TICKS = 2  # ticks in a row with nothing read before the port is watched again
    FAST_GRIDS = 1.5  # bytes closer than this many ticks apart move the port onto the grid

    def __init__(
        self,
        fd: int,
        queue: asyncio.Queue[tuple[int, bytes] | BaseException],
        loop: asyncio.AbstractEventLoop,
        grid_s: float = READ_GRID_S,
    ) -> None:
        self.fd = fd
        self.queue = queue
        self.loop = loop
        self.grid_s = grid_s
        self.pace_s = grid_s  # the ticks' interval now: grid_s, or coarser while quiet
        self.fast_s = self.FAST_GRIDS * grid_s
        self.empty = 0  # wake-ups of the watch in a row that found nothing
        self.idle = 0  # ticks in a row that read nothing
        self.woken = False  # the watch fired and handed its read to the next tick
        self.watching = False
        self.last_wake = -math.inf  # when the watch last fired
        self.timer: asyncio.TimerHandle | None = None

    def watch(self) -> None:
        """Wake up when the port has bytes."""
        self.loop.add_reader(self.fd, self)
        self.watching = True

    def stop(self) -> None:
        """Stop the watch and the ticks (the session ends)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.watching:
            self.loop.remove_reader(self.fd)
            self.watching = False

    def __call__(self) -> None:
        """The watch's callback: the port has bytes. Read them now, or, when they come fast,
        on the next tick and from then on on ticks."""
        now = self.loop.time()
        fast, self.last_wake = now - self.last_wake < self.fast_s, now
        if fast:
            self.loop.remove_reader(self.fd)
            self.watching = False
            self.woken = True
            self.idle = 0
            self._schedule()
            return
        got = self._read(True)
        if got:
            self.empty = 0
        elif got is False:
            self._woken_for_nothing()

    def _tick(self) -> None:
        """Read what the port holds; go on ticking, or watch a port gone quiet."""
        self.timer = None
        woken, self.woken = self.woken, False
        got = self._read(woken)
        if got is None:
            return
        if got:
            self.empty = self.idle = 0
            self._schedule()
        elif woken:
            if not self._woken_for_nothing():
                self.watch()
        else:
            self.idle += 1
            if self.idle >= self.IDLE_TICKS:
                self.watch()
            else:
                self._schedule()

    def _woken_for_nothing(self) -> bool:
        """Count a wake-up of the watch that found nothing; True when that ended the port."""
        self.empty += 1
        if self.empty < self.SPURIOUS_MAX:
            return False
        self._end(OSError("the port reports data but gives none; is it in use?"))
        return True

    def pace(self, pace_s: float) -> None:
        """Tick every `pace_s` from now on; a tick set further away than the new pace's next
        one is brought forward (the first frame of a load must not wait out a quiet tick)."""
        self.pace_s = pace_s
        if self.timer is not None:
            due = next_tick(self.loop.time(), pace_s)
            if due < self.timer.when():
                self.timer.cancel()
                self.timer = self.loop.call_at(due, self._tick)

    def _schedule(self) -> None:
        self.timer = self.loop.call_at(next_tick(self.loop.time(), self.pace_s), self._tick)

    def _read(self, woken: bool) -> bool | None:
        """Read what is there onto the queue: True, False when nothing was, None when the
        port ended (the error is on the queue).

        pyserial sets VMIN = VTIME = 0, so a tty with nothing to read gives 0 bytes rather
        than EAGAIN: that is the end of the file when the watch said there were bytes or the
        line is hung up."""
        try:
            data = os.read(self.fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._end(exc)
            return None
        if not data:
            if woken or _hung_up(self.fd):
                self._end(EOFError("the device closed the line"))
                return None
            return False
        self.queue.put_nowait((time.monotonic_ns(), data))
        return True

    def _end(self, error: BaseException) -> None:
        self.stop()
        self.queue.put_nowait(error)


def _hung_up(fd: int) -> bool:
    """Whether the other side of a tty has gone (a pseudo-terminal's closed, a USB adapter
    pulled), asked without waiting."""
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in poll.poll(0))


def _read_loop(
    port: Any,
    queue: asyncio.Queue[tuple[int, bytes] | BaseException],
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
) -> None:
    """Blocking reads with a short timeout, each chunk handed to the loop with the time it was
    read; an error ends the loop."""
    try:
        while not stop.is_set():
            data = port.read(max(1, port.in_waiting))
            if data:
                loop.call_soon_threadsafe(queue.put_nowait, (time.monotonic_ns(), data))
    except Exception as exc:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(queue.put_nowait, exc)


# --- detection ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Detection:
    """Port settings and a format that decoded cleanly."""

    settings: PortSettings
    protocol: str
    checksum: bool
    frames: int


def read_for(settings: PortSettings, seconds: float) -> bytes:
    """Everything the port sends within `seconds`; raise PortError if it cannot be opened."""
    port = open_port(settings)
    try:
        data = bytearray()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(serial.SerialException, OSError):
                data += port.read(max(1, port.in_waiting))
                continue
            break
        return bytes(data)
    finally:
        port.close()


def best_decode(data: bytes, protocols: Iterable[str]) -> tuple[str, bool, int] | None:
    """The format that decodes `data` cleanly with the most frames: (protocol, checksum, frames).

    Clean means at least 3 frames, no corrupt frame and at most one resync (the partial frame
    the capture started in).
    """
    best: tuple[str, bool, int] | None = None
    for protocol in protocols:
        for checksum in (True, False) if PROTOCOLS[protocol].optional_checksum else (True,):
            splitter = make_splitter(protocol, checksum=checksum)
            splitter.feed(data)
            clean = splitter.frames >= 3 and splitter.corrupt == 0 and splitter.resyncs <= 1
            if clean and (best is None or splitter.frames > best[2]):
                best = (protocol, checksum, splitter.frames)
    return best


def detect(
    url: str,
    seconds: float,
    *,
    bauds: Iterable[int] = DETECT_BAUDS,
    on_try: Callable[[PortSettings], None] | None = None,
) -> Detection | None:
    """Try the usual baud rates and framings with every format; the first clean one wins.

    A setting the port refuses is skipped; PortError when it refuses the first (plain 8N1).
    """
    opened = False
    for baud in bauds:
        for bytesize, parity, stopbits in DETECT_FRAMINGS:
            settings = PortSettings(url, baud, bytesize, parity, stopbits)
            if on_try is not None:
                on_try(settings)
            try:
                data = read_for(settings, seconds)
            except PortError:
                if not opened:
                    raise
                continue
            opened = True
            protocols = [p.name for p in PROTOCOLS.values() if p.seven_bit or bytesize != 7]
            found = best_decode(data, protocols)
            if found is not None:
                return Detection(settings, *found)
    return None

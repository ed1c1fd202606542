"""The serial driver through real pseudo-terminals and a loopback socket:// URL."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from drivers.scale import Reading, encode
from drivers.serial_scale import (
    DriverEvent,
    Frame,
    LoopReader,
    Offline,
    Online,
    PortSettings,
    SerialScale,
    best_decode,
)
from tests.drivers.pty_line import PtyLine

FRAME = encode("xk3190", Decimal(15_000))


class Recorder:
    """Collects driver events and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[DriverEvent] = []
        self.changed = asyncio.Event()

    async def __call__(self, event: DriverEvent) -> None:
        self.events.append(event)
        self.changed.set()

    def states(self) -> list[str]:
        """Online/offline transitions, consecutive duplicates removed."""
        out: list[str] = []
        for e in self.events:
            s = "online" if isinstance(e, Online) else "offline" if isinstance(e, Offline) else ""
            if s and (not out or out[-1] != s):
                out.append(s)
        return out

    def readings(self) -> list[Reading]:
        return [e.item for e in self.events if isinstance(e, Frame) and isinstance(e.item, Reading)]

    async def until(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def running(
    driver: SerialScale, consumer: Callable[[DriverEvent], Awaitable[None]]
) -> AsyncIterator[None]:
    """The driver running with `consumer` for the block; then cancelled and awaited."""
    task = asyncio.create_task(driver.run(consumer))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _driver(url: str, **kw: float) -> SerialScale:
    return SerialScale(
        PortSettings(url),
        "xk3190",
        silence_s=kw.get("silence_s", 1.0),
        backoff_min_s=0.05,
        backoff_max_s=kw.get("backoff_max_s", 0.2),
    )


async def test_readings_arrive_then_unplug_goes_offline_and_replug_comes_back(
    tmp_path: Path,
) -> None:
    line = PtyLine(tmp_path / "ttyUSB-scale", lambda: FRAME).plug()
    driver = _driver(str(line.link))
    rec = Recorder()
    try:
        async with running(driver, rec):
            await rec.until(lambda: len(rec.readings()) >= 5)
            assert rec.states() == ["online"]
            assert {r.weight for r in rec.readings()} == {Decimal(15_000)}
            # the event loop itself watches a local port: no thread per scale
            assert _readers() == 0
            line.unplug()
            await rec.until(lambda: rec.states() == ["online", "offline"])
            reason = next(e.reason for e in rec.events if isinstance(e, Offline))
            assert reason.startswith("the port was lost (")
            line.plug()
            await rec.until(lambda: rec.states() == ["online", "offline", "online"])
            before = len(rec.readings())
            await rec.until(lambda: len(rec.readings()) > before + 3)
    finally:
        line.unplug()


async def test_frames_waiting_behind_a_slow_consumer_are_not_silence(tmp_path: Path) -> None:
    # the daemon's consumer can take longer than silence_s for one frame (a commit on a busy
    # PC); the frames that arrived meanwhile are in the queue, so the scale is not silent
    line = PtyLine(tmp_path / "tty", lambda: FRAME).plug()
    rec = Recorder()
    slow = {"left": 1}

    async def consumer(event: DriverEvent) -> None:
        await rec(event)
        if isinstance(event, Frame) and slow["left"]:
            slow["left"] -= 1
            await asyncio.sleep(0.9)  # three times silence_s

    try:
        async with running(_driver(str(line.link), silence_s=0.3), consumer):
            await rec.until(lambda: len(rec.readings()) >= 20)
            assert rec.states() == ["online"]
    finally:
        line.unplug()


async def test_frames_that_waited_behind_a_slow_consumer_keep_the_times_they_were_read(
    tmp_path: Path,
) -> None:
    # stamped when the loop got to them, the frames read during a one-second stall all had
    # one moment: the capture saw a second of lost frames, then a burst, and began again
    line = PtyLine(tmp_path / "tty", lambda: FRAME, rate=20).plug()
    rec = Recorder()
    slow = {"left": 1}

    async def consumer(event: DriverEvent) -> None:
        await rec(event)
        if isinstance(event, Frame) and slow["left"]:
            slow["left"] -= 1
            await asyncio.sleep(1.0)

    try:
        async with running(_driver(str(line.link), silence_s=5.0), consumer):
            await rec.until(lambda: len(rec.readings()) >= 20)
            stamps = [e.mono_ns / 1e9 for e in rec.events if isinstance(e, Frame)]
            # frames 2 to 10 were read one by one while the consumer slept on the first
            assert stamps[9] - stamps[1] > 0.2, stamps[:10]
            assert all(b >= a for a, b in itertools.pairwise(stamps))
    finally:
        line.unplug()


async def test_each_frame_says_how_many_frames_its_read_brought(tmp_path: Path) -> None:
    # an indicator's frames that waited in the port for a late reader come in one read: the
    # capture needs their number to tell a late read from frames lost (agent/domain/capture.py)
    line = PtyLine(tmp_path / "tty", lambda: FRAME * 5, rate=4).plug()
    rec = Recorder()
    try:
        async with running(_driver(str(line.link), silence_s=5.0), rec):
            await rec.until(lambda: len(rec.readings()) >= 20)
            frames = [e for e in rec.events if isinstance(e, Frame)]
            per_read = collections.Counter(f.mono_ns for f in frames)
            assert [f.batch for f in frames] == [per_read[f.mono_ns] for f in frames]
            assert max(f.batch for f in frames) >= 2  # five frames are written at once
    finally:
        line.unplug()


async def test_frames_that_came_while_the_loop_was_blocked_come_in_one_read(
    tmp_path: Path,
) -> None:
    # a timeline replay or a slow commit can hold the event loop for a moment; the port keeps
    # the frames, and one read brings them all with their number, none lost
    line = PtyLine(tmp_path / "tty", lambda: FRAME, rate=20).plug()
    rec = Recorder()
    blocked = {"left": 1}

    async def consumer(event: DriverEvent) -> None:
        await rec(event)
        if isinstance(event, Frame) and blocked["left"]:
            blocked["left"] -= 1
            time.sleep(0.6)  # the whole loop stands still, the reader included

    try:
        async with running(_driver(str(line.link), silence_s=5.0), consumer):
            await rec.until(lambda: len(rec.readings()) >= 30)
        frames = [e for e in rec.events if isinstance(e, Frame)]
        # the read after the block (the first read may have brought more than the one frame
        # that blocked: they come after the block with that read's time and number)
        first = frames[0].batch
        assert {f.mono_ns for f in frames[:first]} == {frames[0].mono_ns}
        after = frames[first]
        assert after.batch >= 6  # 0.6 s at 20 frames/s, whatever the machine's delays
        assert len({f.mono_ns for f in frames[first : first + after.batch]}) == 1
        assert after.mono_ns - frames[0].mono_ns >= 0.6e9
    finally:
        line.unplug()


async def test_a_port_that_keeps_waking_the_loop_with_nothing_to_read_ends_its_session() -> None:
    # a descriptor that polls readable but reads nothing would spin the loop: after
    # SPURIOUS_MAX empty wake-ups in a row the reader gives up the port, as for an error
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, bytes] | BaseException] = asyncio.Queue()
    r, w = os.pipe()
    os.set_blocking(r, False)
    reader = LoopReader(r, queue, loop, grid_s=1e-9)  # no wake-up is fast: each reads at once
    reader.watch()
    try:
        for _ in range(LoopReader.SPURIOUS_MAX - 1):
            reader()  # nothing in the pipe: a wake-up that finds nothing
        assert queue.empty()
        os.write(w, FRAME)
        reader()  # data resets the count
        assert queue.get_nowait()[1] == FRAME  # type: ignore[index]
        for _ in range(LoopReader.SPURIOUS_MAX - 1):
            reader()
        assert queue.empty()
        reader()
        error = queue.get_nowait()
        assert isinstance(error, OSError) and "gives none" in str(error)
        assert not loop.remove_reader(r)  # the watch was stopped
    finally:
        reader.stop()
        os.close(r)
        os.close(w)


@dataclass
class WatchedPipe:
    """A pipe whose read end a LoopReader watches, as the loop watches a tty."""

    reader: LoopReader
    queue: asyncio.Queue[tuple[int, bytes] | BaseException]
    w: int


@contextlib.contextmanager
def watched_pipe(grid_s: float) -> Iterator[WatchedPipe]:
    """A watched pipe on a `grid_s` grid, closed afterwards."""
    queue: asyncio.Queue[tuple[int, bytes] | BaseException] = asyncio.Queue()
    r, w = os.pipe()
    os.set_blocking(r, False)
    reader = LoopReader(r, queue, asyncio.get_running_loop(), grid_s=grid_s)
    reader.watch()
    try:
        yield WatchedPipe(reader, queue, w)
    finally:
        reader.stop()
        os.close(r)
        os.close(w)


async def _feed_pipe(every_s: float, frames: int, grid_s: float) -> tuple[list[bytes], list[bool]]:
    """Write `frames` frames `every_s` apart into a watched pipe; return what each read took
    and, sampled right after each read, whether the reader had a tick set."""
    reads: list[bytes] = []
    ticking: list[bool] = []
    with watched_pipe(grid_s) as pipe:

        async def write() -> None:
            for _ in range(frames):
                os.write(pipe.w, FRAME)
                await asyncio.sleep(every_s)

        writer = asyncio.create_task(write())
        try:
            while sum(len(c) for c in reads) < frames * len(FRAME):
                item = await asyncio.wait_for(pipe.queue.get(), 5)
                assert not isinstance(item, BaseException)
                reads.append(item[1])
                ticking.append(pipe.reader.timer is not None)
            await writer
            return reads, ticking
        finally:
            writer.cancel()


async def test_a_fast_port_is_read_on_the_grid_and_watched_again_once_quiet() -> None:
    # frames 20 ms apart on a 50 ms grid: after the first two wake-ups the port is read on
    # ticks, each read taking what the port kept; quiet for IDLE_TICKS ticks, it is watched
    frames, reads = 40, 0
    with watched_pipe(0.05) as pipe:
        reader, queue = pipe.reader, pipe.queue
        for _ in range(frames):
            os.write(pipe.w, FRAME)
            await asyncio.sleep(0.02)
            while not queue.empty():
                assert not isinstance(queue.get_nowait(), BaseException)
                reads += 1
        assert reader.timer is not None and not reader.watching  # on the grid
        await asyncio.sleep(0.05 * (LoopReader.IDLE_TICKS + 3))
        while not queue.empty():
            assert not isinstance(queue.get_nowait(), BaseException)
            reads += 1
        assert reads <= frames * 0.6  # a read a tick, two or three frames each
        assert reader.watching and reader.timer is None  # quiet: watched, no ticking


async def test_a_quiet_port_is_read_on_the_coarse_grid_and_a_load_brings_the_tick_near() -> None:
    # frames 10 ms apart on a 50 ms grid: about a read a tick; told quiet (a 250 ms pace), about
    # five times fewer reads with five times the frames each, nothing lost; told busy again, a
    # tick set further away is brought to the next 50 ms one
    loop = asyncio.get_running_loop()
    written, got = 0, bytearray()
    with watched_pipe(0.05) as pipe:
        reader, queue = pipe.reader, pipe.queue

        def take() -> int:
            n = 0
            while not queue.empty():
                item = queue.get_nowait()
                assert not isinstance(item, BaseException)
                got.extend(item[1])
                n += 1
            return n

        async def reads_for(seconds: float) -> int:
            nonlocal written
            n, end = 0, loop.time() + seconds
            while loop.time() < end:
                os.write(pipe.w, FRAME)
                written += 1
                await asyncio.sleep(0.01)
                n += take()
            return n

        await reads_for(0.3)  # onto the grid
        busy = await reads_for(1.0)
        reader.pace(0.25)
        await reads_for(0.3)  # the tick set before the change falls first
        quiet = await reads_for(1.0)
        assert quiet * 2 <= busy, (quiet, busy)
        # a quiet tick far away (as on a slow machine's coarse grid) is brought near at once
        far = reader.timer
        assert far is not None
        far.cancel()
        reader.timer = far = loop.call_at(loop.time() + 10, reader._tick)
        reader.pace(0.05)
        assert far.cancelled() and reader.timer is not None
        assert reader.timer.when() - loop.time() <= 0.05 + 1e-6
        await asyncio.sleep(0.2)
        take()
        assert bytes(got) == FRAME * written  # every frame, once, in order


async def test_a_slow_port_is_read_when_its_bytes_come_and_never_ticks() -> None:
    # an indicator that sends a frame every 0.3 s would wake a 50 ms grid for nothing five
    # times in six: it is read on the watch alone, a frame a read, with no tick set
    reads, ticking = await _feed_pipe(0.3, 5, grid_s=0.05)
    assert reads == [FRAME] * 5
    assert ticking == [False] * 5


def _readers() -> int:
    return sum(t.name == "scale-reader" for t in threading.enumerate())


async def test_a_silent_port_goes_offline(tmp_path: Path) -> None:
    line = PtyLine(tmp_path / "tty", lambda: b"").plug()
    rec = Recorder()
    try:
        async with running(_driver(str(line.link), silence_s=0.3), rec):
            await rec.until(lambda: any(isinstance(e, Offline) for e in rec.events))
            assert rec.events[0] == Offline("no valid frame for 0.3 s")
    finally:
        line.unplug()


async def test_a_missing_port_is_offline_with_the_reason(tmp_path: Path) -> None:
    rec = Recorder()
    async with running(_driver(str(tmp_path / "nope")), rec):
        await rec.until(lambda: bool(rec.events))
        assert rec.events[0] == Offline(
            f"cannot open {tmp_path / 'nope'} (No such file or directory)"
        )


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_twenty_unplug_cycles_leak_no_file_descriptors(tmp_path: Path) -> None:
    line = PtyLine(tmp_path / "tty", lambda: FRAME, rate=100)
    rec = Recorder()
    try:
        async with running(_driver(str(line.link), backoff_max_s=0.05), rec):
            line.plug()
            await rec.until(lambda: rec.states() == ["online"])
            line.unplug()
            await rec.until(lambda: rec.states() == ["online", "offline"])
            baseline = _fd_count()
            for cycle in range(20):
                line.plug()
                await rec.until(lambda c=cycle: rec.states().count("online") == c + 2)
                line.unplug()
                await rec.until(lambda c=cycle: rec.states().count("offline") == c + 2)
            await asyncio.sleep(0.1)
            assert _fd_count() == baseline
            assert rec.states() == ["online", "offline"] * 21
    finally:
        line.unplug()


class LoopbackIndicator:
    """A TCP server on 127.0.0.1 that sends frames to each client until told to drop it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.drop = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                while not (self.drop.is_set() or self.stop.is_set()):
                    try:
                        conn.sendall(FRAME)
                    except OSError:
                        break
                    self.stop.wait(0.02)
            self.drop.clear()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.server.close()


async def test_socket_url_reconnects_after_the_connection_drops() -> None:
    server = LoopbackIndicator()
    rec = Recorder()
    try:
        async with running(_driver(f"socket://127.0.0.1:{server.port}"), rec):
            await rec.until(lambda: len(rec.readings()) >= 3)
            assert _readers() == 1  # a URL port has no descriptor to watch: a thread reads it
            server.drop.set()
            await rec.until(lambda: rec.states()[:3] == ["online", "offline", "online"])
    finally:
        server.close()


def test_best_decode_picks_the_format_that_decodes_cleanly() -> None:
    tol = encode("toledo", Decimal(12_340), parity=True)
    assert best_decode(tol * 5, ["toledo", "xk3190", "xk3190-eq", "ascii"]) == ("toledo", True, 5)
    assert best_decode(tol[:17] * 5, ["toledo", "ascii"]) == ("toledo", False, 5)
    assert best_decode(FRAME[3:] + FRAME * 4, ["toledo", "xk3190", "ascii"]) == ("xk3190", True, 4)
    assert best_decode(bytes(range(256)) * 3, ["toledo", "xk3190", "xk3190-eq", "ascii"]) is None

"""The weighing capture state machine (docs/devices.md) and the anti-cheat watches, all pure."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from agent.config import ScaleConfig
from drivers.scale import Reading
from drivers.scale.reading import kg_value

State = Literal["idle", "armed", "settling", "captured"]
# Whole kg on truck scales; the exact Decimal kg the indicator shows on bag scales.
Weight = int | Decimal
_EPS = 1e-9
GAP_FACTOR = 2.5
GAP_HISTORY = 16
# A gap shorter than this is never missing frames: the port buffers what arrives while a busy
# terminal (the scale vendor's software, another process) keeps the reader waiting, so a late
# read has lost nothing. At 20 frames/s 2.5 intervals is 125 ms; scheduling stalls reach that.
MIN_GAP_S = 0.25
# Frames that arrive in one read of the port share its time: a gap this small is not an interval
# (counting it would make the usual interval 0 and every later read look like lost frames).
SAME_READ_S = 0.001
# A reader kept waiting longer than that (a loaded PC) gets, in its next read, every frame the
# port buffered meanwhile: when that read brings about one frame per usual frame interval of the
# wait (give or take this many, for where the wait began and ended within a frame), nothing was
# lost. A line that really went quiet brings one frame, or a few.
CATCH_UP_SLACK = 1.5


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """The capture thresholds (weights in kg, times in seconds); see ScaleConfig.

    With `exact` (bag scales) every reading is the exact Decimal kg the indicator shows, with
    its decimals, and the thresholds may be Decimal too; otherwise readings are whole kg.
    """

    min_weight_kg: Weight = 500
    zero_band_kg: Weight = 40
    band_kg: Weight = 40
    hold_s: float = 3.0
    min_samples: int = 5
    max_wait_s: float = 120.0
    clear_s: float = 2.0
    silence_s: float = 2.0
    exact: bool = False

    @staticmethod
    def from_config(cfg: ScaleConfig) -> CaptureSettings:
        """The capture settings of one [[scale]] (bag scales: exact, bands from the _g keys)."""
        if cfg.role == "bags":
            return CaptureSettings(
                min_weight_kg=cfg.min_weight_kg,
                zero_band_kg=grams_or_kg(cfg.zero_band_g, cfg.zero_band_kg),
                band_kg=grams_or_kg(cfg.band_g, cfg.band_kg),
                hold_s=cfg.hold_s,
                min_samples=cfg.min_samples,
                max_wait_s=cfg.max_wait_s,
                clear_s=cfg.clear_s,
                silence_s=cfg.silence_s,
                exact=True,
            )
        return CaptureSettings(
            min_weight_kg=cfg.min_weight_kg,
            zero_band_kg=cfg.zero_band_kg,
            band_kg=cfg.band_kg,
            hold_s=cfg.hold_s,
            min_samples=cfg.min_samples,
            max_wait_s=cfg.max_wait_s,
            clear_s=cfg.clear_s,
            silence_s=cfg.silence_s,
        )


def grams_or_kg(grams: int, kg: int) -> Weight:
    """A threshold given in grams (when non-zero) as exact kg, else the whole-kg one."""
    return Decimal(grams).scaleb(-3) if grams else kg


def weigh(reading: Reading, exact: bool) -> Weight | None:
    """A reading's weight: whole kg, or with `exact` the indicator's exact value in kg."""
    if not exact:
        return reading.kg()
    if reading.weight is None or reading.overload:
        return None
    return kg_value(reading.weight, reading.unit)


@dataclass(frozen=True, slots=True)
class Captured:
    """One vehicle's (or bag's) weight: the median of a stable window of `samples` readings."""

    at_s: float
    weight_kg: Weight
    mode: str
    stable_ms: int
    samples: int


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A vehicle that left unstable or stayed unstable past max_wait_s; max_kg seen meanwhile."""

    at_s: float
    reason: Literal["left_unstable", "unstable_timeout"]
    max_kg: Weight


Outcome = Captured | Abandoned


class Level:
    """The frames of one level in time order, with their lowest and highest weight kept as
    frames come and go (each frame is added and dropped once, so a frame costs the same
    however many the level holds: a steady deck at 20 frames/s is watched every frame)."""

    __slots__ = ("_first", "_hi", "_lo", "_next", "frames")

    def __init__(self) -> None:
        self.frames: deque[tuple[float, Weight, str | None]] = deque()
        # (frame number, weight): the candidates for the highest (lowest) weight of the frames
        # from each one on, the current one first
        self._hi: deque[tuple[int, Weight]] = deque()
        self._lo: deque[tuple[int, Weight]] = deque()
        self._first = 0  # the number of frames[0]
        self._next = 0  # the number the next frame gets

    def __len__(self) -> int:
        return len(self.frames)

    def append(self, t: float, kg: Weight, mode: str | None = None) -> None:
        """Add the newest frame."""
        n = self._next
        self._next = n + 1
        self.frames.append((t, kg, mode))
        hi, lo = self._hi, self._lo
        while hi and hi[-1][1] <= kg:
            hi.pop()
        hi.append((n, kg))
        while lo and lo[-1][1] >= kg:
            lo.pop()
        lo.append((n, kg))

    def popleft(self) -> None:
        """Drop the oldest frame."""
        self.frames.popleft()
        first = self._first
        self._first = first + 1
        if self._hi[0][0] == first:
            self._hi.popleft()
        if self._lo[0][0] == first:
            self._lo.popleft()

    def clear(self) -> None:
        """Drop every frame."""
        self.frames.clear()
        self._hi.clear()
        self._lo.clear()
        self._first = self._next

    def spread(self) -> Weight:
        """The highest weight less the lowest (the level holds a frame)."""
        return self._hi[0][1] - self._lo[0][1]

    def within(self, kg: Weight, band: Weight) -> bool:
        """Whether every frame's weight is within `band` of `kg`."""
        return self._hi[0][1] - band <= kg <= self._lo[0][1] + band

    def span_s(self) -> float:
        """Seconds from the oldest frame to the newest (the level holds a frame)."""
        return self.frames[-1][0] - self.frames[0][0]


class GapDetector:
    """Tells when frames went missing: silence, or a gap much longer than the usual interval
    between reads that the read after it does not make up with the frames the port kept."""

    def __init__(self, silence_s: float) -> None:
        self.silence_s = silence_s
        self._last: float | None = None
        self._gaps: deque[float] = deque(maxlen=GAP_HISTORY)  # between reads
        self._per_frame: deque[float] = deque(maxlen=GAP_HISTORY)  # a read's gap / its frames

    def missed(self, t: float, batch: int = 1) -> bool:
        """Record a frame (or corrupt marker) at `t`, one of `batch` that its read of the port
        brought; return whether frames were missed."""
        last, self._last = self._last, t
        if last is None:
            return False
        gap = t - last
        missing = gap > self.silence_s
        if gap < SAME_READ_S:
            return missing
        # (no median for a gap too short to be late: the reads of a port, 10 a second)
        late = (
            gap > MIN_GAP_S
            and len(self._gaps) >= 4
            and gap > GAP_FACTOR * statistics.median(self._gaps)
        )
        if late and not missing:
            # a late read: it must bring what the port buffered while the reader waited
            return batch < gap / statistics.median(self._per_frame) - CATCH_UP_SLACK
        if not missing:
            self._gaps.append(gap)
            self._per_frame.append(gap / max(batch, 1))
        return missing

    def reset(self) -> None:
        """Forget the last frame time (after the line went offline)."""
        self._last = None


class Capture:
    """One capture per vehicle on the deck (docs/devices.md); feed it every frame with its time.

    A window holds consecutive readings within `band_kg` of each other; the indicator's
    unstable flag, a corrupt or out-of-range frame and missing frames all empty it. A capture
    needs the window to span `hold_s` with at least `min_samples` readings.
    """

    def __init__(self, settings: CaptureSettings) -> None:
        self.settings = settings
        self.state: State = "idle"
        self._window = Level()
        self._gaps = GapDetector(settings.silence_s)
        self._since = 0.0
        self._max_kg: Weight = 0
        self._timed_out = False
        self._zero_since: float | None = None

    def interrupt(self, t: float) -> list[Outcome]:
        """The line went offline or a frame was lost: the window breaks."""
        self._window.clear()
        self._gaps.reset()
        return self._timeout(t)

    def feed(self, t: float, reading: Reading | None, batch: int = 1) -> list[Outcome]:
        """Feed one frame at monotonic time `t` seconds (None = a corrupt frame), one of `batch`
        frames its read of the port brought."""
        if self._gaps.missed(t, batch):
            self._window.clear()
        s = self.settings
        kg = weigh(reading, s.exact) if reading is not None else None
        if kg is None or reading is None:
            self._window.clear()
            return self._timeout(t)
        if self.state == "idle":
            if -s.zero_band_kg <= kg <= s.zero_band_kg:
                self.state = "armed"
            return []
        if self.state == "armed":
            if kg < s.min_weight_kg:
                return []
            self.state = "settling"
            self._since, self._max_kg, self._timed_out = t, kg, False
            self._window.clear()
        if self.state == "captured":
            if not -s.zero_band_kg <= kg <= s.zero_band_kg:
                self._zero_since = None
                return []
            if self._zero_since is None:
                self._zero_since = t
            if t - self._zero_since + _EPS >= s.clear_s:
                self.state = "idle"
            return []
        # settling
        if kg < s.min_weight_kg:
            self.state = "idle"
            self._window.clear()
            if self._timed_out:
                return []  # one abandonment per vehicle
            return [Abandoned(t, "left_unstable", self._max_kg)]
        self._max_kg = max(self._max_kg, kg)
        if reading.stable is False:
            self._window.clear()
            return self._timeout(t)
        window = self._window
        window.append(t, kg, reading.mode)
        while window.spread() > s.band_kg:
            window.popleft()
        span = window.span_s()
        if span + _EPS >= s.hold_s and len(window) >= s.min_samples:
            self.state = "captured"
            self._zero_since = None
            weights = [w for _, w, _ in window.frames]
            captured = Captured(
                at_s=t,
                weight_kg=statistics.median_low(weights),
                mode=window.frames[-1][2] or "gross",
                stable_ms=round(span * 1000),
                samples=len(window),
            )
            window.clear()
            return [captured]
        return self._timeout(t)

    def _timeout(self, t: float) -> list[Outcome]:
        if (
            self.state == "settling"
            and not self._timed_out
            and t - self._since + _EPS >= self.settings.max_wait_s
        ):
            self._timed_out = True
            return [Abandoned(t, "unstable_timeout", self._max_kg)]
        return []


@dataclass(frozen=True, slots=True)
class Step:
    """A jump between two steady levels in one frame, with no motion in between."""

    at_s: float
    from_kg: int
    to_kg: int


class StepWatch:
    """Finds a step change while stable: steady for hold_s, one jump > band_kg, steady again.

    A vehicle driving on or off moves the weight over many frames (and sets the motion flag);
    a single-frame jump between two steady levels on a loaded deck is what an added weight or a
    tampered signal looks like.
    """

    def __init__(self, band_kg: int, hold_s: float, min_weight_kg: int, silence_s: float) -> None:
        self.band_kg = band_kg
        self.hold_s = hold_s
        self.min_weight_kg = min_weight_kg
        self._window = Level()
        self._pending: tuple[float, int, int] | None = None
        self._gaps = GapDetector(silence_s)

    @property
    def held(self) -> int:
        """How many frames the watch keeps (about hold_s of them, however long the level)."""
        return len(self._window)

    def feed(self, t: float, kg: int | None, stable: bool | None, batch: int = 1) -> Step | None:
        """Feed one frame's weight in kg (None = corrupt or out of range) and stability flag,
        one of `batch` frames its read of the port brought."""
        if self._gaps.missed(t, batch) or kg is None or stable is False:
            self._window.clear()
            self._pending = None
            return None
        window = self._window
        # The level's median is one of its weights: with all of them within band_kg of this
        # frame's, so is the median, and a steady level is not sorted every frame.
        if window and not window.within(kg, self.band_kg):
            ref = int(statistics.median_low(w for _, w, _ in window.frames))
            if abs(kg - ref) > self.band_kg:
                steady = window.span_s() + _EPS >= self.hold_s
                loaded = max(ref, kg) >= self.min_weight_kg
                fresh = steady and loaded and self._pending is None
                self._pending = (t, ref, kg) if fresh else None
                window.clear()
        window.append(t, kg)
        while window.spread() > self.band_kg:
            window.popleft()
            self._pending = None
        if self._pending is None:
            # A steady level needs only its last hold_s: a deck standing empty all night must
            # not keep (and scan) every frame since the evening, 72,000 an hour at 20 frames/s.
            frames = window.frames
            while len(frames) > 2 and t - frames[1][0] + _EPS >= self.hold_s:
                window.popleft()
        if self._pending is not None and t - self._pending[0] + _EPS >= self.hold_s:
            at, before, after = self._pending
            self._pending = None
            return Step(at, before, after)
        return None


class FrozenWatch:
    """Finds a byte-identical frame stream on a loaded deck lasting `frozen_s` or more."""

    def __init__(self, min_weight_kg: int, frozen_s: float) -> None:
        self.min_weight_kg = min_weight_kg
        self.frozen_s = frozen_s
        self.active = False
        self._raw: bytes | None = None
        self._since = 0.0

    def feed(self, t: float, raw: bytes, kg: int | None) -> bool | None:
        """Feed one accepted frame; return True to raise, False to clear, None for no change."""
        loaded = kg is not None and kg >= self.min_weight_kg
        if raw != self._raw or not loaded:
            self._raw, self._since = (raw if loaded else None), t
            if self.active:
                self.active = False
                return False
            return None
        if not self.active and t - self._since + _EPS >= self.frozen_s:
            self.active = True
            return True
        return None

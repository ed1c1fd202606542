"""The capture state machine and anti-cheat watches, fed with synthetic time and readings."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st

from agent.config import ScaleConfig
from agent.domain.capture import (
    Abandoned,
    Capture,
    Captured,
    CaptureSettings,
    FrozenWatch,
    GapDetector,
    Level,
    Outcome,
    Step,
    StepWatch,
)
from drivers.scale import Reading

HZ = 10
DT = 1 / HZ
SETTINGS = CaptureSettings()  # defaults: min 500, zero band 40, band 40, hold 3 s, 5 samples


def reading(weight: int | str | None, stable: bool | None = True, unit: str = "kg") -> Reading:
    """A reading as a parser would produce it."""
    return Reading(
        weight=None if weight is None else Decimal(weight),
        unit=unit,
        stable=stable,
        mode="gross",
        overload=weight is None,
        raw=b"",
    )


class Scenario:
    """Builds a frame sequence at HZ frames per second and feeds it to a Capture."""

    def __init__(self, settings: CaptureSettings = SETTINGS, start: float = 100.0) -> None:
        self.capture = Capture(settings)
        self.t = start
        self.outcomes: list[Outcome] = []
        self.states: list[str] = []

    def frames(self, items: Iterable[Reading | None], dt: float = DT) -> Scenario:
        for item in items:
            self.outcomes += self.capture.feed(round(self.t, 6), item)
            self.states.append(self.capture.state)
            self.t += dt
        return self

    def hold(self, weight: int | None, seconds: float, stable: bool | None = True) -> Scenario:
        return self.frames([reading(weight, stable)] * round(seconds * HZ))

    def ramp(self, a: int, b: int, seconds: float) -> Scenario:
        n = round(seconds * HZ)
        return self.frames(reading(a + (b - a) * i // n, stable=False) for i in range(1, n + 1))

    def truck(self, weight: int, settle_s: float = 5.0) -> Scenario:
        return self.hold(0, 1).ramp(0, weight, 2).hold(weight, settle_s).ramp(weight, 0, 2)


def test_one_truck_one_capture_with_window_statistics() -> None:
    s = Scenario().truck(40_000).hold(0, 3)
    # first stable reading at t = 100 + 1 + 2 = 103.0; 31 samples span 3.0 s
    assert s.outcomes == [
        Captured(at_s=106.0, weight_kg=40_000, mode="gross", stable_ms=3000, samples=31)
    ]
    assert s.states[:10] == ["armed"] * 10
    assert s.states[-1] == "armed"


def test_states_follow_the_machine() -> None:
    s = Scenario().hold(0, 0.1)
    assert s.capture.state == "armed"
    s.hold(12_000, 0.1)
    assert s.capture.state == "settling"
    s.hold(12_000, 3.0)
    assert s.capture.state == "captured"
    s.hold(0, 1.0)
    assert s.capture.state == "captured"  # clear_s is 2 s
    s.hold(0, 1.1)
    assert s.capture.state == "idle"
    s.hold(0, 0.1)
    assert s.capture.state == "armed"


def test_two_trucks_two_captures() -> None:
    s = Scenario().truck(15_000).hold(0, 3).truck(48_000).hold(0, 3)
    assert [o.weight_kg for o in s.outcomes if isinstance(o, Captured)] == [15_000, 48_000]
    assert all(isinstance(o, Captured) for o in s.outcomes)


def test_captured_value_is_the_median_of_the_window() -> None:
    noisy = [40_000, 40_020, 39_990, 40_010, 40_030, 40_005, 39_995]
    s = Scenario(CaptureSettings(hold_s=0.6, min_samples=7)).hold(0, 0.5)
    s.frames([reading(20_000, False)] + [reading(w) for w in noisy])
    assert s.outcomes == [
        Captured(
            at_s=round(100.5 + 0.1 + 0.6, 6),
            weight_kg=40_005,
            mode="gross",
            stable_ms=600,
            samples=7,
        )
    ]


def test_no_zero_return_means_no_second_capture() -> None:
    s = Scenario().truck(40_000, settle_s=4)
    s.ramp(0, 20_000, 1).hold(20_000, 5).ramp(20_000, 45_000, 1).hold(45_000, 5)
    assert [o.weight_kg for o in s.outcomes if isinstance(o, Captured)] == [40_000]
    assert s.capture.state == "captured"


def test_zero_shorter_than_clear_s_does_not_rearm() -> None:
    s = Scenario().hold(0, 0.5).hold(30_000, 4).hold(0, 1.5).hold(31_000, 4)
    assert [o.weight_kg for o in s.outcomes] == [30_000]


def test_vehicle_on_deck_at_start_is_not_captured() -> None:
    s = Scenario().hold(30_000, 10).hold(0, 3).hold(31_000, 4)
    assert [o.weight_kg for o in s.outcomes] == [31_000]


def test_indicator_flag_is_required() -> None:
    s = Scenario().hold(0, 1).hold(40_000, 10, stable=False)
    assert s.outcomes == []
    assert s.capture.state == "settling"


def test_flagless_formats_use_the_window_alone() -> None:
    s = Scenario().hold(0, 1).hold(40_000, 4, stable=None)
    assert [o.weight_kg for o in s.outcomes] == [40_000]


def test_software_window_is_required_even_when_the_flag_says_stable() -> None:
    swing = [reading(40_000 + (50 if i % 2 else 0)) for i in range(100)]
    s = Scenario().hold(0, 1).frames(swing)
    assert s.outcomes == []


def test_window_slides_past_a_settling_bounce() -> None:
    s = Scenario().hold(0, 1).frames([reading(w) for w in (39_000, 41_000, 39_500, 40_300)])
    s.hold(40_000, 3.0)
    # the window starts at 40_000 (40_300 is out of band with it): 30 samples span 2.9 s
    assert s.outcomes == []
    s.hold(40_000, 0.1)
    assert s.outcomes == [
        Captured(
            at_s=round(100 + 1 + 0.4 + 3.0, 6),
            weight_kg=40_000,
            mode="gross",
            stable_ms=3000,
            samples=31,
        )
    ]


def test_a_late_read_that_brings_the_frames_the_port_kept_keeps_the_window() -> None:
    """A loaded PC keeps the reader waiting 0.9 s; its next read brings the 9 frames the port
    buffered meanwhile, all with that read's time: nothing was lost, the window holds on and the
    truck is captured when it has stood still hold_s. Had that read brought only 2 frames, 7 were
    lost and the window starts again."""

    def stalled(batch: int) -> Scenario:
        s = Scenario().hold(0, 1).hold(40_000, 2.0)  # frames up to 102.9
        read_at = 103.8
        for _ in range(batch):
            s.outcomes += s.capture.feed(read_at, reading(40_000), batch)
        s.t = read_at + DT
        return s.hold(40_000, 0.2)  # 103.9, 104.0

    assert stalled(9).outcomes == [
        Captured(at_s=104.0, weight_kg=40_000, mode="gross", stable_ms=3000, samples=31)
    ]
    assert stalled(2).outcomes == []


def test_corrupt_frames_break_the_window() -> None:
    pattern = ([reading(40_000)] * 19 + [None]) * 10  # a corrupt frame every 2 s
    s = Scenario().hold(0, 1).frames(pattern)
    assert s.outcomes == []
    s2 = Scenario(CaptureSettings(hold_s=1.5)).hold(0, 1).frames(pattern)
    assert [o.weight_kg for o in s2.outcomes] == [40_000]


def test_out_of_range_frames_break_the_window() -> None:
    pattern = ([reading(40_000)] * 19 + [reading(None)]) * 10
    assert Scenario().hold(0, 1).frames(pattern).outcomes == []


def test_missing_frames_break_the_window() -> None:
    s = Scenario().hold(0, 1).hold(40_000, 2.0)
    s.t += 0.8  # eight frames lost
    s.hold(40_000, 2.9)
    assert s.outcomes == []  # the window restarted after the gap
    s.hold(40_000, 0.2)
    assert [o.samples for o in s.outcomes] == [31]


def test_silence_longer_than_silence_s_breaks_the_window_even_at_low_rates() -> None:
    settings = CaptureSettings(hold_s=3, min_samples=2, silence_s=2.0)
    s = Scenario(settings).hold(0, 1).frames([reading(40_000)] * 2, dt=2.5)
    assert s.outcomes == []


def test_interrupt_breaks_the_window() -> None:
    s = Scenario().hold(0, 1).hold(40_000, 2.5)
    assert s.capture.interrupt(s.t) == []
    s.t += 0.1
    s.hold(40_000, 2.5)
    assert s.outcomes == []


def test_min_samples_is_required() -> None:
    slow = Scenario(CaptureSettings(min_samples=5)).frames(
        [reading(0), *[reading(40_000)] * 6], dt=1.0
    )
    # hold 3 s is reached with 4 samples; the 5th (span 4 s) captures
    assert slow.outcomes == [
        Captured(at_s=105.0, weight_kg=40_000, mode="gross", stable_ms=4000, samples=5)
    ]


def test_left_unstable_is_abandoned_with_the_maximum() -> None:
    s = Scenario().hold(0, 1).ramp(0, 30_000, 2).ramp(30_000, 0, 2).hold(0, 1)
    assert s.outcomes == [
        Abandoned(at_s=round(100 + 1 + 2 + 0.1 * 19, 6), reason="left_unstable", max_kg=30_000)
    ]
    assert s.capture.state == "armed"


def test_unstable_timeout_is_emitted_once_and_capture_still_possible() -> None:
    settings = CaptureSettings(max_wait_s=5)
    s = Scenario(settings).hold(0, 1).hold(40_000, 12, stable=False)
    assert s.outcomes == [Abandoned(at_s=106.0, reason="unstable_timeout", max_kg=40_000)]
    s.hold(40_100, 3.1)
    assert s.outcomes[1:] == [
        Captured(
            at_s=round(113 + 3.0, 6), weight_kg=40_100, mode="gross", stable_ms=3000, samples=31
        )
    ]


def test_timed_out_vehicle_leaving_is_not_abandoned_twice() -> None:
    settings = CaptureSettings(max_wait_s=5)
    s = Scenario(settings).hold(0, 1).hold(40_000, 6, stable=False).ramp(40_000, 0, 2)
    assert [o.reason for o in s.outcomes if isinstance(o, Abandoned)] == ["unstable_timeout"]


def test_timeout_fires_on_corrupt_frames_too() -> None:
    s = Scenario(CaptureSettings(max_wait_s=2)).hold(0, 1).hold(40_000, 0.5, stable=False)
    s.frames([None] * 20)
    assert s.outcomes == [Abandoned(at_s=103.0, reason="unstable_timeout", max_kg=40_000)]


def test_weights_are_converted_to_integer_kg() -> None:
    assert reading("40.02", unit="t").kg() == 40_020
    assert reading("12345678", unit="g").kg() == 12_346
    assert reading("100", unit="lb").kg() == 45
    assert reading("88000", unit="lb").kg() == 39_916
    assert reading("-0.50").kg() == -1
    s = Scenario()
    s.frames([reading("0.00", unit="t")] + [reading("40.02", unit="t")] * 31)
    assert [o.weight_kg for o in s.outcomes] == [40_020]


def test_net_mode_is_carried() -> None:
    s = Scenario().frames([reading(0)])
    net = Reading(Decimal(25_000), "kg", True, "net", False, b"")
    s.frames([net] * 31)
    assert [o.mode for o in s.outcomes if isinstance(o, Captured)] == ["net"]


def test_settings_from_config() -> None:
    cfg = ScaleConfig(name="s", port="p", min_weight_kg=900, hold_s=1.5, silence_s=4.0)
    assert CaptureSettings.from_config(cfg) == CaptureSettings(
        min_weight_kg=900, hold_s=1.5, silence_s=4.0
    )


# --- anti-cheat watches ---------------------------------------------------------------------


def feed_steps(watch: StepWatch, frames: list[tuple[int | None, bool | None]]) -> list[Step]:
    out = []
    for i, (kg, stable) in enumerate(frames):
        step = watch.feed(round(i * DT, 6), kg, stable)
        if step is not None:
            out.append(step)
    return out


def step_watch() -> StepWatch:
    return StepWatch(band_kg=40, hold_s=3.0, min_weight_kg=500, silence_s=2.0)


def test_step_while_stable_is_found() -> None:
    frames = [(40_000, True)] * 40 + [(40_600, True)] * 40
    assert feed_steps(step_watch(), frames) == [Step(at_s=4.0, from_kg=40_000, to_kg=40_600)]


def test_a_level_standing_all_night_keeps_only_its_last_hold_and_a_step_is_still_found() -> None:
    # an hour of an empty deck, then a truck standing: the watch held every frame since the
    # evening and scanned them all for each new frame, its work growing by the hour
    watch = step_watch()
    hour = [(0, True)] * (3600 * HZ)
    drive_on = [(20_000, False)] * 10
    frames = hour + drive_on + [(40_000, True)] * 40 + [(40_600, True)] * 40
    held = []
    out = []
    for i, (kg, stable) in enumerate(frames):
        step = watch.feed(round(i * DT, 6), kg, stable)
        if step is not None:
            out.append(step)
        held.append(watch.held)
    assert max(held) <= 3.0 * HZ + 2
    assert out == [Step(at_s=3605.0, from_kg=40_000, to_kg=40_600)]


def test_step_on_a_flagless_format_is_found() -> None:
    frames = [(40_000, None)] * 40 + [(39_000, None)] * 40
    assert feed_steps(step_watch(), frames) == [Step(at_s=4.0, from_kg=40_000, to_kg=39_000)]


def test_vehicle_driving_on_is_not_a_step() -> None:
    ramp = [(i * 1000, None) for i in range(41)]
    frames = [(0, None)] * 40 + ramp + [(40_000, None)] * 60 + ramp[::-1] + [(0, None)] * 40
    assert feed_steps(step_watch(), frames) == []


def test_jump_with_motion_between_is_not_a_step() -> None:
    frames = [(40_000, True)] * 40 + [(40_300, False)] + [(40_600, True)] * 40
    assert feed_steps(step_watch(), frames) == []


def test_jump_that_does_not_stay_is_not_a_step() -> None:
    frames = [(40_000, True)] * 40 + [(40_600, True)] * 10 + [(40_000, True)] * 40
    assert feed_steps(step_watch(), frames) == []


def test_step_on_an_empty_deck_is_ignored() -> None:
    frames = [(0, True)] * 40 + [(200, True)] * 40
    assert feed_steps(step_watch(), frames) == []


def test_frozen_stream_raises_once_and_clears_when_frames_change() -> None:
    watch = FrozenWatch(min_weight_kg=500, frozen_s=180)
    results = [watch.feed(float(t), b"A", 40_000) for t in range(0, 200)]
    assert [(t, r) for t, r in enumerate(results) if r is not None] == [(180, True)]
    assert watch.feed(200.0, b"B", 40_010) is False
    assert watch.active is False


def test_identical_frames_on_an_empty_deck_are_not_frozen() -> None:
    watch = FrozenWatch(min_weight_kg=500, frozen_s=180)
    assert [watch.feed(float(t), b"Z", 0) for t in range(400)] == [None] * 400


def test_varying_frames_never_freeze() -> None:
    watch = FrozenWatch(min_weight_kg=500, frozen_s=5)
    assert [watch.feed(float(t), bytes([t % 2]), 40_000) for t in range(100)] == [None] * 100


def test_frames_read_together_share_a_time_and_still_capture() -> None:
    # A busy terminal or a USB adapter hands over two, three or four frames per read; the driver
    # stamps them all with the read's time. The truck must still be weighed, once, at its weight.
    for per_read in (1, 2, 3, 4):
        capture = Capture(SETTINGS)
        frames = (
            [reading(0)] * 30
            + [reading(20_000 * i // 20, stable=False) for i in range(1, 21)]
            + [reading(20_000)] * 60
            + [reading(0)] * 30
        )
        outcomes: list[Outcome] = []
        for i, frame in enumerate(frames):
            t = 100.0 + (i // per_read) * per_read * DT  # one time per read
            outcomes += capture.feed(round(t, 6), frame)
        assert [(type(o).__name__, getattr(o, "weight_kg", None)) for o in outcomes] == [
            ("Captured", 20_000)
        ], per_read


def test_a_burst_of_buffered_frames_does_not_make_every_later_frame_late() -> None:
    """Frames read in one go share a time; after such a burst the usual pace is not a gap."""
    from agent.domain.capture import GapDetector

    gaps = GapDetector(silence_s=2.0)
    burst = [gaps.missed(1.0) for _ in range(20)]
    paced = [gaps.missed(1.0 + 0.05 * i) for i in range(1, 40)]
    assert (any(burst), any(paced)) == (False, False)


def test_a_reader_kept_waiting_a_fifth_of_a_second_has_missed_nothing() -> None:
    """At 100 frames/s, 2.5 intervals is 25 ms; a busy PC delays reads far longer than that, and
    the port buffers the frames meanwhile: a stall under a quarter second is not a gap."""
    from agent.domain.capture import GapDetector

    gaps = GapDetector(silence_s=2.0)
    paced = [gaps.missed(1.0 + 0.01 * i) for i in range(20)]
    stalled = gaps.missed(1.19 + 0.2)  # the next read comes 0.2 s late...
    burst = [gaps.missed(1.39) for _ in range(19)]  # ...with the frames that waited in the port
    lost = gaps.missed(1.39 + 0.3)  # 0.3 s without a frame: frames were lost
    assert (any(paced), stalled, any(burst), lost) == (False, False, False, True)


def test_a_late_read_makes_up_for_its_wait_only_with_the_frames_of_that_wait() -> None:
    """At 20 frames/s (one or two a read), a read 0.6 s late must bring about 12 frames; one
    that brings 11 is within the slack (where the wait began within a frame), one that brings
    10 lost two."""
    from agent.domain.capture import GapDetector

    def late_read(batch: int) -> bool:
        gaps = GapDetector(silence_s=2.0)
        t = 1.0
        for i in range(12):  # reads of one frame, then of two, each when its last frame came
            n = 1 if i % 2 else 2
            t += 0.05 * n
            for _ in range(n):
                assert not gaps.missed(round(t, 6), n)
        t += 0.6
        return any([gaps.missed(round(t, 6), batch) for _ in range(batch)])

    assert (late_read(12), late_read(11), late_read(10)) == (False, False, True)


# --- the level's running extremes, against the level scanned again ---------------------------


@given(st.lists(st.one_of(st.integers(-60, 60), st.none()), max_size=300))
def test_a_levels_running_extremes_equal_its_weights_scanned_again(ops: list[int | None]) -> None:
    """Weights appended (a number), the oldest dropped (None), or, every 37th step, all
    cleared: the spread and `within` always equal those of the frames scanned again."""
    level = Level()
    for i, op in enumerate(ops):
        if i % 37 == 36:
            level.clear()
        elif op is None:
            if level:
                level.popleft()
        else:
            level.append(float(i), op)
        weights = [w for _, w, _ in level.frames]
        assert len(level) == len(weights)
        if weights:
            assert level.spread() == max(weights) - min(weights)
            for kg in (-70, -5, 0, 7, 70):
                assert level.within(kg, 20) == all(abs(kg - w) <= 20 for w in weights)


class ScannedStepWatch:
    """The step watch as it was before its level kept its extremes: every frame scans the
    level for its median, highest and lowest weight (the reference the watch must equal)."""

    def __init__(self, band_kg: int, hold_s: float, min_weight_kg: int, silence_s: float) -> None:
        self.band_kg, self.hold_s, self.min_weight_kg = band_kg, hold_s, min_weight_kg
        self.window: deque[tuple[float, int]] = deque()
        self.pending: tuple[float, int, int] | None = None
        self.gaps = GapDetector(silence_s)

    def feed(self, t: float, kg: int | None, stable: bool | None, batch: int = 1) -> Step | None:
        if self.gaps.missed(t, batch) or kg is None or stable is False:
            self.window.clear()
            self.pending = None
            return None
        window = self.window
        if window:
            ref = statistics.median_low(w for _, w in window)
            if abs(kg - ref) > self.band_kg:
                steady = window[-1][0] - window[0][0] + 1e-9 >= self.hold_s
                loaded = max(ref, kg) >= self.min_weight_kg
                fresh = steady and loaded and self.pending is None
                self.pending = (t, ref, kg) if fresh else None
                window.clear()
        window.append((t, kg))
        while max(w for _, w in window) - min(w for _, w in window) > self.band_kg:
            window.popleft()
            self.pending = None
        if self.pending is None:
            while len(window) > 2 and t - window[1][0] + 1e-9 >= self.hold_s:
                window.popleft()
        if self.pending is not None and t - self.pending[0] + 1e-9 >= self.hold_s:
            at, before, after = self.pending
            self.pending = None
            return Step(at, before, after)
        return None


# A frame: its weight as noise about the level (a small number) or the level jumping (a step or
# a vehicle: a large one) or a corrupt frame (None), its stability flag, and whether the line
# dropped frames before it (a gap in time)
frame_moves = st.tuples(
    st.one_of(
        st.integers(-25, 25),
        st.sampled_from([-900, -60, -45, 45, 50, 70, 600, 20_000]),
        st.none(),
    ),
    st.sampled_from([True, True, True, True, None, False]),
    st.integers(0, 60).map(lambda n: n == 0),
)


@given(st.lists(frame_moves, max_size=400), st.sampled_from([0, 5_000, 40_000]))
@settings(max_examples=300)
def test_the_step_watch_finds_what_scanning_every_frame_finds(
    moves: list[tuple[int | None, bool | None, bool]], level: int
) -> None:
    args = (40, 1.0, 500, 2.0)
    watch, scanned = StepWatch(*args), ScannedStepWatch(*args)
    t, steps = 100.0, 0
    for move, stable, dropped in moves:
        t = round(t + (2.5 if dropped else DT), 6)
        weight = None
        if move is not None and abs(move) > 25:
            level = max(0, level + move)
            weight = level
        elif move is not None:
            weight = max(0, level + move)
        step = watch.feed(t, weight, stable)
        assert step == scanned.feed(t, weight, stable)
        assert watch.held == len(scanned.window)
        steps += step is not None
    # (the examples do find steps: hypothesis reports the share that did)
    event("a step found" if steps else "no step")

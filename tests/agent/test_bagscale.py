"""Bag scales: config checks, exact capture to 0.01 kg, and samples folded into bag checks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent import config as cfg
from agent.config import ChecksConfig, ScaleConfig
from agent.domain.capture import Captured, CaptureSettings
from agent.domain.events import Event, format_at
from agent.domain.spotchecks import Collected, SpotChecks
from tests.agent.test_capture import Scenario, reading
from tests.agent.test_scales_service import Rig, rig

TZ = ZoneInfo("Asia/Shanghai")
BAGS = CaptureSettings(
    min_weight_kg=20,
    zero_band_kg=Decimal("0.2"),
    band_kg=Decimal("0.1"),
    hold_s=1.0,
    min_samples=5,
    clear_s=0.5,
    exact=True,
)
SETTLED = ["50.12", "50.14", "50.11", "50.12", "50.13"]


def bag(s: Scenario, settled: list[str], unit: str = "kg") -> Scenario:
    """Put a bag on (motion), let it settle for 1.2 s of `settled` values, lift it off."""
    s.frames([reading(w, stable=False, unit=unit) for w in ("31.2", "50.9", "49.8")])
    s.frames(reading(settled[i % len(settled)], unit=unit) for i in range(12))
    s.frames([reading(w, stable=False, unit=unit) for w in ("20.5", "0.30")])
    return s


# --- config ---------------------------------------------------------------------------------

PACKER = {"name": "line1", "host": "127.0.0.1"}
BAG_SCALE = {
    "name": "bags1",
    "port": "/dev/ttyUSB1",
    "protocol": "ascii",
    "role": "bags",
    "packer": "line1",
    "min_weight_kg": 20,
    "zero_band_g": 200,
    "band_g": 100,
}


def problems(**scale: Any) -> list[str]:
    data = {"terminal": {"id": "wb1"}, "packer": [PACKER], "scale": [scale]}
    with pytest.raises(cfg.ConfigError) as exc:
        cfg.parse(data)
    return exc.value.problems


def test_a_bag_scale_names_a_packer_and_has_bag_sized_thresholds() -> None:
    c = cfg.parse({"terminal": {"id": "wb1"}, "packer": [PACKER], "scale": [BAG_SCALE]})
    assert (c.scales[0].role, c.scales[0].packer, c.scales[0].band_g) == ("bags", "line1", 100)
    assert cfg.parse({"terminal": {"id": "wb1"}}).scales == ()
    assert ScaleConfig(name="s", port="p").role == "truck"
    assert problems(**{**BAG_SCALE, "packer": ""}) == [
        "scale[0].packer: is required when role = 'bags' (the packer whose bags it weighs)"
    ]
    assert problems(**{**BAG_SCALE, "packer": "line9"}) == [
        "scale[0].packer: there is no [[packer]] named 'line9' (packers: line1)"
    ]
    assert problems(**{**BAG_SCALE, "role": "bag"}) == [
        "scale[0].role: must be one of 'truck', 'bags', not 'bag'"
    ]
    assert problems(**{k: v for k, v in BAG_SCALE.items() if k not in ("min_weight_kg",)}) == [
        "scale[0].min_weight_kg: 500 kg would miss the 50 kg bags of line1; set it to at most 25"
    ]
    assert problems(**{k: v for k, v in BAG_SCALE.items() if k != "band_g"}) == [
        "scale[0].band_g: 40000 g is not below min_weight_kg (20 kg); "
        "set band_g for the bags, e.g. band_g = 200"
    ]
    assert problems(name="scale1", port="p", packer="line1", band_g=50) == [
        "scale[0].packer: only a bag scale (role = 'bags') names a packer",
        "scale[0].band_g: is for bag scales (role = 'bags'); a truck scale uses band_kg",
    ]
    data = {
        "terminal": {"id": "wb1", "scale_queue": "bags1"},
        "packer": [PACKER],
        "scale": [BAG_SCALE],
    }
    with pytest.raises(cfg.ConfigError) as exc:
        cfg.parse(data)
    assert exc.value.problems == [
        "terminal.scale_queue: 'bags1' is a bag scale; name a truck scale or leave it empty"
    ]


def test_bag_scale_capture_settings_come_from_the_gram_keys() -> None:
    c = cfg.parse({"terminal": {"id": "wb1"}, "packer": [PACKER], "scale": [BAG_SCALE]})
    assert CaptureSettings.from_config(c.scales[0]) == CaptureSettings(
        min_weight_kg=20, zero_band_kg=Decimal("0.2"), band_kg=Decimal("0.1"), exact=True
    )
    no_grams = ScaleConfig(name="b", port="p", role="bags", packer="x", min_weight_kg=20)
    assert CaptureSettings.from_config(no_grams) == CaptureSettings(min_weight_kg=20, exact=True)


# --- capture --------------------------------------------------------------------------------


def test_bags_are_captured_to_the_indicators_decimals_one_after_another() -> None:
    s = Scenario(BAGS).hold(0, 0.5)
    bag(s, SETTLED).hold(0, 0.7)
    assert s.capture.state == "armed"  # the deck is back at zero: the next bag may come
    bag(s, ["49.87", "49.88", "49.86"]).hold(0, 0.7)
    # the window of 11 readings spans 1.0 s; its median_low is an indicator value, exact
    assert s.outcomes == [
        Captured(
            at_s=101.8,  # 0.5 s empty, 0.3 s of motion, 1.0 s settled
            weight_kg=Decimal("50.12"),
            mode="gross",
            stable_ms=1000,
            samples=11,
        ),
        Captured(
            at_s=104.2,  # + 0.2 s lifting + 0.7 s empty, then the same
            weight_kg=Decimal("49.87"),
            mode="gross",
            stable_ms=1000,
            samples=11,
        ),
    ]
    assert all(str(o.weight_kg) in ("50.12", "49.87") for o in s.outcomes)  # no float noise


def test_a_gram_indicator_and_a_truck_capture_of_the_same_bag() -> None:
    grams = bag(Scenario(BAGS).hold(0, 0.5), ["50120", "50130", "50110"], unit="g")
    assert [o.weight_kg for o in grams.outcomes if isinstance(o, Captured)] == [Decimal("50.12")]
    # the same bag on a whole-kg capture (a truck scale's path) could only say 50
    whole = Scenario(CaptureSettings(min_weight_kg=20, zero_band_kg=0, band_kg=1, hold_s=1.0))
    bag(whole.hold(0, 0.5), SETTLED)
    assert [o.weight_kg for o in whole.outcomes if isinstance(o, Captured)] == [50]


def test_a_bag_lifted_before_it_settles_is_not_a_sample() -> None:
    s = Scenario(BAGS).hold(0, 0.5)
    s.frames([reading("50.1", stable=False)] * 5 + [reading("0.00")] * 5)
    assert [type(o).__name__ for o in s.outcomes] == ["Abandoned"]


# --- the spot-check fold --------------------------------------------------------------------


def at(minute: int) -> datetime:
    return datetime(2026, 11, 29, 2, minute, tzinfo=UTC)


def ev(seq: int, kind: str, **data: object) -> Event:
    return Event("pk1", "e", seq, kind, format_at(at(seq)), seq, "b", {"packer": "line1", **data})


def sample(seq: int, kg: object) -> Event:
    return ev(seq, "check.bag_sample", scale="bags1", weight_kg=kg)


def scale_check(seq: int, samples: list[float]) -> Event:
    return ev(seq, "check.bag_weight", source="scale", samples_kg=samples, result="pass")


EVENTS = [
    ev(1, "packer.tally", bags=30, bag_kg=50),
    sample(2, 50.12),
    sample(3, 49.9),
    sample(4, 180),  # a person on the scale, not a bag: ignored
    sample(5, 50.3),
    sample(6, 50.05),  # committed before the service's check: it belongs to the next one
    scale_check(7, [50.12, 49.9, 50.3]),
    sample(8, 50.2),
]


def view(sc: SpotChecks) -> tuple[Any, ...]:
    return (sc.collected(), sc.collecting({"line1": "bags1"}), sc.last_seq)


def test_samples_collect_until_a_check_and_a_rebuild_equals_the_live_fold() -> None:
    checks = ChecksConfig(bag_samples=3)
    live = SpotChecks(checks, TZ, ["line1"])
    assert live.collecting({"line1": "bags1"}) == {
        "line1": {"samples": 0, "needed": 3, "scale": "bags1", "samples_kg": []}
    }
    for e in EVENTS[:5]:
        live.apply(e)
    assert live.collected() == [
        Collected("line1", "bags1", (Decimal("50.12"), Decimal("49.90"), Decimal("50.30")))
    ]
    for e in EVENTS:  # the listener may hand over a batch already read from the store
        live.apply(e)
    assert live.collected() == []
    assert live.collecting({"line1": "bags1"}) == {
        "line1": {"samples": 2, "needed": 3, "scale": "bags1", "samples_kg": [50.05, 50.2]}
    }
    rebuilt = SpotChecks(checks, TZ, ["line1"])
    for e in EVENTS:
        rebuilt.apply(e)
    assert view(rebuilt) == view(live)
    # a typed check completes the bag-weight check: what the scale collected before is dropped
    live.apply(ev(9, "check.bag_weight", source="typed", samples_kg=[50, 50, 50]))
    assert live.collecting({"line1": "bags1"})["line1"]["samples"] == 0
    assert live.collecting({}) == {}  # no bag scale and nothing collected: nothing to show


def test_samples_from_an_earlier_shift_or_before_a_start_are_dropped() -> None:
    def sample_at(seq: int, when: datetime, kg: float) -> Event:
        return Event(
            "pk1",
            "e",
            seq,
            "check.bag_sample",
            format_at(when),
            seq,
            "b",
            {"packer": "line1", "scale": "bags1", "weight_kg": kg},
        )

    sc = SpotChecks(ChecksConfig(bag_samples=3), ZoneInfo("Asia/Shanghai"), ["line1"])
    # 15:50 and 15:55 local, then 16:05 local: a new shift (16:00) starts a new collection
    sc.apply(sample_at(1, datetime(2026, 11, 29, 7, 50, tzinfo=UTC), 50.1))
    sc.apply(sample_at(2, datetime(2026, 11, 29, 7, 55, tzinfo=UTC), 50.2))
    sc.apply(sample_at(3, datetime(2026, 11, 29, 8, 5, tzinfo=UTC), 50.3))
    assert sc.collecting({})["line1"]["samples_kg"] == [50.3]
    sc.apply(sample_at(4, datetime(2026, 11, 29, 8, 6, tzinfo=UTC), 50.0))
    started = Event(
        "pk1",
        "e",
        5,
        "packer.started",
        format_at(datetime(2026, 11, 29, 8, 7, tzinfo=UTC)),
        5,
        "b",
        {"packer": "line1"},
    )
    sc.apply(started)  # a start needs its own check: earlier samples do not count for it
    sc.apply(sample_at(6, datetime(2026, 11, 29, 8, 8, tzinfo=UTC), 49.9))
    assert sc.collecting({})["line1"]["samples_kg"] == [49.9]
    assert sc.collected() == []


# --- the scale service with role "bags" -----------------------------------------------------


def sampled_and_armed(r: Rig, kg: float) -> bool:
    """The scale's topic shows the sample of `kg` and the scale armed for the next bag."""
    topic = r.ctx.hub.get("scale.s1") or {}
    return (topic.get("last_sample") or {}).get("weight_kg") == kg and topic["state"] == "armed"


async def test_a_bag_scale_writes_samples_not_weighings_and_publishes_them(
    tmp_path: Path,
) -> None:
    # each bag stands until it is sampled, however long a busy machine takes to read it, and is
    # lifted off in one frame: a truck scale's step watch would call that a tampered weight; on a
    # bag scale it is how bags come and go
    plan = [(0, True)] * 30 + [(Decimal("50.12"), True)]
    keys = {"role": "bags", "packer": "line1", "min_weight_kg": 20, "zero_band_g": 200}
    async with rig(tmp_path, plan, band_g=100, **keys) as r:  # type: ignore[arg-type]
        await r.until(lambda: len(r.events("check.bag_sample")) == 1)
        r.weights.append((0, True))  # lifted off
        # armed again after this sample (a topic from before the bag says armed too)
        await r.until(lambda: sampled_and_armed(r, 50.12))
        r.weights.extend([(Decimal("49.5"), False)] * 5 + [(Decimal("49.87"), True)])
        await r.until(lambda: len(r.events("check.bag_sample")) == 2)
        r.weights.append((0, True))
        assert r.events("check.bag_sample") == [
            {"packer": "line1", "scale": "s1", "weight_kg": 50.12},
            {"packer": "line1", "scale": "s1", "weight_kg": 49.87},
        ]
        await r.until(lambda: sampled_and_armed(r, 49.87))
        topic = r.ctx.hub.get("scale.s1")
        at = [ev.at for ev in r.ctx.store.iter_events("check.bag_sample")][-1]
        assert topic == {
            "name": "s1",
            "role": "bags",
            "packer": "line1",
            "online": True,
            "weight": 0,
            "unit": "kg",
            "stable": True,
            "state": "armed",
            "last_weighing": None,
            "last_sample": {"packer": "line1", "weight_kg": 49.87, "at": at},
            "frames": topic["frames"],
            "corrupt": 0,
            "resyncs": topic["resyncs"],
        }
        assert [k for k in r.kinds() if k.startswith(("weighing", "alert"))] == []

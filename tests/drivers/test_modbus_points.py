from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modbus_points import Point, ReadGroup, decode, encode, plan, scaled

BOUNDS = {
    "uint16": (0, 2**16 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint32": (0, 2**32 - 1),
    "int32": (-(2**31), 2**31 - 1),
}
RANGES = {
    **{type_: st.integers(lo, hi) for type_, (lo, hi) in BOUNDS.items()},
    "float32": st.floats(width=32, allow_nan=False),
}


@pytest.mark.parametrize(
    ("type_", "order", "swap", "words", "value"),
    [
        ("uint16", "big", False, [0x1234], 0x1234),
        ("uint16", "big", True, [0x1234], 0x3412),
        ("int16", "big", False, [0xFFFE], -2),
        ("uint32", "big", False, [0x0001, 0x0002], 0x00010002),
        ("uint32", "little", False, [0x0002, 0x0001], 0x00010002),
        ("uint32", "big", True, [0x0100, 0x0200], 0x00010002),
        ("uint32", "little", True, [0x0200, 0x0100], 0x00010002),
        ("int32", "big", False, [0xFFFF, 0xFFFF], -1),
        ("int32", "little", False, [0xFFFE, 0xFFFF], -2),
        ("float32", "big", False, [0x42C8, 0x0000], 100.0),
        ("float32", "little", False, [0x0000, 0x42C8], 100.0),
        ("float32", "big", True, [0xC842, 0x0000], 100.0),
        ("bool", "big", False, [0], False),
        ("bool", "big", False, [0x0100], True),
    ],
)
def test_decode_registers(
    type_: str, order: str, swap: bool, words: list[int], value: float | bool
) -> None:
    pt = Point(3, 0, type_, order, swap, label="bags")
    assert decode(pt, words) == value
    assert type(decode(pt, words)) is type(value)
    assert encode(pt, value) == words or type_ == "bool"


def test_decode_bits() -> None:
    assert decode(Point(1, 5, "bool", label="running"), [True]) is True
    assert decode(Point(2, 5, "bool", label="running"), [False]) is False
    assert decode(Point(1, 5, "uint16", label="bags"), [True]) == 1


def test_wrong_word_count() -> None:
    with pytest.raises(ValueError, match="needs 2 words, got 1"):
        decode(Point(3, 0, "uint32", label="bags"), [1])


def test_scaled() -> None:
    assert scaled(Point(3, 0, scale=0.1, label="bags"), 1234) == pytest.approx(123.4)
    assert scaled(Point(3, 0, label="bags"), 1234) == 1234
    assert scaled(Point(1, 0, "bool", scale=2.0, label="running"), True) is True


@given(
    st.sampled_from(sorted(RANGES)),
    st.sampled_from(["big", "little"]),
    st.booleans(),
    st.data(),
)
def test_round_trip(type_: str, order: str, swap: bool, data: st.DataObject) -> None:
    pt = Point(4, 7, type_, order, swap, label="bags")
    value = data.draw(RANGES[type_])
    words = encode(pt, value)
    assert all(0 <= w <= 0xFFFF for w in words)
    back = decode(pt, words)
    if type_ == "float32":
        assert back == value or (math.isinf(value) and back == value)
    else:
        assert back == value


@given(
    st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2),
    st.sampled_from(sorted(RANGES)),
    st.sampled_from(["big", "little"]),
    st.booleans(),
)
def test_any_words_decode_to_the_value_that_encodes_back_to_them(
    words: list[int], type_: str, order: str, swap: bool
) -> None:
    pt = Point(3, 0, type_, order, swap, label="bags")
    n = 2 if type_ in ("uint32", "int32", "float32") else 1
    value = decode(pt, words[:n])
    if type_ == "float32":
        assert type(value) is float
        if math.isnan(value):  # a NaN's payload bits are not kept: it comes back as a NaN
            assert math.isnan(decode(pt, encode(pt, value)))
            return
    else:
        assert type(value) is int and BOUNDS[type_][0] <= value <= BOUNDS[type_][1]
    assert encode(pt, value) == words[:n]


def test_plan_groups_contiguous_points_per_function() -> None:
    bags = Point(3, 0, "uint32", label="bags")
    ret = Point(3, 2, "uint16", label="returned")
    brk = Point(3, 3, "uint16", label="broken")
    loaded = Point(3, 10, "uint32", "little", label="loaded")
    running = Point(1, 0, "bool", label="running")
    spout = Point(1, 1, "bool", label="spout")
    inp = Point(4, 0, "uint16", label="spout")
    points = [
        ("loaded", loaded),
        ("bags", bags),
        ("running", running),
        ("returned", ret),
        ("broken", brk),
        ("s1", spout),
        ("s2", inp),
    ]
    assert plan(points) == [
        ReadGroup(1, 0, 2, (("running", running), ("s1", spout))),
        ReadGroup(3, 0, 4, (("bags", bags), ("returned", ret), ("broken", brk))),
        ReadGroup(3, 10, 2, (("loaded", loaded),)),
        ReadGroup(4, 0, 1, (("s2", inp),)),
    ]
    group = plan(points)[1]
    assert group.values([0, 70000 - 65536, 5, 6][:4]) == {"bags": 4464, "returned": 5, "broken": 6}


def test_plan_respects_request_limit() -> None:
    pts = [(f"p{i}", Point(3, i, "uint16", label="spout")) for i in range(130)]
    groups = plan(pts)
    assert [(g.address, g.count) for g in groups] == [(0, 125), (125, 5)]


def test_plan_spans_gaps_up_to_the_limit_it_is_given_and_keeps_the_reads_it_joined() -> None:
    bags = Point(3, 0, "uint16", label="bags")
    broken = Point(3, 2, "uint16", label="broken")
    spout = Point(3, 5, "uint16", label="spout")
    loaded = Point(3, 30, "uint32", "little", label="loaded")
    running = Point(1, 0, "bool", label="running")
    points = [
        ("bags", bags),
        ("broken", broken),
        ("s1", spout),
        ("loaded", loaded),
        ("running", running),
    ]
    separate = plan(points)
    assert [(g.function, g.address, g.count) for g in separate] == [
        (1, 0, 1),
        (3, 0, 1),
        (3, 2, 1),
        (3, 5, 1),
        (3, 30, 2),
    ]
    assert plan(points, 0) == separate
    joined = plan(points, 3)
    # gaps of 1 and 2 words are spanned, the gap of 24 is not
    assert [(g.function, g.address, g.count) for g in joined] == [(1, 0, 1), (3, 0, 6), (3, 30, 2)]
    assert joined[1].parts == tuple(separate[1:4])
    assert joined[0].parts == () and joined[2].parts == ()
    words = [7, 99, 3, 99, 99, 11]
    assert joined[1].values(words) == {"bags": 7, "broken": 3, "s1": 11}
    assert [(g.address, g.count) for g in plan(points, 24)[1:]] == [(0, 32)]


def test_a_spanned_read_stays_within_the_request_limit() -> None:
    pts = [(f"p{i}", Point(3, i * 10, "uint16", label="spout")) for i in range(20)]
    groups = plan(pts, 16)
    # addresses 0..190 step 10: one read would be 191 words; the limit is 125
    assert [(g.address, g.count) for g in groups] == [(0, 121), (130, 61)]
    assert all(g.count <= 125 for g in groups)

"""Property tests: any bytes never raise; every reading is a framed, checked frame."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.scale import (
    PROTOCOLS,
    Corrupt,
    Reading,
    encode,
    make_splitter,
    toledo,
    xk3190,
    xk3190_eq,
)
from drivers.scale import ascii as ascii_format

# Byte soup biased towards the bytes that matter to framing.
FRAMING = b"\x02\x03\x0d\x0a\x82\x8d=+-.,0123456789 STUGNkgOL"
VALID = [
    encode(p, Decimal(w), stable=s, parity=par)
    for p in sorted(PROTOCOLS)
    for w in ("0", "12340", "-0.50", "25.50")
    for s in (True, False)
    for par in (False, True)
] + [toledo.encode(Decimal("1234"), checksum=False)]
soup = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([bytes([b]) for b in FRAMING]),
        st.sampled_from(VALID),
        st.sampled_from(VALID).map(lambda f: f[: len(f) // 2]),
    ),
    max_size=60,
).map(b"".join)
chunk_sizes = st.lists(st.integers(1, 30), min_size=1, max_size=8)


def _feed(protocol: str, data: bytes, sizes: list[int], checksum: bool = True) -> list[Reading]:
    splitter = make_splitter(protocol, checksum=checksum)
    items = []
    i = 0
    k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        items += splitter.feed(data[i : i + n])
        i += n
        k += 1
    items += splitter.finish()
    assert splitter.frames == sum(isinstance(x, Reading) for x in items)
    assert splitter.corrupt + splitter.resyncs == sum(isinstance(x, Corrupt) for x in items)
    assert len(splitter._buf) == 0
    return [x for x in items if isinstance(x, Reading)]


def _check_invariants(protocol: str, data: bytes, readings: list[Reading], checksum: bool) -> None:
    if protocol == "toledo":
        masked = bytes(b & 0x7F for b in data)
        for r in readings:
            assert r.raw in masked
            assert len(r.raw) == (18 if checksum else 17)
            assert r.raw[0] == 0x02 and r.raw[16] == 0x0D and 0x02 not in r.raw[1:16]
            if checksum:
                assert sum(r.raw) & 0x7F == 0
            assert toledo.parse_frame(r.raw, with_checksum=checksum) == r
    elif protocol == "xk3190":
        for r in readings:
            assert r.raw in data and len(r.raw) == 12
            assert r.raw[0] == 0x02 and r.raw[11] == 0x03
            hi, lo = xk3190.nibble(r.raw[9]), xk3190.nibble(r.raw[10])
            assert hi is not None and lo is not None
            assert hi << 4 | lo == xk3190.check(r.raw)
            assert xk3190.parse_frame(r.raw) == r
    elif protocol == "xk3190-eq":
        for r in readings:
            # accepted only when the same chunk came twice in a row, each closed by '='
            assert r.raw + r.raw + b"=" in data
            assert xk3190_eq.parse_chunk(r.raw[1:]) == r
    else:
        for r in readings:
            assert any(r.raw + t in data for t in (b"\r", b"\n"))
            assert ascii_format.parse_line(r.raw) == r


@settings(max_examples=300)
@given(
    protocol=st.sampled_from(sorted(PROTOCOLS)),
    data=soup,
    sizes=chunk_sizes,
    checksum=st.booleans(),
)
def test_any_bytes_never_raise_and_readings_are_framed(
    protocol: str, data: bytes, sizes: list[int], checksum: bool
) -> None:
    readings = _feed(protocol, data, sizes, checksum)
    _check_invariants(protocol, data, readings, checksum)
    # chunking never changes what is accepted
    assert readings == _feed(protocol, data, [len(data) + 1], checksum)


weights_kg = st.integers(-99_999, 999_999).map(Decimal)
decimal_weights = st.builds(
    lambda n, places: Decimal(n).scaleb(-places), st.integers(-99_999, 999_999), st.integers(0, 3)
)


@settings(max_examples=200)
@given(
    weight=decimal_weights,
    stable=st.booleans(),
    net=st.booleans(),
    parity=st.booleans(),
    checksum=st.booleans(),
)
def test_toledo_round_trip(
    weight: Decimal, stable: bool, net: bool, parity: bool, checksum: bool
) -> None:
    frame = toledo.encode(weight, stable=stable, net=net, parity=parity, checksum=checksum)
    [r] = _feed("toledo", frame, [7], checksum)
    assert (r.weight, r.stable, r.mode, r.overload, r.unit) == (
        weight,
        stable,
        "net" if net else "gross",
        False,
        "kg",
    )


@settings(max_examples=200)
@given(weight=decimal_weights, alt=st.booleans())
def test_xk3190_round_trip(weight: Decimal, alt: bool) -> None:
    [r] = _feed("xk3190", xk3190.encode(weight, alt_nibbles=alt), [5])
    assert r.weight == weight and r.raw == xk3190.encode(weight, alt_nibbles=alt)


@settings(max_examples=200)
@given(weight=decimal_weights, sign=st.booleans())
def test_xk3190_eq_round_trip(weight: Decimal, sign: bool) -> None:
    if not sign:
        weight = abs(weight)
    chunk = xk3190_eq.encode(weight, sign=sign)
    readings = _feed("xk3190-eq", chunk * 3 + b"=", [3])
    assert [r.weight for r in readings] == [weight, weight]


@settings(max_examples=200)
@given(weight=decimal_weights, stable=st.booleans(), net=st.booleans())
def test_ascii_round_trip(weight: Decimal, stable: bool, net: bool) -> None:
    [r] = _feed("ascii", ascii_format.encode(weight, stable=stable, net=net), [4])
    assert (r.weight, r.stable, r.mode) == (weight, stable, "net" if net else "gross")


@settings(max_examples=150)
@given(
    protocol=st.sampled_from(["toledo", "xk3190", "ascii"]),
    weights=st.lists(weights_kg, min_size=1, max_size=10),
    garbage=st.lists(st.binary(max_size=20), min_size=10, max_size=10),
    sizes=chunk_sizes,
)
def test_frames_survive_garbage_between_them(
    protocol: str, weights: list[Decimal], garbage: list[bytes], sizes: list[int]
) -> None:
    """Garbage free of start bytes (Toledo, XK3190) or commas (ASCII lines) loses no frame."""
    data = b""
    for w, g in zip(weights, garbage, strict=False):
        if protocol == "ascii":
            g = g.replace(b",", b"") + b"\r\n"
        else:
            g = bytes(b for b in g if b & 0x7F != 0x02)
        data += g + encode(protocol, w, parity=True)
    readings = _feed(protocol, data, sizes)
    assert [r.weight for r in readings] == weights


def test_soup_reaches_valid_frames() -> None:
    """The soup strategy does produce accepted frames, so the invariants above are exercised."""
    for protocol in PROTOCOLS:
        frames = [f for f in VALID if _feed(protocol, f + f + b"=", [64])]
        assert frames, protocol

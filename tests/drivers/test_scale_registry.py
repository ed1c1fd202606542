"""A scale format is one module that registers itself: config, `tally scale` and the simulator
find it in the registry."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agent import cli
from agent.config import ConfigError, parse
from drivers.scale import PROTOCOLS, Protocol, encode, make_splitter, register
from drivers.scale.reading import FixedSplitter, Item, Reading


class TinySplitter(FixedSplitter):
    """`<01234>`: five digits of kg between angle brackets."""

    start = ord("<")
    end = ord(">")
    end_index = 6
    length = 7

    def __init__(self, checksum: bool = True) -> None:
        super().__init__()

    def parse(self, frame: bytes) -> Item:
        return Reading(Decimal(frame[1:6].decode()), "kg", None, None, False, frame)


def tiny_frame(
    weight: Decimal | None,
    *,
    stable: bool = True,
    net: bool = False,
    checksum: bool = True,
    parity: bool = False,
) -> bytes:
    return f"<{int(weight or 0):05d}>".encode()


@pytest.fixture
def tiny() -> Iterator[Protocol]:
    protocol = register(
        Protocol("tiny", TinySplitter, tiny_frame, has_stable_flag=False, has_checksum=False)
    )
    try:
        yield protocol
    finally:
        PROTOCOLS.pop("tiny")


def _scale(protocol: str) -> dict[str, object]:
    return {"terminal": {"id": "t"}, "scale": [{"name": "s", "port": "p", "protocol": protocol}]}


def test_the_formats_in_their_order() -> None:
    assert list(PROTOCOLS) == ["toledo", "xk3190", "xk3190-eq", "ascii"]
    with pytest.raises(ConfigError) as info:
        parse(_scale("mettler"))
    assert info.value.problems == [
        "scale[0].protocol: must be one of 'toledo', 'xk3190', 'xk3190-eq', 'ascii', not 'mettler'"
    ]


def test_a_registered_format_is_known_to_config_decode_and_encode(
    tiny: Protocol, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse(_scale("tiny")).scales[0].protocol == "tiny"
    with pytest.raises(ConfigError) as info:
        parse(_scale("mettler"))
    assert info.value.problems == [
        "scale[0].protocol: must be one of 'toledo', 'xk3190', 'xk3190-eq', 'ascii', 'tiny', "
        "not 'mettler'"
    ]
    data = encode("tiny", Decimal(1234)) + b"xx" + encode("tiny", Decimal(50))
    assert data == b"<01234>xx<00050>"
    raw = tmp_path / "raw"
    raw.write_bytes(data)
    assert cli.main(["scale", "decode", "--protocol", "tiny", str(raw)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        '{"weight": 1234, "unit": "kg", "stable": null, "mode": null, "overload": false}',
        '{"weight": 50, "unit": "kg", "stable": null, "mode": null, "overload": false}',
    ]
    assert err == "frames 2, corrupt 0, resyncs 1\n"
    assert cli.main(["scale", "decode", "--protocol", "mettler", str(raw)]) == 2
    assert capsys.readouterr().err == (
        "tally: unknown protocol 'mettler'; use one of toledo, xk3190, xk3190-eq, ascii, tiny\n"
    )


def test_a_name_registers_once(tiny: Protocol) -> None:
    with pytest.raises(ValueError, match="'tiny' is registered twice"):
        register(tiny)
    assert isinstance(make_splitter("tiny"), TinySplitter)

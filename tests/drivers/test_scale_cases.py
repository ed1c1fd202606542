"""Table-driven parser cases: one folder per case under scale_cases/<protocol>/<case>/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drivers.scale import Reading, make_splitter

CASES = Path(__file__).parent / "scale_cases"


def _input(folder: Path) -> bytes:
    hex_file = folder / "input.hex"
    if hex_file.exists():
        lines = hex_file.read_text().splitlines()
        return bytes.fromhex(" ".join(x for x in lines if not x.startswith("#")))
    return (folder / "input.bin").read_bytes()


def _as_json(r: Reading) -> dict[str, Any]:
    return {
        "weight": None if r.weight is None else str(r.weight),
        "unit": r.unit,
        "stable": r.stable,
        "mode": r.mode,
        "overload": r.overload,
        "tare": None if r.tare is None else str(r.tare),
        "raw": r.raw.hex(" "),
    }


def _cases() -> list[Any]:
    return [
        pytest.param(folder, id=f"{folder.parent.name}/{folder.name}")
        for folder in sorted(CASES.glob("*/*"))
        if folder.is_dir()
    ]


def test_every_protocol_has_cases() -> None:
    assert sorted(p.name for p in CASES.iterdir()) == ["ascii", "toledo", "xk3190", "xk3190-eq"]
    assert len(_cases()) >= 40


@pytest.mark.parametrize("folder", _cases())
@pytest.mark.parametrize("chunk", [0, 1, 5])
def test_case(folder: Path, chunk: int) -> None:
    """Whole input at once, then byte by byte and in 5-byte pieces: the same readings."""
    expected = json.loads((folder / "expected.json").read_text())
    options = expected.get("options", {})
    splitter = make_splitter(folder.parent.name, checksum=options.get("checksum", True))
    data = _input(folder)
    items = []
    if chunk == 0:
        items = splitter.feed(data)
    else:
        for i in range(0, len(data), chunk):
            items += splitter.feed(data[i : i + chunk])
    items += splitter.finish()
    readings = [_as_json(r) for r in items if isinstance(r, Reading)]
    got = {
        "readings": readings,
        "frames": splitter.frames,
        "corrupt": splitter.corrupt,
        "resyncs": splitter.resyncs,
    }
    if options:
        got["options"] = options
    assert got == expected

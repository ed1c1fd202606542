"""`tally scale decode / weighings / detect` through the real command line."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

from drivers.scale import encode
from tests.daemon import tally


def test_decode_stdin_prints_one_line_per_frame_and_a_summary() -> None:
    data = bytes.fromhex("02 2b 30 30 32 30 30 30 32 31 42 03 02 2d 30 30 30 30 35 30 32 31 41 03")
    proc = tally("scale", "decode", "--protocol", "xk3190", input=data.decode("latin-1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        '{"weight": 20.00, "unit": "kg", "stable": null, "mode": null, "overload": false}',
        '{"weight": -0.50, "unit": "kg", "stable": null, "mode": null, "overload": false}',
    ]
    assert proc.stderr == "frames 2, corrupt 0, resyncs 0\n"


def test_decode_file_skips_and_counts_corrupt_frames(tmp_path: Path) -> None:
    good = bytes.fromhex("02 31 30 20 20 31 32 33 34 30 20 20 20 20 20 30 0d 06")
    bad = good[:8] + b"9" + good[9:]
    path = tmp_path / "capture.bin"
    path.write_bytes(b"\x55\xaa" + good + bad + good[:11] + bytes(b | 0x80 for b in good))
    proc = tally("scale", "decode", "--protocol", "toledo", str(path))
    line = '{"weight": 12340, "unit": "kg", "stable": true, "mode": "gross", "overload": false}'
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [line, line]
    assert proc.stderr == "frames 2, corrupt 1, resyncs 2\n"


def test_decode_without_checksum(tmp_path: Path) -> None:
    frame = bytes.fromhex("02 2c 39 20 20 20 32 35 35 30 20 20 20 31 32 30 0d")
    path = tmp_path / "raw"
    path.write_bytes(frame * 2)
    proc = tally("scale", "decode", "--protocol", "toledo", "--no-checksum", str(path))
    assert (
        proc.stdout.splitlines()
        == ['{"weight": 25.50, "unit": "kg", "stable": false, "mode": "net", "overload": false}']
        * 2
    )
    assert tally("scale", "decode", "--protocol", "toledo", str(path)).stdout == ""


def test_bad_protocol_and_unreadable_file_are_one_sentence_exit_2(tmp_path: Path) -> None:
    proc = tally("scale", "decode", "--protocol", "mettler", input="")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "tally: unknown protocol 'mettler'; use one of toledo, xk3190, xk3190-eq, ascii\n"
    )
    proc = tally("scale", "weighings", "--protocol", "ascii", "--rate", "10", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"tally: cannot read {tmp_path / 'x'}: No such file or directory; pass a readable file\n"
    )
    proc = tally("scale", "weighings", "--protocol", "ascii", "--rate", "0", input="")
    assert proc.returncode == 2
    assert proc.stderr == "tally: --rate must be more than 0 frames per second, not 0\n"


def _truck_stream(protocol: str, plan: list[tuple[int, int, bool]]) -> bytes:
    """Frames for (kg, count, stable) segments."""
    return b"".join(
        encode(protocol, Decimal(kg), stable=stable) for kg, n, stable in plan for _ in range(n)
    )


def test_weighings_replays_two_trucks(tmp_path: Path) -> None:
    plan = [(0, 10, True), (20_000, 5, False), (40_000, 40, True), (10_000, 5, False)]
    plan += [(0, 30, True), (15_000, 5, False), (15_020, 40, True), (0, 10, True)]
    path = tmp_path / "trucks.bin"
    path.write_bytes(_truck_stream("toledo", plan))
    proc = tally("scale", "weighings", "--protocol", "toledo", "--rate", "10", str(path))
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x) for x in proc.stdout.splitlines()] == [
        {
            "event": "weighing.captured",
            "weight_kg": 40_000,
            "mode": "gross",
            "stable_ms": 3000,
            "samples": 31,
            "at_s": 4.5,
        },
        {
            "event": "weighing.captured",
            "weight_kg": 15_020,
            "mode": "gross",
            "stable_ms": 3000,
            "samples": 31,
            "at_s": 12.5,
        },
    ]
    assert proc.stderr == "frames 145, corrupt 0, resyncs 0; captured 2, abandoned 0\n"


def test_weighings_reports_a_truck_that_leaves_unstable(tmp_path: Path) -> None:
    plan = [(0, 10, True), (30_000, 20, False), (0, 10, True)]
    path = tmp_path / "t.bin"
    path.write_bytes(_truck_stream("ascii", plan))
    proc = tally(
        "scale", "weighings", "--protocol", "ascii", "--rate", "5", "--hold-s", "1", str(path)
    )
    assert [json.loads(x) for x in proc.stdout.splitlines()] == [
        {"event": "weighing.abandoned", "reason": "left_unstable", "max_kg": 30_000, "at_s": 6.0}
    ]
    assert proc.stderr == "frames 40, corrupt 0, resyncs 0; captured 0, abandoned 1\n"


def test_weighing_options_change_the_capture(tmp_path: Path) -> None:
    plan = [(0, 10, True), (800, 40, True), (0, 10, True)]
    path = tmp_path / "light.bin"
    path.write_bytes(_truck_stream("xk3190", plan))
    args = ("scale", "weighings", "--protocol", "xk3190", "--rate", "10", str(path))
    assert tally(*args).stdout.count("captured") == 1
    assert tally(*args, "--min-weight-kg", "1000").stdout == ""
    assert [json.loads(x) for x in tally(*args, "--hold-s", "5").stdout.splitlines()] == [
        {"event": "weighing.abandoned", "reason": "left_unstable", "max_kg": 800, "at_s": 5.0}
    ]


def test_detect_says_plainly_when_nothing_decodes() -> None:
    master, slave = os.openpty()
    try:
        proc = tally("scale", "detect", os.ttyname(slave), "--timeout-s", "0.05")
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[-1].startswith("nothing decoded cleanly on /dev/pts/")
    assert proc.stderr.count("trying ") == 20


def test_detect_on_a_missing_port_is_exit_2(tmp_path: Path) -> None:
    proc = tally("scale", "detect", str(tmp_path / "ttyUSB9"), "--timeout-s", "0.05")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "trying 9600 8N1 ...",
        f"tally: cannot open {tmp_path / 'ttyUSB9'} (No such file or directory); "
        "check the port path and that no other program holds it",
    ]

"""`tally scale`: decode raw indicator bytes, replay them into weighings, detect a port's format."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

HELP = "decode raw scale-indicator bytes, replay them as weighings, or detect a port's format"
_CHUNK = 65536


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The decode, weighings and detect subcommands."""
    sub = p.add_subparsers(dest="scale_command", metavar="ACTION", required=True)

    d = sub.add_parser(
        "decode",
        help="raw bytes -> one JSON reading per accepted frame (stdin when no FILE)",
        description="Print one JSON object per accepted frame; a summary goes to stderr.",
    )
    _common(d)

    w = sub.add_parser(
        "weighings",
        help="replay raw bytes as if received at HZ frames/s -> capture events as JSON lines",
        description="Replay raw bytes through the capture state machine (docs/devices.md).",
    )
    _common(w)
    w.add_argument("--rate", type=float, required=True, metavar="HZ", help="frames per second")
    w.add_argument("--min-weight-kg", type=int, default=500, metavar="KG")
    w.add_argument("--zero-band-kg", type=int, default=40, metavar="KG")
    w.add_argument("--band-kg", type=int, default=40, metavar="KG")
    w.add_argument("--hold-s", type=float, default=3.0, metavar="S")
    w.add_argument("--min-samples", type=int, default=5, metavar="N")
    w.add_argument("--max-wait-s", type=float, default=120.0, metavar="S")
    w.add_argument("--clear-s", type=float, default=2.0, metavar="S")

    t = sub.add_parser(
        "detect",
        help="find an indicator's baud rate, framing and format; print the [[scale]] snippet",
        description="Try 9600/2400/1200/4800/19200 baud with 8N1, 7E1, 8E1 and 8O1 and every "
        "format; print the config snippet that decodes cleanly (exit 1 when none does).",
    )
    t.add_argument("port", metavar="PORT", help="a device path or any pyserial URL")
    t.add_argument(
        "--timeout-s", type=float, default=1.5, metavar="S", help="listening time per setting"
    )


def _common(p: argparse.ArgumentParser) -> None:
    from drivers.scale import PROTOCOLS

    p.add_argument("--protocol", required=True, metavar="P", help=" | ".join(PROTOCOLS))
    p.add_argument(
        "--no-checksum", action="store_true", help="toledo frames without the checksum byte"
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="raw bytes (stdin when absent)")


def main(args: argparse.Namespace) -> int:
    """Run the chosen action."""
    if args.scale_command == "detect":
        return _detect(args)
    from agent.errors import UsageError
    from drivers.scale import PROTOCOLS

    if args.protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {args.protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if args.scale_command == "decode":
        return _decode(args)
    if args.rate <= 0:
        raise UsageError(f"--rate must be more than 0 frames per second, not {args.rate:g}")
    return _weighings(args)


def _chunks(path: str | None) -> Iterator[bytes]:
    from agent.errors import UsageError

    if path is None:
        fd = sys.stdin.buffer.fileno()
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except OSError:  # a pseudo-terminal whose other side closed: end of input
                return
            if not chunk:
                return
            yield chunk
    try:
        f: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed below, generator
    except OSError as exc:
        raise UsageError(
            f"cannot read {path}: {exc.strerror or exc}; pass a readable file"
        ) from None
    with f:
        try:
            while chunk := f.read(_CHUNK):
                yield chunk
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _items(args: argparse.Namespace) -> Iterator[Any]:
    """Every splitter item of the input, then the splitter itself (for its counters)."""
    from drivers.scale import make_splitter

    splitter = make_splitter(args.protocol, checksum=not args.no_checksum)
    for chunk in _chunks(args.file):
        yield from splitter.feed(chunk)
    yield from splitter.finish()
    yield splitter


def _summary(splitter: Any, extra: str = "") -> None:
    print(
        f"frames {splitter.frames}, corrupt {splitter.corrupt}, resyncs {splitter.resyncs}{extra}",
        file=sys.stderr,
    )


def reading_json(reading: Any) -> str:
    """One decode line; the weight keeps the indicator's decimals (20.00 stays 20.00)."""
    import json

    rest = json.dumps(
        {
            "unit": reading.unit,
            "stable": reading.stable,
            "mode": reading.mode,
            "overload": reading.overload,
        }
    )
    weight = "null" if reading.weight is None else str(reading.weight)
    return '{"weight": ' + weight + ", " + rest[1:]


def _decode(args: argparse.Namespace) -> int:
    from drivers.scale import Reading

    out = sys.stdout
    for item in _items(args):
        if isinstance(item, Reading):
            out.write(reading_json(item) + "\n")
        elif not hasattr(item, "raw"):
            out.flush()
            _summary(item)
    return 0


def _weighings(args: argparse.Namespace) -> int:
    import json

    from agent.domain.capture import Capture, Captured, CaptureSettings
    from drivers.scale import Reading

    settings = CaptureSettings(
        min_weight_kg=args.min_weight_kg,
        zero_band_kg=args.zero_band_kg,
        band_kg=args.band_kg,
        hold_s=args.hold_s,
        min_samples=args.min_samples,
        max_wait_s=args.max_wait_s,
        clear_s=args.clear_s,
        silence_s=max(2.0, 3.0 / args.rate),
    )
    capture = Capture(settings)
    counts = {"captured": 0, "abandoned": 0}
    for index, item in enumerate(_items(args)):
        if not hasattr(item, "raw"):
            _summary(item, f"; captured {counts['captured']}, abandoned {counts['abandoned']}")
            break
        t = index / args.rate
        for outcome in capture.feed(t, item if isinstance(item, Reading) else None):
            if isinstance(outcome, Captured):
                counts["captured"] += 1
                line = {
                    "event": "weighing.captured",
                    "weight_kg": outcome.weight_kg,
                    "mode": outcome.mode,
                    "stable_ms": outcome.stable_ms,
                    "samples": outcome.samples,
                    "at_s": round(outcome.at_s, 3),
                }
            else:
                counts["abandoned"] += 1
                line = {
                    "event": "weighing.abandoned",
                    "reason": outcome.reason,
                    "max_kg": outcome.max_kg,
                    "at_s": round(outcome.at_s, 3),
                }
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
    return 0


def _detect(args: argparse.Namespace) -> int:
    from agent.errors import UsageError
    from drivers.scale import PROTOCOLS
    from drivers.serial_scale import PortError, PortSettings, detect

    if args.timeout_s <= 0:
        raise UsageError(f"--timeout-s must be more than 0, not {args.timeout_s:g}")

    def on_try(s: PortSettings) -> None:
        print(
            f"trying {s.baudrate} {s.bytesize}{s.parity}{s.stopbits:g} ...",
            file=sys.stderr,
            flush=True,
        )

    try:
        found = detect(args.port, args.timeout_s, on_try=on_try)
    except PortError as exc:
        raise UsageError(f"{exc}; check the port path and that no other program holds it") from None
    if found is None:
        *others, last = PROTOCOLS
        print(
            f"nothing decoded cleanly on {args.port}: no frames of {', '.join(others)} or "
            f"{last} at 1200-19200 baud; check the cable, that the indicator sends continuously, "
            "and its output settings",
            file=sys.stderr,
        )
        return 1
    s = found.settings
    print(
        f"# {found.frames} clean {found.protocol} frames at {s.baudrate} baud "
        f"{s.bytesize}{s.parity}{s.stopbits:g}"
    )
    print("[[scale]]")
    print('name = "scale1"')
    print(f'port = "{s.url}"')
    print(f"baudrate = {s.baudrate}")
    print(f"bytesize = {s.bytesize}")
    print(f'parity = "{s.parity}"')
    print(f"stopbits = {s.stopbits:g}")
    print(f'protocol = "{found.protocol}"')
    if not found.checksum:
        print("checksum = false")
    return 0

"""`tally simulate scale`: a weighbridge indicator on a pseudo-terminal, playing trucks."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import signal
import sys
import termios
import time
import tty
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from types import FrameType

from drivers.scale import PROTOCOLS, encode

HELP = "a simulated scale indicator on a pseudo-terminal; prints its device path first"
DIVISION_KG = 10  # a weighbridge shows 10 kg steps; `--division-kg 0.01` is a bag scale


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally simulate scale`."""
    p.add_argument("--protocol", required=True, metavar="P", help=" | ".join(PROTOCOLS))
    p.add_argument("--seed", type=int, default=None, metavar="N", help="random seed")
    p.add_argument("--rate", type=float, default=10.0, metavar="HZ", help="frames per second")
    p.add_argument(
        "--weights",
        default="",
        metavar="KG,KG,...",
        help="truck weights in kg, played in order and cycled (default: random tare 12-18 t "
        "and gross 40-55 t, alternating); with a --division-kg below 1 decimals like 50.12",
    )
    p.add_argument(
        "--division-kg",
        default=str(DIVISION_KG),
        metavar="KG",
        help="the display step in kg (default 10; 0.01 or 0.02 for a bag scale)",
    )
    p.add_argument("--trucks", type=int, default=0, metavar="N", help="stop after N (0 = never)")
    p.add_argument("--empty-s", type=float, default=4.0, metavar="S", help="empty deck time")
    p.add_argument("--settle-s", type=float, default=8.0, metavar="S", help="time on the deck")
    p.add_argument("--ramp-s", type=float, default=4.0, metavar="S", help="driving on or off")
    p.add_argument("--noise-kg", type=float, default=10.0, metavar="KG", help="noise when settled")


def _problem(args: argparse.Namespace) -> str | None:
    if args.protocol not in PROTOCOLS:
        return f"unknown protocol {args.protocol!r}; use one of {', '.join(PROTOCOLS)}"
    if not 0 < args.rate <= 1000:
        return f"--rate must be between 0 and 1000 frames per second, not {args.rate:g}"
    for name in ("empty_s", "settle_s", "ramp_s", "noise_kg"):
        if getattr(args, name) < 0:
            return f"--{name.replace('_', '-')} must not be negative"
    if args.trucks < 0:
        return "--trucks must be 0 (forever) or more"
    try:
        division = Decimal(args.division_kg)
    except InvalidOperation:
        division = Decimal(0)
    if not (division.is_finite() and 0 < division <= 1000):
        return f"--division-kg must be a number of kg above 0, such as 10 or 0.01, not {args.division_kg!r}"
    try:
        weights = parse_weights(args.weights, division)
    except ValueError:
        if division < 1:
            return f"--weights must be kilograms such as 50.12 separated by commas, not {args.weights!r}"
        return f"--weights must be whole kilograms separated by commas, not {args.weights!r}"
    if any(not 0 < w < 1_000_000 for w in weights):
        return "--weights must be between 1 and 999999 kg"
    return None


def parse_weights(text: str, division: Decimal) -> list[float]:
    """The `--weights` list: whole kg, or decimals when the display step is below 1 kg."""
    out: list[float] = []
    for w in (x.strip() for x in text.split(",")):
        if not w:
            continue
        if division >= 1:
            out.append(int(w))
            continue
        try:
            d = Decimal(w)
        except InvalidOperation:
            raise ValueError(w) from None
        if not d.is_finite():
            raise ValueError(w)
        out.append(float(d))
    return out


def truck_weights(weights: list[float], rng: random.Random) -> Iterator[float]:
    """The given weights cycled, or alternating random tare and gross weights."""
    if weights:
        yield from itertools.cycle(weights)
    for i in itertools.count():
        lo, hi = (12_000, 18_000) if i % 2 == 0 else (40_000, 55_000)
        yield round(rng.uniform(lo, hi) / DIVISION_KG) * DIVISION_KG


def profile(args: argparse.Namespace, rng: random.Random) -> Iterator[tuple[float, bool]]:
    """(true weight in kg, indicator's stable flag) for each frame, truck after truck."""
    rate = args.rate
    weights = parse_weights(args.weights, Decimal(args.division_kg))
    n_empty = max(1, round(args.empty_s * rate))
    n_ramp = max(1, round(args.ramp_s * rate))
    n_settle = max(1, round(args.settle_s * rate))
    n_bounce = min(n_settle // 3, round(0.8 * rate))

    def noise() -> float:
        limit = float(args.noise_kg)
        return max(-limit, min(limit, rng.gauss(0, limit / 2)))

    def ramp(w: float, up: bool) -> Iterator[tuple[float, bool]]:
        # axle by axle: the load comes on in steps smoothed by the suspension, with bounce
        axles = rng.choice((2, 3, 4, 5))
        for i in range(1, n_ramp + 1):
            x = i / n_ramp if up else 1 - i / n_ramp
            stepped = min(1.0, (int(x * axles) + _smooth(x * axles % 1)) / axles)
            bounce = 0.015 * w * rng.uniform(-1, 1) * (1 - abs(2 * x - 1))
            yield max(0.0, w * stepped + bounce), False

    for count, w in enumerate(truck_weights(weights, rng), 1):
        for _ in range(n_empty):
            yield noise() * 0.3, True
        yield from ramp(w, True)
        for i in range(n_settle):
            if i < n_bounce:
                decay = 1 - i / n_bounce
                yield w + 0.01 * w * decay * rng.uniform(-1, 1), False
            else:
                yield w + noise(), True
        yield from ramp(w, False)
        if args.trucks and count >= args.trucks:
            for _ in range(n_empty):
                yield noise() * 0.3, True
            return


def _smooth(x: float) -> float:
    return x * x * (3 - 2 * x)


def frames(args: argparse.Namespace, rng: random.Random) -> Iterator[bytes]:
    """The byte frames the indicator sends, one per tick."""
    division = Decimal(args.division_kg)
    step = float(division)
    displayed = Decimal(0)
    # some indicators (the XK3190 "=" stream) send each displayed value several times
    repeats = PROTOCOLS[args.protocol].repeats
    for i, (kg, stable) in enumerate(profile(args, rng)):
        if i % repeats == 0:
            displayed = round(kg / step) * division
        yield encode(args.protocol, displayed, stable=stable, parity=True)


def main(args: argparse.Namespace) -> int:
    """Open a pseudo-terminal, print its path, and play trucks until done or SIGTERM."""
    problem = _problem(args)
    if problem:
        print(f"tally: {problem}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    master, slave = os.openpty()
    # raw, so CR and bit 7 reach the reader as sent (no CR->NL, no echo)
    tty.setraw(slave)
    os.set_blocking(master, False)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(os.ttyname(slave), flush=True)
    tick = 1.0 / args.rate
    next_t = time.monotonic()
    try:
        for frame in frames(args, rng):
            _send(master, slave, frame)
            next_t += tick
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                next_t = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        os.close(master)
        os.close(slave)
    return 0


def _send(master: int, slave: int, frame: bytes) -> None:
    """Write a frame; when nobody reads, drop what is queued (a real line does not buffer)."""
    try:
        os.write(master, frame)
    except BlockingIOError:
        termios.tcflush(slave, termios.TCIFLUSH)
        with contextlib.suppress(BlockingIOError):
            os.write(master, frame)

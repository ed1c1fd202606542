"""The TOML configuration: typed, immutable objects, with every problem reported by key path."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.errors import ConfigError
from drivers.modbus_points import Point
from drivers.scale import PROTOCOLS

__all__ = [
    "Config",
    "ConfigError",
    "PackerConfig",
    "PointConfig",
    "ScaleConfig",
    "load",
    "parse",
]

DEFAULT_PATH = "/etc/tally/tally.toml"
TERMINAL_ID = re.compile(r"[a-z0-9-]{1,32}")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    """The terminal's identity and where it keeps its files."""

    id: str = "wb1"
    timezone: str = "Asia/Shanghai"
    database: str = "/var/lib/tally/tally.db"
    socket: str = "/run/tally/tally.sock"
    language: str = "zh"
    scale_queue: str = ""


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    """One scale indicator on a serial port (see docs/devices.md): a truck scale, or a
    bag scale (role "bags") whose captures are bag-weight samples of one packer."""

    name: str
    port: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    protocol: str = "xk3190"
    checksum: bool = True
    min_weight_kg: int = 500
    zero_band_kg: int = 40
    band_kg: int = 40
    hold_s: float = 3.0
    min_samples: int = 5
    max_wait_s: float = 120.0
    clear_s: float = 2.0
    silence_s: float = 2.0
    frozen_alert_s: float = 180.0
    role: str = "truck"
    packer: str = ""
    zero_band_g: int = 0
    band_g: int = 0


@dataclass(frozen=True, slots=True)
class PointConfig:
    """One Modbus point of a packer (see docs/devices.md)."""

    role: str
    function: int
    address: int
    type: str = "uint16"
    word_order: str = "big"
    byte_swap: bool = False
    scale: float = 1.0
    modulus: int = 0
    name: str = ""

    def point(self) -> Point:
        """What the Modbus driver needs of this point (its role names it in messages)."""
        return Point(
            self.function,
            self.address,
            self.type,
            self.word_order,
            self.byte_swap,
            self.scale,
            self.role,
        )


@dataclass(frozen=True, slots=True)
class PackerConfig:
    """One packer or bag counter read over Modbus TCP or RTU."""

    name: str
    transport: str = "tcp"
    host: str = "127.0.0.1"
    port: int = 502
    serial_port: str = ""
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    device_id: int = 1
    poll_s: float = 1.0
    timeout_s: float = 1.0
    bag_kg: int = 50
    tally_s: int = 60
    stop_after_s: float = 120.0
    max_bags_per_s: float = 20.0
    idle_s: float = 30.0
    spouts: int = 8
    kind: str = "bagged"  # bagged: a packer or bag counter; bulk: a bulk loading point (发散)
    span_gaps: int = 16  # unnamed words (or bits) a read may span to join two reads; 0: never
    points: tuple[PointConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Where and how events are forwarded to the central server."""

    url: str
    token_file: str
    ca_file: str = ""
    client_cert: str = ""
    client_key: str = ""
    batch_max: int = 500
    interval_s: float = 1.0
    timeout_s: float = 30.0
    retry_after_max_s: float = 300.0
    backoff_max_s: float = 60.0


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """A source of the plant timeline this terminal pulls from: another terminal's feed or
    the central receiver (docs/replication.md)."""

    name: str
    url: str
    token_file: str
    ca_file: str = ""
    client_cert: str = ""
    client_key: str = ""
    wait_s: float = 25.0
    timeout_s: float = 10.0
    batch_max: int = 2000
    backoff_max_s: float = 30.0
    unreachable_alert_s: float = 300.0


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """The read-only feed this terminal serves to the other terminals."""

    listen: str
    tokens_file: str
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Retention of acknowledged events and the free-disk floor."""

    retention_days: int = 90
    min_free_mb: int = 200


@dataclass(frozen=True, slots=True)
class ChecksConfig:
    """Packing-line spot checks (crew after each calibration, print codes, QC once a shift),
    the shifts, and the handover rule."""

    bag_samples: int = 10
    bag_min_pct: float = 2.0
    bag_max_over_kg: float = 1.0
    shift_starts: tuple[str, ...] = ("00:00", "08:00", "16:00")
    print_code_every_h: float = 2.0
    grace_min: float = 15.0
    cold_start_min: float = 30.0
    qc_within_h: float = 4.0
    handover_window_min: float = 15.0


@dataclass(frozen=True, slots=True)
class KpiConfig:
    """Every threshold of the service standard (docs/visits-and-kpis.md)."""

    weigh_wait_min: float = 10.0
    bag_load_wait_min: float = 120.0
    bag_load_share: float = 0.9
    bulk_turnaround_min: float = 60.0
    seal_lag_min: float = 10.0
    return_rate_max: float = 0.05
    broken_rate_max: float = 0.003  # 千分之三: see systemd/tally.toml
    packer_rate_tph: float = 100.0
    daily_completion: float = 1.0
    queue_alert: int = 10
    tare_tolerance_kg: int = 100
    tare_tolerance_pct: float = 1.0
    tare_history: int = 5
    tare_min_history: int = 3
    underload_pct: float = 90.0
    overweight_pct: float = 1.0
    window_plan_order_min: float = 5.0
    window_payment_min: float = 5.0
    window_transport_letter_min: float = 10.0
    window_no_letter_min: float = 10.0
    scale_unattended_min: float = 10.0
    warn_share: float = 0.8  # a running wait past this share of its target raises a warning
    exit_tolerance_pct: float = 5.0  # net off the planned quantity by more: the gate asks why


@dataclass(frozen=True, slots=True)
class TicketsConfig:
    """Weigh tickets (磅单): where they print and what they say besides the weighing."""

    printer: str = ""
    auto_print: bool = True
    title: str = "过磅单"
    company: str = ""
    footer: str = "请凭此磅单到质控处开具合格证"
    font: str = ""
    retry_s: float = 10.0


@dataclass(frozen=True, slots=True)
class PrinterConfig:
    """One ticket printer: a CUPS queue (PDF via `lp`) or an ESC/POS receipt printer."""

    name: str
    kind: str = "cups"
    queue: str = ""
    server: str = ""
    paper: str = "A5"
    device: str = ""
    baudrate: int = 9600
    columns: int = 48


@dataclass(frozen=True, slots=True)
class DisplayConfig:
    """An outdoor weight display (大屏) on a serial port, fed with a scale's live weight."""

    name: str
    port: str
    scale: str
    protocol: str = "xk3190"
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    rate_hz: float = 10.0


@dataclass(frozen=True, slots=True)
class BoardConfig:
    """What the exception board tells a driver to do for each flag (and while the scale or
    the ticket printer is down), in Chinese and English."""

    tare_fluctuation_zh: str = "皮重波动:请到地磅房说明情况,由司磅员复核皮重后办理出厂手续。"
    tare_fluctuation_en: str = (
        "Tare differs from this truck's usual tare: see the weighbridge office;"
        " the operator re-checks the tare before you leave."
    )
    underloaded_zh: str = "净重低于验证量90%:请到销售窗口核对提货量,补装或办理退款后出厂。"
    underloaded_en: str = (
        "Net below 90 % of the verified quantity: see the sales window to top up"
        " or settle the difference before you leave."
    )
    bagged_overweight_zh: str = "袋装重车超重:请回包装车间点包卸货,复磅合格后出厂。"
    bagged_overweight_en: str = (
        "Bagged load overweight: return to the packing line to recount and unload,"
        " then weigh again before you leave."
    )
    seal_mismatch_zh: str = "封签不符:请停车等候,由门卫与发运人员核对封签。"
    seal_mismatch_en: str = (
        "Seal numbers do not match: wait at the gate; the guard and dispatch check the seals."
    )
    scale_offline_zh: str = "地磅暂停称重:请在原地等候,恢复后按排队顺序过磅。"
    scale_offline_en: str = (
        "The weighbridge is not weighing: wait where you are; weighing resumes in queue order."
    )
    printer_offline_zh: str = "磅单打印机故障:磅单已开出,打印机恢复后自动打印,请到地磅房领取。"
    printer_offline_en: str = (
        "The ticket printer is down: your ticket is issued and prints when the printer is back;"
        " collect it at the weighbridge office."
    )


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration file."""

    terminal: TerminalConfig = field(default_factory=TerminalConfig)
    scales: tuple[ScaleConfig, ...] = ()
    packers: tuple[PackerConfig, ...] = ()
    sync: SyncConfig | None = None
    peers: tuple[PeerConfig, ...] = ()
    feed: FeedConfig | None = None
    storage: StorageConfig = field(default_factory=StorageConfig)
    kpi: KpiConfig = field(default_factory=KpiConfig)
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    tickets: TicketsConfig = field(default_factory=TicketsConfig)
    printers: tuple[PrinterConfig, ...] = ()
    displays: tuple[DisplayConfig, ...] = ()
    board: BoardConfig = field(default_factory=BoardConfig)
    path: str = ""


# --- validation -------------------------------------------------------------------------------

Check = Callable[[Any], str | None]


def _one_of(*allowed: Any) -> Check:
    def check(value: Any) -> str | None:
        if value in allowed:
            return None
        return "must be one of " + ", ".join(repr(a) for a in allowed)

    return check


def _range(lo: float, hi: float) -> Check:
    def check(value: Any) -> str | None:
        if lo <= value <= hi:
            return None
        return f"must be between {lo:g} and {hi:g}"

    return check


def _pattern(regex: re.Pattern[str], what: str) -> Check:
    def check(value: Any) -> str | None:
        return None if regex.fullmatch(value) else f"must be {what}"

    return check


def _nonempty(value: Any) -> str | None:
    return None if value else "must not be empty"


def _timezone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not a known IANA time zone (for example 'Asia/Shanghai')"
    return None


def _url(value: Any) -> str | None:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        return "must be an http:// or https:// URL"
    parts = urlsplit(value)
    if "@" in parts.netloc:
        return "must not hold a user or password (user:pass@); the token file authenticates"
    try:
        port = parts.port
    except ValueError:
        return "has a port that is not a number from 1 to 65535"
    if port == 0 or not parts.hostname:
        return "must name a host and, optionally, a port from 1 to 65535"
    return None


MAX_SOCKET_BYTES = 107  # sun_path holds 108 bytes with the terminating NUL


def _listen(value: Any) -> str | None:
    host, sep, port = str(value).rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 <= int(port) <= 65535:
        return 'must be HOST:PORT, for example "0.0.0.0:8401"'
    return None


def _socket_path(value: Any) -> str | None:
    if not value:
        return "must not be empty"
    size = len(str(value).encode("utf-8", "surrogateescape"))
    if size > MAX_SOCKET_BYTES:
        return f"is {size} bytes long; a Unix socket path has at most {MAX_SOCKET_BYTES}"
    return None


_POSITIVE = _range(0.001, 1e9)
_CHECKS: dict[type, dict[str, Check]] = {
    TerminalConfig: {
        "id": _pattern(TERMINAL_ID, "1 to 32 characters of a-z, 0-9 and '-'"),
        "timezone": _timezone,
        "database": _nonempty,
        "socket": _socket_path,
        "language": _one_of("zh", "en"),
    },
    ScaleConfig: {
        "name": _pattern(NAME, "a short name of a-z, 0-9, '_' and '-'"),
        "port": _nonempty,
        "baudrate": _one_of(300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200),
        "bytesize": _one_of(7, 8),
        "parity": _one_of("N", "E", "O"),
        "stopbits": _one_of(1, 1.5, 2),
        "protocol": lambda v: _one_of(*PROTOCOLS)(v),  # read when checked: formats register
        "min_weight_kg": _range(1, 200_000),
        "zero_band_kg": _range(0, 10_000),
        "band_kg": _range(0, 10_000),
        "hold_s": _range(0.1, 600),
        "min_samples": _range(1, 10_000),
        "max_wait_s": _range(1, 86_400),
        "clear_s": _range(0, 600),
        "silence_s": _range(0.1, 600),
        "frozen_alert_s": _range(1, 86_400),
        "role": _one_of("truck", "bags"),
        "zero_band_g": _range(0, 10_000_000),
        "band_g": _range(0, 10_000_000),
    },
    PointConfig: {
        "role": _one_of(
            "bags", "returned", "returned_over", "broken", "loaded", "running", "spout"
        ),
        "function": _one_of(1, 2, 3, 4),
        "address": _range(0, 65_535),
        "type": _one_of("uint16", "int16", "uint32", "int32", "float32", "bool"),
        "word_order": _one_of("big", "little"),
        "modulus": _range(0, 2**32),
    },
    PackerConfig: {
        "name": _pattern(NAME, "a short name of a-z, 0-9, '_' and '-'"),
        "transport": _one_of("tcp", "rtu"),
        "port": _range(1, 65_535),
        "baudrate": _one_of(1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200),
        "parity": _one_of("N", "E", "O"),
        "stopbits": _one_of(1, 2),
        "device_id": _range(0, 247),
        "poll_s": _range(0.05, 3600),
        "timeout_s": _range(0.05, 60),
        "bag_kg": _range(1, 5_000),
        "tally_s": _range(1, 86_400),
        "stop_after_s": _range(1, 86_400),
        "max_bags_per_s": _POSITIVE,
        "idle_s": _range(1, 86_400),
        "spouts": _range(1, 64),
        "kind": _one_of("bagged", "bulk"),
        "span_gaps": _range(0, 120),
    },
    SyncConfig: {
        "url": _url,
        "token_file": _nonempty,
        "batch_max": _range(1, 10_000),
        "interval_s": _range(0.01, 3600),
        "timeout_s": _range(0.1, 3600),
        "retry_after_max_s": _range(1, 86_400),
        "backoff_max_s": _range(0.1, 86_400),
    },
    PeerConfig: {
        "name": _pattern(NAME, "a short name of a-z, 0-9, '_' and '-'"),
        "url": _url,
        "token_file": _nonempty,
        "wait_s": _range(0, 25),
        "timeout_s": _range(0.1, 3600),
        "batch_max": _range(1, 2000),
        "backoff_max_s": _range(0.1, 86_400),
        "unreachable_alert_s": _range(1, 86_400),
    },
    FeedConfig: {
        "listen": _listen,
        "tokens_file": _nonempty,
    },
    StorageConfig: {
        "retention_days": _range(1, 36_500),
        "min_free_mb": _range(0, 10_000_000),
    },
    ChecksConfig: {
        "bag_samples": _range(1, 100),
        "bag_min_pct": _range(0, 50),
        "bag_max_over_kg": _range(0, 100),
        "shift_starts": lambda v: (
            None
            if v
            and all(isinstance(x, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", x) for x in v)
            else 'must be a list of local times like "08:00"'
        ),
        "print_code_every_h": _range(0.1, 24),
        "grace_min": _range(0, 1440),
        "cold_start_min": _range(0, 1440),
        "qc_within_h": _range(0.1, 24),
        "handover_window_min": _range(0, 240),
    },
    TicketsConfig: {
        "title": _nonempty,
        "retry_s": _range(0.5, 3600),
    },
    PrinterConfig: {
        "name": _pattern(NAME, "a short name of a-z, 0-9, '_' and '-'"),
        "kind": _one_of("cups", "escpos"),
        "paper": _one_of("A5", "A4"),
        "baudrate": _one_of(1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200),
        "columns": _range(16, 80),
    },
    DisplayConfig: {
        "name": _pattern(NAME, "a short name of a-z, 0-9, '_' and '-'"),
        "port": _nonempty,
        "scale": _nonempty,
        "protocol": _one_of("toledo", "xk3190", "ascii"),
        "baudrate": _one_of(300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200),
        "bytesize": _one_of(7, 8),
        "parity": _one_of("N", "E", "O"),
        "stopbits": _one_of(1, 1.5, 2),
        "rate_hz": _range(0.5, 50),
    },
    BoardConfig: {f.name: _nonempty for f in fields(BoardConfig)},
    KpiConfig: {
        "bag_load_share": _range(0, 1),
        "return_rate_max": _range(0, 1),
        "broken_rate_max": _range(0, 1),
        "daily_completion": _range(0, 10),
        "queue_alert": _range(0, 100_000),
        "tare_history": _range(1, 100),
        "tare_min_history": _range(1, 100),
        "underload_pct": _range(0, 100),
        "overweight_pct": _range(0, 100),
        "warn_share": _range(0.05, 1),
        "exit_tolerance_pct": _range(0, 100),
    },
}

_SECTIONS = {
    "terminal": TerminalConfig,
    "scale": ScaleConfig,
    "packer": PackerConfig,
    "sync": SyncConfig,
    "peer": PeerConfig,
    "feed": FeedConfig,
    "storage": StorageConfig,
    "kpi": KpiConfig,
    "checks": ChecksConfig,
    "tickets": TicketsConfig,
    "printer": PrinterConfig,
    "display": DisplayConfig,
    "board": BoardConfig,
}
_LISTS = {"scale", "packer", "printer", "display", "peer"}


def _type_name(tp: Any) -> str:
    return {
        "str": "a string",
        "int": "a whole number",
        "float": "a number",
        "bool": "true or false",
        "tuple[str,": "a list of strings",
    }.get(str(tp), str(tp))


def _coerce(value: Any, tp: str) -> tuple[Any, bool]:
    """Return (value converted to the field's type, ok)."""
    if tp == "bool":
        return value, isinstance(value, bool)
    if tp == "int":
        return value, isinstance(value, int) and not isinstance(value, bool)
    if tp == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, False
        return float(value), True
    if tp == "str":
        return value, isinstance(value, str)
    if tp.startswith("tuple[str"):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value), True
        return value, False
    return value, True


def _closest(key: str, valid: list[str]) -> str:
    import difflib  # only for a config with a mistake: not kept by every daemon

    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if match:
        return f"unknown key; did you mean '{match[0]}'?"
    return "unknown key; allowed keys are " + ", ".join(sorted(valid))


def _build(cls: type, table: Mapping[str, Any], path: str, problems: list[str]) -> Any:
    """Build one dataclass from a TOML table, appending every problem found to `problems`."""
    kwargs: dict[str, Any] = {}
    flds = {f.name: f for f in fields(cls) if f.name != "points"}
    valid = list(flds)
    if cls is PackerConfig:
        valid.append("point")
    for key in table:
        if key not in valid:
            problems.append(f"{path}.{key}: {_closest(key, valid)}")
    checks = _CHECKS.get(cls, {})
    for name, f in flds.items():
        required = f.default is f.default_factory  # both MISSING
        if name not in table:
            if required:
                problems.append(f"{path}.{name}: is required")
            continue
        raw = table[name]
        tp = str(f.type).split(" ")[0]
        value, ok = _coerce(raw, tp)
        if not ok:
            problems.append(f"{path}.{name}: must be {_type_name(tp)}, not {raw!r}")
            continue
        check = checks.get(name)
        message = check(value) if check else None
        if message:
            problems.append(f"{path}.{name}: {message}, not {raw!r}")
            continue
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError:
        return None  # a required key was missing; already reported


def _check_packer(p: PackerConfig, table: Mapping[str, Any], path: str, problems: list[str]) -> Any:
    raw_points = table.get("point", [])
    if not isinstance(raw_points, list):
        problems.append(f"{path}.point: must be an array of tables ([[packer.point]])")
        return p
    points: list[PointConfig] = []
    for j, pt in enumerate(raw_points):
        ppath = f"{path}.point[{j}]"
        if not isinstance(pt, dict):
            problems.append(f"{ppath}: must be a table")
            continue
        built = _build(PointConfig, pt, ppath, problems)
        if built is None:
            continue
        if built.type in ("uint32", "int32", "float32") and built.function in (1, 2):
            problems.append(
                f"{ppath}.type: a {built.type} needs function 3 or 4, not {built.function}"
            )
        if built.role in (
            "bags",
            "returned",
            "returned_over",
            "broken",
            "loaded",
            "spout",
        ) and built.type in (
            "float32",
            "bool",
        ):
            problems.append(f"{ppath}.type: a counter must be an integer type, not {built.type!r}")
        points.append(built)
    roles = [pt.role for pt in points]
    for role in set(roles):
        if role != "spout" and roles.count(role) > 1:
            problems.append(f"{path}.point: role {role!r} appears {roles.count(role)} times")
    if p.kind == "bulk":
        counters = sorted({r for r in roles if r != "running"})
        if "running" not in roles:
            problems.append(
                f"{path}.point: a bulk loader (kind = 'bulk') needs a point with role 'running'"
            )
        if counters:
            problems.append(
                f"{path}.point: a bulk loader (kind = 'bulk') counts no bags; remove the "
                f"{', '.join(repr(r) for r in counters)} point(s)"
            )
    if p.transport == "rtu" and not p.serial_port:
        problems.append(f"{path}.serial_port: is required when transport = 'rtu'")
    if p.transport == "tcp" and not table.get("host"):
        problems.append(f"{path}.host: is required when transport = 'tcp'")
    return PackerConfig(
        **{**{f.name: getattr(p, f.name) for f in fields(p)}, "points": tuple(points)}
    )


def _scale_roles(
    scales: list[tuple[int, Mapping[str, Any], ScaleConfig]],
    packers: tuple[PackerConfig, ...],
    terminal: TerminalConfig,
) -> list[str]:
    """Bag scales name a configured packer; truck-only keys and the scale queue stay on trucks."""
    problems: list[str] = []
    bag_kg = {p.name: p.bag_kg for p in packers}
    for i, table, s in scales:
        path = f"scale[{i}]"
        if table.get("role", s.role) != s.role:
            continue  # the role itself is wrong and reported; its rules cannot apply
        if s.role == "truck":
            if s.packer:
                problems.append(f"{path}.packer: only a bag scale (role = 'bags') names a packer")
            for key in ("zero_band_g", "band_g"):
                if getattr(s, key):
                    problems.append(
                        f"{path}.{key}: is for bag scales (role = 'bags'); a truck scale uses "
                        f"{key.removesuffix('_g')}_kg"
                    )
            continue
        if not s.packer:
            problems.append(
                f"{path}.packer: is required when role = 'bags' (the packer whose bags it weighs)"
            )
        elif s.packer not in bag_kg:
            known = ", ".join(sorted(bag_kg)) or "none configured"
            problems.append(
                f"{path}.packer: there is no [[packer]] named {s.packer!r} (packers: {known})"
            )
        elif s.min_weight_kg > max(1, bag_kg[s.packer] // 2):
            problems.append(
                f"{path}.min_weight_kg: {s.min_weight_kg} kg would miss the {bag_kg[s.packer]} kg "
                f"bags of {s.packer}; set it to at most {max(1, bag_kg[s.packer] // 2)}"
            )
        for key in ("zero_band", "band"):
            grams = getattr(s, f"{key}_g") or getattr(s, f"{key}_kg") * 1000
            if grams >= s.min_weight_kg * 1000:
                problems.append(
                    f"{path}.{key}_g: {grams} g is not below min_weight_kg ({s.min_weight_kg} kg); "
                    f"set {key}_g for the bags, e.g. {key}_g = 200"
                )
        if s.name == terminal.scale_queue:
            problems.append(
                f"terminal.scale_queue: {s.name!r} is a bag scale; name a truck scale or leave it empty"
            )
    return problems


def _paper_and_screens(built: Mapping[str, Any]) -> list[str]:
    """Printers have what their kind needs, tickets name a printer, displays a truck scale."""
    problems: list[str] = []
    printers: tuple[PrinterConfig, ...] = built.get("printer", ())
    for i, p in enumerate(printers):
        if p.kind == "cups" and not p.queue:
            problems.append(f"printer[{i}].queue: is required when kind = 'cups' (see `lpstat -p`)")
        if p.kind == "escpos" and not p.device:
            problems.append(
                f"printer[{i}].device: is required when kind = 'escpos'"
                " (tcp://HOST:9100, /dev/usb/lp0 or a serial port)"
            )
        if p.kind == "escpos" and p.device.startswith("tcp://"):
            host, _, port = p.device.removeprefix("tcp://").rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65_535:
                problems.append(
                    f"printer[{i}].device: {p.device!r} must be tcp://HOST:PORT (e.g. tcp://10.0.0.9:9100)"
                )
    tickets = built.get("tickets")
    names = [p.name for p in printers]
    if tickets is not None and tickets.printer and tickets.printer not in names:
        known = ", ".join(names) or "none configured"
        problems.append(
            f"tickets.printer: there is no [[printer]] named {tickets.printer!r} (printers: {known})"
        )
    scales: tuple[ScaleConfig, ...] = built.get("scale", ())
    trucks = {s.name for s in scales if s.role == "truck"}
    ports = {s.port: s.name for s in scales}
    for i, d in enumerate(built.get("display", ())):
        if d.scale not in trucks:
            known = ", ".join(sorted(trucks)) or "none configured"
            problems.append(
                f"display[{i}].scale: there is no truck [[scale]] named {d.scale!r} (scales: {known})"
            )
        if d.port in ports:
            problems.append(
                f"display[{i}].port: {d.port!r} is the port of scale {ports[d.port]!r};"
                " wire the display to a port of its own"
            )
    return problems


def parse(data: Mapping[str, Any], path: str = "") -> Config:
    """Turn a parsed TOML document into a `Config`; raise `ConfigError` with every problem."""
    problems: list[str] = []
    for key in data:
        if key not in _SECTIONS:
            problems.append(f"{key}: {_closest(key, list(_SECTIONS))}")
    built: dict[str, Any] = {}
    scale_tables: list[tuple[int, Mapping[str, Any], ScaleConfig]] = []
    for section, cls in _SECTIONS.items():
        if section not in data:
            continue
        raw = data[section]
        if section in _LISTS:
            if not isinstance(raw, list):
                problems.append(f"{section}: must be an array of tables ([[{section}]])")
                continue
            items = []
            for i, table in enumerate(raw):
                ipath = f"{section}[{i}]"
                if not isinstance(table, dict):
                    problems.append(f"{ipath}: must be a table")
                    continue
                item = _build(cls, table, ipath, problems)
                if item is not None and cls is PackerConfig:
                    item = _check_packer(item, table, ipath, problems)
                if isinstance(item, ScaleConfig):
                    scale_tables.append((i, table, item))
                if item is not None:
                    items.append(item)
            names = [t.get("name") if isinstance(t, dict) else None for t in raw]
            for i, name in enumerate(names):
                if name is not None and name in names[:i]:
                    problems.append(
                        f"{section}[{i}].name: {name!r} is used twice; names must differ"
                    )
            built[section] = tuple(items)
        else:
            if not isinstance(raw, dict):
                problems.append(f"{section}: must be a table ([{section}])")
                continue
            obj = _build(cls, raw, section, problems)
            if obj is not None:
                built[section] = obj
    terminal = built.get("terminal", TerminalConfig())
    problems += _scale_roles(scale_tables, built.get("packer", ()), terminal)
    problems += _shared_names(built.get("scale", ()), built.get("packer", ()))
    problems += _clashing_paths(terminal, built.get("sync"))
    problems += _paper_and_screens(built)
    if "terminal" not in data:
        problems.append("terminal: is required ([terminal] with at least id)")
    elif "id" not in data["terminal"]:
        problems.append("terminal.id: is required")
    feed = built.get("feed")
    if feed is not None and bool(feed.cert_file) != bool(feed.key_file):
        problems.append("feed.cert_file: set both cert_file and key_file for TLS, or neither")
    if problems:
        raise ConfigError(problems)
    return Config(
        terminal=terminal,
        scales=built.get("scale", ()),
        packers=built.get("packer", ()),
        sync=built.get("sync"),
        peers=built.get("peer", ()),
        feed=built.get("feed"),
        storage=built.get("storage", StorageConfig()),
        kpi=built.get("kpi", KpiConfig()),
        checks=built.get("checks", ChecksConfig()),
        tickets=built.get("tickets", TicketsConfig()),
        printers=built.get("printer", ()),
        displays=built.get("display", ()),
        board=built.get("board", BoardConfig()),
        path=path,
    )


def _shared_names(scales: tuple[ScaleConfig, ...], packers: tuple[PackerConfig, ...]) -> list[str]:
    """A scale and a packer may not share a name: their device events would collide."""
    scale_names = {s.name for s in scales}
    return [
        f"packer[{i}].name: {p.name!r} is also a scale's name; scales and packers need"
        " different names"
        for i, p in enumerate(packers)
        if p.name in scale_names
    ]


def _clashing_paths(terminal: TerminalConfig, sync: SyncConfig | None) -> list[str]:
    """terminal.socket must not be any other configured file (the daemon binds it)."""
    others = {"terminal.database": terminal.database}
    if sync is not None:
        others |= {
            "sync.token_file": sync.token_file,
            "sync.ca_file": sync.ca_file,
            "sync.client_cert": sync.client_cert,
            "sync.client_key": sync.client_key,
        }
    sock = os.path.normpath(os.path.abspath(terminal.socket))
    problems = []
    for key, other in others.items():
        if not other:
            continue
        other_path = os.path.normpath(os.path.abspath(other))
        if sock in (other_path, other_path + "-wal", other_path + "-shm", other_path + "-journal"):
            problems.append(
                f"terminal.socket: {terminal.socket!r} is the file of {key}; give the socket"
                " a path of its own"
            )
    return problems


def load(path: str | os.PathLike[str], *, check_paths: bool = True) -> Config:
    """Read and validate a config file; raise `ConfigError` naming every problem."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: no such file; pass the path of a tally.toml"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{p}: is a directory; pass the path of a tally.toml"]) from None
    except PermissionError:
        raise ConfigError([f"{p}: permission denied; run as a user that may read it"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p}: is not UTF-8 text; save it as UTF-8"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{p}: is not valid TOML ({exc}); fix the syntax"]) from None
    config = parse(data, str(p))
    if check_paths:
        problems = path_problems(config)
        if problems:
            raise ConfigError(problems)
    return config


def path_problems(config: Config) -> list[str]:
    """Problems with the files the config names that only the file system can tell."""
    problems: list[str] = []
    sock = Path(config.terminal.socket)
    if (sock.exists() or sock.is_symlink()) and not sock.is_socket():
        problems.append(
            f"terminal.socket: {str(sock)!r} is an existing file that is not a socket;"
            " choose a free path (the daemon never deletes it)"
        )
    db_dir = Path(config.terminal.database).parent
    if not db_dir.is_dir():
        problems.append(
            f"terminal.database: the folder {str(db_dir)!r} does not exist; "
            "create it or change the path"
        )
    elif not os.access(db_dir, os.W_OK | os.X_OK):
        problems.append(
            f"terminal.database: the folder {str(db_dir)!r} is not writable by this user; "
            "fix its permissions or change the path"
        )
    return problems

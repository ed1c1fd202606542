"""Config parsing: defaults, every problem reported with its key path, file-level errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import config as cfg
from tests.daemon import tally

GOOD = """
[terminal]
id = "wb1"
timezone = "Asia/Shanghai"
database = "{db}"
socket = "/run/tally/tally.sock"

[[scale]]
name = "scale1"
port = "socket://127.0.0.1:4001"
protocol = "toledo"

[[packer]]
name = "line1"
host = "127.0.0.1"
  [[packer.point]]
  role = "bags"
  function = 3
  address = 0
  type = "uint32"
  modulus = 4294967296

[sync]
url = "https://central.example.com"
token_file = "/etc/tally/token"

[kpi]
queue_alert = 12
"""


def test_good_file_gives_typed_objects_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(GOOD.format(db=tmp_path / "t.db"), encoding="utf-8")
    c = cfg.load(path)
    assert c.terminal == cfg.TerminalConfig(
        id="wb1",
        timezone="Asia/Shanghai",
        database=str(tmp_path / "t.db"),
        socket="/run/tally/tally.sock",
    )
    assert c.scales == (
        cfg.ScaleConfig(name="scale1", port="socket://127.0.0.1:4001", protocol="toledo"),
    )
    assert c.packers == (
        cfg.PackerConfig(
            name="line1",
            host="127.0.0.1",
            points=(
                cfg.PointConfig(
                    role="bags", function=3, address=0, type="uint32", modulus=4294967296
                ),
            ),
        ),
    )
    assert c.sync == cfg.SyncConfig(
        url="https://central.example.com", token_file="/etc/tally/token"
    )
    assert c.kpi == cfg.KpiConfig(queue_alert=12)
    assert c.storage == cfg.StorageConfig()


BAD = """
colour = "red"
[terminal]
id = "WB 1"
timezon = "Asia/Shanghai"
timezone = "Mars/Olympus"
language = "fr"

[[scale]]
name = "scale1"
protocol = "xk3191"
baudrate = "fast"
hold_s = -1

[[scale]]
name = "scale1"
port = "/dev/ttyUSB1"

[[packer]]
name = "line1"
transport = "rtu"
  [[packer.point]]
  role = "bagz"
  function = 1
  address = 70000
  type = "uint32"
  [[packer.point]]
  role = "returned"
  function = 3
  address = 2
  type = "float32"
  [[packer.point]]
  role = "broken"
  function = 1
  address = 4
  type = "uint32"

[sync]
url = "ftp://x"

[kpi]
bag_load_share = 1.5
"""


def test_bad_file_reports_every_problem_once_with_its_key_path() -> None:
    import tomllib

    with pytest.raises(cfg.ConfigError) as info:
        cfg.parse(tomllib.loads(BAD))
    assert info.value.problems == [
        "colour: unknown key; allowed keys are board, checks, display, feed, kpi, packer, peer, printer, scale, storage, sync, terminal, tickets",
        "terminal.timezon: unknown key; did you mean 'timezone'?",
        "terminal.id: must be 1 to 32 characters of a-z, 0-9 and '-', not 'WB 1'",
        "terminal.timezone: is not a known IANA time zone (for example 'Asia/Shanghai'),"
        " not 'Mars/Olympus'",
        "terminal.language: must be one of 'zh', 'en', not 'fr'",
        "scale[0].port: is required",
        "scale[0].baudrate: must be a whole number, not 'fast'",
        "scale[0].protocol: must be one of 'toledo', 'xk3190', 'xk3190-eq', 'ascii', not 'xk3191'",
        "scale[0].hold_s: must be between 0.1 and 600, not -1",
        "scale[1].name: 'scale1' is used twice; names must differ",
        "packer[0].point[0].role: must be one of 'bags', 'returned', 'returned_over', 'broken',"
        " 'loaded', 'running', 'spout', not 'bagz'",
        "packer[0].point[0].address: must be between 0 and 65535, not 70000",
        "packer[0].point[1].type: a counter must be an integer type, not 'float32'",
        "packer[0].point[2].type: a uint32 needs function 3 or 4, not 1",
        "packer[0].serial_port: is required when transport = 'rtu'",
        "sync.url: must be an http:// or https:// URL, not 'ftp://x'",
        "sync.token_file: is required",
        "kpi.bag_load_share: must be between 0 and 1, not 1.5",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "{path}: no such file; pass the path of a tally.toml"),
        ("[terminal\nid=1", "{path}: is not valid TOML"),
        (b"\xff\xfe[terminal]", "{path}: is not UTF-8 text; save it as UTF-8"),
        ("[kpi]\n", "terminal: is required ([terminal] with at least id)"),
        (
            '[terminal]\nid = "a"\ndatabase = "/nonexistent-dir/x.db"\n',
            "terminal.database: the folder",
        ),
    ],
)
def test_file_level_problems_are_one_sentence(
    tmp_path: Path, content: str | bytes | None, expected: str
) -> None:
    path = tmp_path / "t.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(expected.format(path=path))


def test_check_config_command_prints_ok_or_problems_with_exit_codes(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("wb1-token-0123456789abcdef\n", encoding="utf-8")
    token.chmod(0o600)
    good = tmp_path / "good.toml"
    text = GOOD.format(db=tmp_path / "t.db").replace("/etc/tally/token", str(token))
    good.write_text(text, encoding="utf-8")
    r = tally("check-config", str(good))
    assert (r.returncode, r.stdout, r.stderr) == (0, "ok\n", "")

    bad = tmp_path / "bad.toml"
    bad.write_text('[terminal]\nid = "wb1"\nlanguage = "fr"\n', encoding="utf-8")
    r = tally("check-config", str(bad))
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "terminal.language: must be one of 'zh', 'en', not 'fr'\n"

    r = tally("check-config", str(tmp_path / "missing.toml"))
    assert r.returncode == 2
    assert r.stderr == f"{tmp_path / 'missing.toml'}: no such file; pass the path of a tally.toml\n"


def test_sample_config_is_valid_apart_from_its_system_paths() -> None:
    import tomllib

    sample = Path(__file__).resolve().parents[2] / "systemd" / "tally.toml"
    c = cfg.parse(tomllib.loads(sample.read_text(encoding="utf-8")))
    assert c.terminal.id == "wb1"


def test_sample_config_documents_every_key() -> None:
    import re
    from dataclasses import fields

    sample = (Path(__file__).resolve().parents[2] / "systemd" / "tally.toml").read_text("utf-8")
    documented = set(re.findall(r"^[#\s]*([a-z_0-9]+)\s*=", sample, flags=re.M))
    classes = [
        cfg.TerminalConfig,
        cfg.ScaleConfig,
        cfg.PackerConfig,
        cfg.PointConfig,
        cfg.SyncConfig,
        cfg.PeerConfig,
        cfg.FeedConfig,
        cfg.StorageConfig,
        cfg.ChecksConfig,
        cfg.KpiConfig,
        cfg.TicketsConfig,
        cfg.PrinterConfig,
        cfg.DisplayConfig,
        cfg.BoardConfig,
    ]
    missing = sorted(
        f"{c.__name__}.{f.name}"
        for c in classes
        for f in fields(c)
        if f.name not in documented and f.name != "points"
    )
    assert missing == []


def test_check_config_loads_the_files_the_daemon_loads_at_start(tmp_path: Path) -> None:
    """A token file that is missing or open to others, and a feed certificate that is not one,
    stop `tally run` at start; `check-config` names each of them and leaves them as they were."""
    open_token = tmp_path / "open-token"
    open_token.write_text("gate-token-0123456789abcdef\n", encoding="utf-8")
    open_token.chmod(0o644)
    readers = tmp_path / "readers"
    readers.write_text("gate:gate-token-0123456789abcdef\n", encoding="utf-8")
    readers.chmod(0o600)
    not_a_cert = tmp_path / "cert.pem"
    not_a_cert.write_text("not a certificate\n", encoding="utf-8")
    path = tmp_path / "t.toml"
    path.write_text(
        f'[terminal]\nid = "wb1"\ndatabase = "{tmp_path / "t.db"}"\n\n'
        f'[sync]\nurl = "http://127.0.0.1:8080"\ntoken_file = "{tmp_path / "missing"}"\n\n'
        f'[[peer]]\nname = "gate"\nurl = "http://127.0.0.1:8081"\ntoken_file = "{open_token}"\n\n'
        f'[feed]\nlisten = "127.0.0.1:8082"\ntokens_file = "{readers}"\n'
        f'cert_file = "{not_a_cert}"\nkey_file = "{not_a_cert}"\n',
        encoding="utf-8",
    )
    r = tally("check-config", str(path))
    assert (r.returncode, r.stdout) == (2, "")
    lines = r.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "sync.token_file",
        "peer[0].token_file",
        "feed.cert_file",
    ], r.stderr
    assert str(tmp_path / "missing") in lines[0]
    assert "chmod 600" in lines[1]
    assert open_token.stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / "t.db").exists()

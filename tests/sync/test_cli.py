"""`tally run` refuses an unusable token file; `tally sync status` reads the database offline."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from agent.daemon.store import Store, Writer, set_state
from sync.sender.status import ACKED, LAST_ACK_AT, LAST_ERROR
from tests.daemon import Daemon, tally, write_config
from tests.sync.helpers import write_private

SECRET = "tok-never-printed-77"


def sync_toml(token: Path, **extra: str) -> str:
    lines = ['url = "http://127.0.0.1:9"', f'token_file = "{token}"']
    lines += [f'{k} = "{v}"' for k, v in extra.items()]
    return "[sync]\n" + "\n".join(lines) + "\n"


def test_the_daemon_refuses_a_token_file_open_to_others(tmp_path: Path) -> None:
    token = write_private(tmp_path / "token", SECRET)
    token.chmod(0o640)
    config = write_config(tmp_path, sync_toml(token))
    out = tally("run", "--config", str(config), timeout=30)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.splitlines()[-1] == (
        f"sync.token_file: the sync token file {token} is open to group or others"
        f" (mode 0640); run `chmod 600 {token}`"
    )
    assert SECRET not in out.stderr


def test_the_daemon_refuses_a_missing_token_file(tmp_path: Path) -> None:
    token = tmp_path / "nope"
    config = write_config(tmp_path, sync_toml(token))
    out = tally("run", "--config", str(config), timeout=30)
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == (
        f"sync.token_file: the sync token file {token} does not exist; create it (mode 0600)"
    )


def test_the_daemon_refuses_an_unloadable_ca_file(tmp_path: Path) -> None:
    token = write_private(tmp_path / "token", SECRET)
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    toml = sync_toml(token, ca_file=str(ca)).replace("http://", "https://")
    out = tally("run", "--config", str(write_config(tmp_path, toml)), timeout=30)
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1].startswith(f"sync.ca_file: cannot load '{ca}' (")


def test_the_daemon_refuses_a_feed_certificate_it_cannot_load(tmp_path: Path) -> None:
    readers = write_private(tmp_path / "readers", "wb1:reader-token-0123456789\n")
    cert, key = tmp_path / "cert.pem", write_private(tmp_path / "key.pem", "not a key\n")
    cert.write_text("not a certificate\n")
    toml = (
        f'[feed]\nlisten = "127.0.0.1:0"\ntokens_file = "{readers}"\n'
        f'cert_file = "{cert}"\nkey_file = "{key}"\n'
    )
    out = tally("run", "--config", str(write_config(tmp_path, toml, terminal="gate1")), timeout=30)
    assert (out.returncode, out.stdout) == (2, "")
    last = out.stderr.splitlines()[-1]
    assert last.startswith(f"feed.cert_file: cannot load '{cert}' with its key '{key}' (")
    assert last.endswith("); give a PEM certificate and its private key")


def test_sync_status_reads_the_database_with_the_daemon_stopped(tmp_path: Path) -> None:
    token = write_private(tmp_path / "token", SECRET)
    config = write_config(tmp_path, sync_toml(token))
    db = str(tmp_path / "tally.db")
    writer = Writer(db, "wb1")
    for i in range(7):
        writer.append_sync("operator.note", {"text": str(i)})

    def state(conn: sqlite3.Connection) -> None:
        set_state(
            conn,
            {
                ACKED: 4,
                LAST_ACK_AT: "2026-11-29T10:00:00.000Z",
                LAST_ERROR: "the server answered 503; retrying in 2.0 s",
            },
        )
        conn.execute(
            "INSERT INTO dead_letters VALUES (3, 'data.text is too long', ?)",
            ("2026-11-29T10:00:00.000Z",),
        )

    writer.call(state).result()
    writer.close()
    out = tally("sync", "status", "--config", str(config), "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    oldest = status.pop("oldest_unsent_s")
    assert isinstance(oldest, float) and oldest >= 0
    assert status == {
        "enabled": True,
        "backlog": 3,
        "acked_through": 4,
        "last_ack_at": "2026-11-29T10:00:00.000Z",
        "last_error": "the server answered 503; retrying in 2.0 s",
        "dead_letters": 1,
        "state": "failing",
        "url": "http://127.0.0.1:9",
        "recent_dead_letters": [
            {
                "seq": 3,
                "kind": "operator.note",
                "error": "data.text is too long",
                "at": "2026-11-29T10:00:00.000Z",
            }
        ],
    }
    text = tally("sync", "status", "--config", str(config))
    lines = text.stdout.splitlines()
    assert lines[0] == "sync          http://127.0.0.1:9"
    assert lines[2].startswith("backlog       3 events, oldest unsent ")
    assert lines[3:] == [
        "acknowledged  through seq 4 at 2026-11-29T10:00:00.000Z",
        "last error    the server answered 503; retrying in 2.0 s",
        "dead letters  1",
        "  seq 3 operator.note: data.text is too long (2026-11-29T10:00:00.000Z)",
    ]
    store = Store(db)
    assert store.count() == 7  # reading changed nothing
    store.close()


def python(code: str) -> subprocess.CompletedProcess[str]:
    """`python -c code` in a fresh interpreter: what importing loads, seen from outside."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


def test_the_command_line_and_runtime_do_not_load_http_or_asgi_packages() -> None:
    code = (
        "import sys, agent.daemon.runtime, agent.cli; agent.cli.build_parser();"
        "loaded = {m.split('.')[0] for m, mod in sys.modules.items() if mod is not None};"
        "print(sorted(loaded & {'httpx', 'starlette', 'uvicorn', 'sync'}))"
    )
    out = python(code)
    assert out.stdout == "[]\n", out.stderr


def test_the_daemon_loads_its_own_command_alone_and_no_feed_without_a_feed() -> None:
    # `tally run` keeps what it imported for its whole life: no other command's module, and
    # without a [feed] none of the feed's web stack (Starlette, anyio) for pulling from peers.
    code = (
        "import sys, agent.cli as c; c.build_parser(c.command_named(['-v', 'run', '-c', 'x']));"
        "import agent.cli.services, sync.replica.service, sync.sender.forwarder;"
        "print(sorted(m for m in sys.modules if m.startswith('agent.cli.commands.')));"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'anyio'}))"
    )
    out = python(code)
    assert out.stdout == "['agent.cli.commands.run']\n[]\n", out.stderr


def test_help_and_a_mistyped_command_list_every_command() -> None:
    for argv in (["--help"], ["-v", "-h", "run"], ["weigh"]):
        out = tally(*argv)
        listed = out.stdout + out.stderr
        assert all(name in listed for name in ("run", "tui", "ctl", "serve", "check-config")), argv


def test_agent_never_imports_sync() -> None:
    root = Path(__file__).resolve().parents[2] / "agent"
    offenders = []
    for path in root.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith(("import sync", "from sync")) and line.startswith(
                ("import", "from")
            ):
                offenders.append(f"{path.name}:{n}")
    assert offenders == []


def test_without_sync_the_op_says_disabled(daemon: Daemon) -> None:
    assert daemon.request("sync.sender.status") == {
        "enabled": False,
        "backlog": 0,
        "oldest_unsent_s": None,
        "acked_through": 0,
        "last_ack_at": None,
        "last_error": None,
        "dead_letters": 0,
        "state": "disabled",
        "url": None,
    }

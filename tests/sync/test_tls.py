"""TLS between the sender and `tally serve`: the agent trusts its CA file and the host only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sync.sender.forwarder import ssl_context
from sync.sender.status import ACKED
from tests.sync.certs import Authority, issue, make_ca
from tests.sync.helpers import Receiver, append_notes, make_parts, sync_config, write_private

TOKEN = "tok-tls-test-000001"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pki")
    plant = make_ca(folder, "plant-ca")
    rogue = make_ca(folder, "rogue-ca")
    return {
        "folder": folder,
        "plant": plant,
        "good": issue(plant, folder, "server", hosts=("127.0.0.1", "localhost")),
        "rogue": issue(rogue, folder, "rogue-server", hosts=("127.0.0.1",)),
        "elsewhere": issue(plant, folder, "elsewhere", hosts=("central.example.com",)),
        "client": issue(plant, folder, "wb1-client", client=True),
    }


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Receiver] = []

    def start(cert: tuple[Path, Path], client_ca: Authority | None = None) -> Receiver:
        extra = ("--tls-cert", str(cert[0]), "--tls-key", str(cert[1]))
        if client_ca is not None:
            extra += ("--tls-client-ca", str(client_ca.pem))
        r = Receiver(tmp_path / f"receiver{len(started)}", f"wb1:{TOKEN}\n", extra=extra)
        started.append(r)
        return r.start()

    yield start
    for r in started:
        r.stop()


async def send_once(folder: Path, url: str, plant: Authority, **tls: str) -> tuple[int, Any]:
    """One step of a sender trusting the plant CA; (acked seq, active alerts or last error)."""
    folder.mkdir(parents=True, exist_ok=True)
    token = write_private(folder / "token", TOKEN)
    cfg = sync_config(url, token, ca_file=str(plant.pem), **tls)
    p = await make_parts(folder, cfg, tls=ssl_context(cfg))
    try:
        await append_notes(p.writer, 3)
        await p.sender.step()
        alerts = {k: v["detail"] for k, v in p.alerts.active.items()}
        return int(p.store.get_state(ACKED, 0)), alerts or p.store.get_state("sync.last_error")
    finally:
        await p.sender.close()
        p.close()


async def test_a_server_certificate_from_the_plant_ca_is_accepted(
    tmp_path: Path, pki: dict[str, Any], serve: Any
) -> None:
    r = serve(pki["good"])
    assert r.url.startswith("https://127.0.0.1:")
    assert await send_once(tmp_path, r.url, pki["plant"]) == (3, None)


async def test_a_server_certificate_from_another_ca_is_refused(
    tmp_path: Path, pki: dict[str, Any], serve: Any
) -> None:
    r = serve(pki["rogue"])
    acked, alerts = await send_once(tmp_path, r.url, pki["plant"])
    assert acked == 0
    assert alerts == {
        "sync_tls": "the TLS connection to the server failed (unable to get local issuer"
        " certificate); check sync.ca_file"
    }
    assert r.rows("SELECT count(*) FROM events") == [(0,)]


async def test_a_server_certificate_for_another_host_is_refused(
    tmp_path: Path, pki: dict[str, Any], serve: Any
) -> None:
    r = serve(pki["elsewhere"])
    acked, alerts = await send_once(tmp_path, r.url, pki["plant"])
    assert acked == 0
    assert alerts == {
        "sync_tls": "the TLS connection to the server failed (IP address mismatch,"
        " certificate is not valid for '127.0.0.1'.); check sync.ca_file"
    }
    assert r.rows("SELECT count(*) FROM events") == [(0,)]


async def test_a_client_certificate_is_presented_when_the_server_requires_one(
    tmp_path: Path, pki: dict[str, Any], serve: Any
) -> None:
    r = serve(pki["good"], client_ca=pki["plant"])
    cert, key = pki["client"]
    without = await send_once(tmp_path / "without", r.url, pki["plant"])
    assert without[0] == 0
    # TLS 1.3: the server refuses after the handshake, so the client only sees it hang up
    # (a reset read or a disconnect, depending on timing)
    assert without[1].startswith("cannot reach the server (")
    assert r.rows("SELECT count(*) FROM events") == [(0,)]
    with_cert = await send_once(
        tmp_path / "with", r.url, pki["plant"], client_cert=str(cert), client_key=str(key)
    )
    assert with_cert == (3, None)


def test_the_receiver_refuses_tls_files_it_cannot_load(tmp_path: Path, pki: dict[str, Any]) -> None:
    from tests.daemon import tally

    tokens = write_private(tmp_path / "tokens", f"wb1:{TOKEN}\n")
    base = ["serve", "--db", str(tmp_path / "c.db"), "--listen", "127.0.0.1:0"]
    base += ["--tokens", str(tokens)]
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cert, key = (str(p) for p in pki["good"])
    out = tally(*base, "--tls-cert", str(junk), "--tls-key", key)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.startswith(f"tally: --tls-cert '{junk}' with --tls-key '{key}' cannot be")
    assert out.stderr.rstrip().endswith("give a PEM certificate and its private key")
    out = tally(*base, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", str(junk))
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.startswith(f"tally: --tls-client-ca '{junk}' cannot be loaded (")
    assert not (tmp_path / "c.db").exists()  # refused before anything was opened

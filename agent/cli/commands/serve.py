"""`tally serve`: the reference central receiver, and `tally serve stats` over its database."""

from __future__ import annotations

import argparse
import contextlib
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.cli.commands.export import LEDGERS

if TYPE_CHECKING:
    from sync.receiver.app import TlsFiles

HELP = "run the reference central receiver (or `serve stats` to count what it holds)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `tally serve` and its `stats` subcommand."""
    p.add_argument(
        "--db", help="the receiver's SQLite file (created when missing) or a postgresql:// URL"
    )
    p.add_argument(
        "--listen", default="127.0.0.1:8400", help="HOST:PORT to listen on (port 0: any)"
    )
    p.add_argument(
        "--tokens",
        help="file of `terminal:token`, `plant/terminal:token` or `@reader:token` lines, mode 0600",
    )
    p.add_argument(
        "--max-body-mb", type=int, default=64, help="largest decompressed request body (MiB)"
    )
    p.add_argument("--timezone", default="", help="plant time zone for KPI days (default: config)")
    p.add_argument("--config", help="a tally.toml whose [kpi] thresholds and time zone to use")
    p.add_argument("--tls-cert", default="", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", default="", help="the certificate's private key (PEM)")
    p.add_argument(
        "--tls-client-ca", default="", help="require client certificates signed by this CA (PEM)"
    )
    p.add_argument("--users", default="", help="the users file (`tally serve user add`), mode 0600")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the listening socket (more than 1 needs PostgreSQL)",
    )
    sub = p.add_subparsers(dest="serve_command", metavar="stats|export|user")
    stats = sub.add_parser("stats", help="per terminal and epoch: events stored and highest seq")
    stats.add_argument("--db", required=True, help="the receiver's SQLite file or URL")
    stats.add_argument("--json", action="store_true", help="print JSON")
    export = sub.add_parser(
        "export", help="a day's ledger for the whole plant (every terminal's events)"
    )
    export.add_argument("--db", required=True, help="the receiver's SQLite file or URL")
    export.add_argument("--day", required=True, help="the plant-local day, YYYY-MM-DD")
    export.add_argument("--ledger", required=True, choices=LEDGERS)
    export.add_argument("--format", default="csv", choices=["csv", "xlsx"])
    export.add_argument("--out", help="the file to write (default: stdout for csv)")
    export.add_argument("--language", default="zh", choices=["zh", "en"])
    export.add_argument("--timezone", default="Asia/Shanghai", help="the plant's time zone")
    user = sub.add_parser("user", help="the people who sign in to the pages")
    user_sub = user.add_subparsers(dest="user_command", metavar="add", required=True)
    add = user_sub.add_parser(
        "add", help="add a user (or set their password, role and plant); password from a prompt"
    )
    add.add_argument("name", help="the user name: a-z, 0-9, '.', '_' and '-'")
    add.add_argument("--role", required=True, choices=["reader", "admin"])
    add.add_argument("--plant", default="", help="the one plant a reader may read (default: all)")
    add.add_argument("--users", required=True, help="the users file (created mode 0600)")


def main(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM, or print the stats."""
    from agent.errors import UsageError
    from sync.receiver.store import ReceiverStoreError

    try:
        if args.serve_command == "stats":
            return _stats(args)
        if args.serve_command == "export":
            return _export(args)
        if args.serve_command == "user":
            return _user_add(args)
        return _serve(args)
    except ReceiverStoreError as exc:
        raise UsageError(str(exc)) from None


def _stats(args: argparse.Namespace) -> int:
    import json

    from sync.receiver.engine import read_stats

    terminals = read_stats(args.db)
    if args.json:
        print(json.dumps({"terminals": terminals}, ensure_ascii=False))
        return 0
    print(f"{'TERMINAL':<12} {'EPOCH':<18} {'EVENTS':>10} {'MAX SEQ':>10}")
    for t in terminals:
        print(f"{t['terminal']:<12} {t['epoch']:<18} {t['events']:>10} {t['max_seq']:>10}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from agent.cli.commands.export import export
    from agent.errors import UsageError
    from sync.receiver.engine import read_events

    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone {args.timezone!r} is not a known IANA time zone") from None
    return export(read_events(args.db), args, args.timezone, args.language)


def _read_password() -> str:
    """The new password: asked twice on a terminal, else the first line of stdin."""
    import getpass
    import sys

    from agent.errors import UsageError

    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("the two passwords differ; run the command again")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _user_add(args: argparse.Namespace) -> int:
    from agent.errors import UsageError
    from sync.receiver.users import UserError, add_user, user_problem
    from sync.tokens import expand

    problem = user_problem(args.name, args.role, args.plant)
    if problem:
        raise UsageError(problem)
    try:
        new = add_user(expand(args.users), args.name, args.role, args.plant, _read_password())
    except UserError as exc:
        raise UsageError(str(exc)) from None
    where = f" of plant {args.plant}" if args.plant else ""
    print(f"{'added' if new else 'updated'} {args.role} {args.name}{where} in {args.users}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import sys
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from agent import config as cfg
    from agent.cli.ledger_files import ledger_bytes
    from agent.errors import UsageError
    from sync.receiver.app import TlsFiles, create_app, parse_listen, serve
    from sync.receiver.engine import is_postgres, open_db
    from sync.receiver.users import UserTable
    from sync.tokens import TokenFileError, TokenTable, expand

    if not args.db or not args.tokens:
        raise UsageError("tally serve needs --db FILE (or postgresql://...) and --tokens FILE")
    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.max_body_mb < 1:
        raise UsageError("--max-body-mb must be at least 1")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together; pass both or neither")
    if args.tls_client_ca and not args.tls_cert:
        raise UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.workers > 1 and not is_postgres(args.db):
        raise UsageError(
            "--workers above 1 needs PostgreSQL: a SQLite receiver is one process (its kept"
            " reports and KPI cache follow only its own writes); use --db postgresql://..."
            " or --workers 1"
        )
    try:
        tokens = TokenTable.load(expand(args.tokens))
        users = UserTable.load(expand(args.users)) if args.users else None
    except TokenFileError as exc:
        raise UsageError(str(exc)) from None
    kpi = cfg.KpiConfig()
    timezone = "Asia/Shanghai"
    if args.config:
        config = cfg.load(args.config, check_paths=False)
        kpi, timezone = config.kpi, config.terminal.timezone
    timezone = args.timezone or timezone
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone {timezone!r} is not a known IANA zone") from None
    tls = TlsFiles(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    if tls is not None:
        _check_tls(tls)

    def run(sock: socket.socket | None, on_ready: Callable[[str], None]) -> None:
        store = open_db(args.db)
        app = create_app(
            store,
            tokens,
            max_body=args.max_body_mb << 20,
            timezone=timezone,
            kpi=kpi,
            users=users,
            ledger_file=ledger_bytes,
        )
        try:
            asyncio.run(serve(app, host, port, tls=tls, on_ready=on_ready, sock=sock))
        finally:
            store.close()

    def ready(url: str) -> None:
        print(f"listening {url}", flush=True)

    from sync.listen import listen_advice, listen_socket

    try:
        sock = listen_socket(args.listen, backlog=2048)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.listen} ({exc.strerror or exc}); "
            + listen_advice(exc, "--listen")
        ) from None
    try:
        if args.workers == 1:
            run(sock, ready)
            return 0
        return _workers(args.workers, host, sock, tls is not None, run, ready)
    except OSError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return 1


def _workers(
    n: int,
    host: str,
    sock: socket.socket,
    https: bool,
    run: Callable[[socket.socket | None, Callable[[str], None]], None],
    ready: Callable[[str], None],
) -> int:
    """Fork `n` processes serving the same socket, restart one that dies, and stop
    them all on SIGTERM/SIGINT. Each child opens its own database pool after the fork."""
    import os
    import signal
    import threading
    import time

    sock.set_inheritable(True)
    watch_r, watch_w = os.pipe()  # children see EOF when this process is gone, however it ends

    def child() -> None:
        os.close(watch_w)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

        def watch() -> None:
            os.read(watch_r, 1)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, daemon=True).start()
        run(sock, lambda url: None)

    def start() -> int:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                child()
            except BaseException:
                code = 1
            os._exit(code)
        return pid

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pids = {start() for _ in range(n)}
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    ready(f"{'https' if https else 'http'}://{shown}:{bound}")
    while not stopping:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid and pid in pids:
            pids.discard(pid)
            pids.add(start())  # a worker died: its place is taken at once
            continue
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pid, _ = os.waitpid(-1, os.WNOHANG)
        pids.discard(pid)
        if not pid:
            time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return 0


def _check_tls(tls: TlsFiles) -> None:
    """Load the certificate, its key and the client CA once before serving, so a file that is
    not what it should be is refused with a sentence naming it (exit 2), not a bare SSL error."""
    import ssl

    from agent.errors import UsageError
    from sync.tls import server_context

    try:
        ctx = server_context(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"--tls-cert {tls.cert!r} with --tls-key {tls.key!r} cannot be loaded ({exc}); "
            "give a PEM certificate and its private key"
        ) from None
    if tls.client_ca:
        try:
            ctx.load_verify_locations(tls.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"--tls-client-ca {tls.client_ca!r} cannot be loaded ({exc}); "
                "give the PEM certificate of the CA that signs the terminals' certificates"
            ) from None

"""`tally serve`: the reference central receiver, and `tally serve stats` over its database."""

from __future__ import annotations

import argparse

from agent.cli.commands.export import LEDGERS

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
    sub = p.add_subparsers(dest="serve_command", metavar="stats|export")
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


def main(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM, or print the stats."""
    from agent.errors import UsageError
    from sync.receiver.store import ReceiverStoreError

    try:
        if args.serve_command == "stats":
            return _stats(args)
        if args.serve_command == "export":
            return _export(args)
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


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import sys
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from agent import config as cfg
    from agent.errors import UsageError
    from sync.receiver.app import TlsFiles, create_app, parse_listen, serve
    from sync.receiver.engine import open_db
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
    try:
        tokens = TokenTable.load(expand(args.tokens))
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
    store = open_db(args.db)
    app = create_app(store, tokens, max_body=args.max_body_mb << 20, timezone=timezone, kpi=kpi)
    tls = TlsFiles(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None

    def ready(url: str) -> None:
        print(f"listening {url}", flush=True)

    try:
        asyncio.run(serve(app, host, port, tls=tls, on_ready=ready))
    except OSError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0

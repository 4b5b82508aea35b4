"""The ``quicish`` command: ``quicish serve`` and ``quicish get`` speaking hq-interop (and
HTTP/3 with ``--http3``); ``quicish secrets`` and ``quicish lb`` for a fleet's shared
secrets and QUIC-LB files."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from . import __version__, hq, log
from .aio.api import connect, run, serve
from .aio.connection import QuicConnection
from .aio.workers import current_worker
from .config import Config, EarlyStreamCheck
from .errors import ConfigError, ConnectionStateError, QuicError, StreamResetError
from .keyfile import FleetSecrets
from .lb import CidFormat, QuicLbConfig, decode
from .wire.packet import QUIC_V1, QUIC_V2

logger = logging.getLogger("quicish")

SIGNAL_GRACE = 0.5  # s a supervisor whose workers all stopped waits for its own signal
CIPHERS = {"aes128": "aes128", "aes256": "aes256", "chacha20": "chacha20"}
# serve --early-data: Config.early_data (absent: None, the default policy).
_EARLY_DATA: dict[str | None, bool | EarlyStreamCheck] = {
    "on": True,
    "off": False,
    "idempotent": hq.idempotent,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``quicish`` argument parser (every option has help text)."""
    parser = argparse.ArgumentParser(prog="quicish", description="QUIC file transfer (hq-interop)")
    verbose_help = (
        "log to stderr (-v: connection lifecycle at INFO, -vv: also every packet at DEBUG)"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help=verbose_help)
    # Also after the subcommand (``quicish serve -v``); absent there, the count above stands.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help=verbose_help
    )
    parser.add_argument("--version", action="version", version=f"quicish {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve files under a directory", parents=[verbose])
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    s.add_argument(
        "--port",
        type=int,
        default=4433,
        help="UDP port to listen on; 0 picks a free one (default %(default)s)",
    )
    s.add_argument(
        "--root",
        default=".",
        help="directory whose files are served (default: the current directory)",
    )
    s.add_argument("--cert", help="PEM certificate chain (default: a fresh self-signed one)")
    s.add_argument("--key", help="PEM private key of --cert")
    s.add_argument(
        "--alpn", default="hq-interop", help="application protocol to offer (default %(default)s)"
    )
    retry = s.add_mutually_exclusive_group()
    retry.add_argument(
        "--retry",
        action="store_const",
        const="always",
        dest="retry_mode",
        help="validate every new client's address with Retry (same as --retry-mode always)",
    )
    retry.add_argument(
        "--retry-mode",
        choices=["auto", "always", "never"],
        help="when to answer a new client with Retry: auto (the default) only "
        "while --retry-threshold handshakes are in progress, always, never",
    )
    s.add_argument(
        "--retry-threshold",
        type=int,
        default=Config.retry_threshold,
        help="half-open connections from which auto Retry engages (default %(default)s)",
    )
    s.add_argument(
        "--max-half-open",
        type=int,
        default=Config.max_half_open,
        help="at most this many handshakes in progress; beyond, new clients get "
        "Retry or are dropped (default %(default)s)",
    )
    s.add_argument(
        "--handshake-timeout",
        type=float,
        default=Config.handshake_timeout,
        help="seconds a client's handshake may go without progress (at most 3x in "
        "all; default %(default)s)",
    )
    s.add_argument(
        "--v2",
        action="store_true",
        help="prefer QUIC v2: answer clients that offer it in v2 (RFC 9368)",
    )
    s.add_argument(
        "--cc",
        choices=["cubic", "newreno", "bbr"],
        default="cubic",
        help="congestion controller (default %(default)s)",
    )
    s.add_argument(
        "--http3",
        action="store_true",
        help="also serve HTTP/3 (ALPN h3) beside --alpn; the ALPN picks the protocol",
    )
    s.add_argument("--keylog", help="append TLS secrets to this file (SSLKEYLOGFILE format)")
    s.add_argument(
        "--secrets",
        metavar="FILE",
        help="a fleet's shared ticket, token and reset keys (quicish secrets new FILE)",
    )
    s.add_argument(
        "--early-data",
        choices=sorted(_EARLY_DATA),
        help="0-RTT: on, off, or idempotent (GET requests in 0-RTT served at once, others "
        "after the handshake); default on, but off with --secrets (docs/deployment.md)",
    )
    s.add_argument(
        "--quic-lb",
        metavar="FILE",
        help="issue QUIC-LB routable CIDs under this configuration (quicish lb new FILE)",
    )
    s.add_argument("--server-id", metavar="HEX", help="this server's QUIC-LB server ID, in hex")
    s.add_argument(
        "--workers",
        type=int,
        nargs="?",
        const=0,
        metavar="N",
        help="serve from N worker processes on the one port, the kernel steering each "
        "packet to its connection's worker (Linux; no N: one per CPU)",
    )
    s.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="with --workers: on SIGTERM, seconds connections may go on before they are "
        "closed (default %(default)s)",
    )
    s.add_argument(
        "--qlog-dir",
        metavar="DIR",
        help="write one qlog file per connection in DIR (default: $QLOGDIR, if set)",
    )
    s.add_argument("--duration", type=float, help="stop after this many seconds")
    s.add_argument("--quiet", action="store_true", help="no access-log line per request")

    g = sub.add_parser(
        "get", help="fetch https://host:port/path URLs over one connection", parents=[verbose]
    )
    g.add_argument("urls", nargs="+", help="https://host:port/path URLs, all on one server")
    g.add_argument(
        "--output",
        default=".",
        help="directory to write the files to (default: the current directory)",
    )
    trust = g.add_mutually_exclusive_group()
    trust.add_argument("--ca", help="CA certificate file to verify the server against")
    trust.add_argument("--pin", help="expected SHA-256 fingerprint of the server certificate")
    trust.add_argument("--insecure", action="store_true", help="do not verify the server")
    g.add_argument(
        "--alpn", default="hq-interop", help="application protocol to ask for (default %(default)s)"
    )
    g.add_argument("--http3", action="store_true", help="fetch over HTTP/3 (ALPN h3)")
    g.add_argument("--cipher", choices=sorted(CIPHERS), help="offer only this cipher suite")
    g.add_argument(
        "--cc",
        choices=["cubic", "newreno", "bbr"],
        default="cubic",
        help="congestion controller (default %(default)s)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds the handshake may go without an answer or progress "
        "(default %(default)s; raise it on very lossy links)",
    )
    g.add_argument("--session-ticket", help="file to load/store a session ticket")
    g.add_argument(
        "--0rtt",
        dest="zero_rtt",
        action="store_true",
        help="send the requests as 0-RTT early data (needs --session-ticket)",
    )
    g.add_argument(
        "--migrate",
        action="store_true",
        help="move to a new local port mid-transfer (active migration)",
    )
    g.add_argument("--key-update", action="store_true", help="update the 1-RTT keys once")
    g.add_argument(
        "--v2",
        action="store_true",
        help="offer QUIC v2 (first flight in v1, the server may switch)",
    )
    g.add_argument("--keylog", help="append TLS secrets to this file (SSLKEYLOGFILE format)")
    g.add_argument(
        "--qlog-dir",
        metavar="DIR",
        help="write one qlog file per connection in DIR (default: $QLOGDIR, if set)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress display")

    k = sub.add_parser("secrets", help="create, rotate or check a fleet's shared secrets file")
    k.add_argument(
        "action",
        choices=["new", "stage", "promote", "rotate", "show"],
        help="new: a fresh file; stage: add new ticket and token keys second (accepted, "
        "not yet used); promote: move them first; rotate: add them first; show: counts and "
        "fingerprint",
    )
    k.add_argument("file", help="the secrets file (JSON, mode 600)")
    k.add_argument(
        "--keep",
        type=int,
        default=3,
        help="stage/rotate: ticket and token keys kept, oldest dropped (default %(default)s)",
    )

    lb = sub.add_parser("lb", help="create a QUIC-LB configuration file, or decode CIDs with it")
    lb.add_argument("action", choices=["new", "decode"], help="new FILE, or decode FILE CID...")
    lb.add_argument("file", help="the QUIC-LB configuration (JSON, mode 600)")
    lb.add_argument("cids", nargs="*", help="decode: connection IDs in hex")
    lb.add_argument("--config-id", type=int, default=0, help="new: config rotation bits, 0-6")
    lb.add_argument(
        "--server-id-length", type=int, default=2, help="new: server ID bytes (default 2)"
    )
    lb.add_argument("--nonce-length", type=int, default=6, help="new: nonce bytes (default 6)")
    lb.add_argument(
        "--plaintext",
        action="store_true",
        help="new: no key: server IDs visible to every observer (not recommended)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with log.cli_logging(args.verbose):
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    try:
        if args.command == "serve":
            return run(_serve(args))
        if args.command == "secrets":
            return _secrets(args)
        if args.command == "lb":
            return _lb(args)
        return run(_get(args))
    except KeyboardInterrupt:
        return 130
    except (QuicError, OSError, asyncio.TimeoutError) as exc:
        print(f"quicish {args.command}: {_describe(exc)}", file=sys.stderr)
        return 1


def _h3_missing(command: str) -> bool:
    """``--http3`` without its QPACK library: say so (True) instead of a traceback."""
    try:
        import pylsqpack  # noqa: F401
    except ImportError:
        print(
            f"quicish {command}: --http3 needs pylsqpack: pip install 'quicish[h3]'",
            file=sys.stderr,
        )
        return True
    return False


async def _serve(args: argparse.Namespace) -> int:
    if args.http3 and _h3_missing("serve"):
        return 2
    cert, key = args.cert, args.key
    if (cert is None) != (key is None):
        print("quicish serve: --cert and --key go together", file=sys.stderr)
        return 2
    if (args.quic_lb is None) != (args.server_id is None):
        print("quicish serve: --quic-lb and --server-id go together", file=sys.stderr)
        return 2
    if cert is None:
        from cryptography import x509

        from .tls.certs import certificate_fingerprint, generate_self_signed

        cert, key = generate_self_signed(("localhost", "127.0.0.1", "::1"))  # PEM, in memory
        fingerprint = certificate_fingerprint(x509.load_pem_x509_certificate(cert))
        print(f"self-signed certificate, SHA-256 fingerprint: {fingerprint}", flush=True)
    config = Config(
        alpn=["h3", args.alpn] if args.http3 else [args.alpn],
        certificate_chain=cert,
        private_key=key,
        congestion_control=args.cc,
        keylog_file=args.keylog,
        qlog_dir=args.qlog_dir,
        retry=args.retry_mode or "auto",
        retry_threshold=args.retry_threshold,
        max_half_open=args.max_half_open,
        handshake_timeout=args.handshake_timeout,
        secrets=args.secrets,
        cid_format=_cid_format(args.quic_lb, args.server_id),
        early_data=_EARLY_DATA.get(args.early_data),
    )
    files = hq.FileServer(args.root, on_served=None if args.quiet else _access_log)
    both = _BothProtocols(files, args) if args.http3 else None
    if args.workers is not None:
        return await _serve_workers(args, config, files, both)
    server = await serve(
        args.host,
        args.port,
        config=config,
        on_stream=None if both else files.handle,
        on_connection=both.on_connection if both else None,
        versions=_V2_FIRST if args.v2 else None,
    )
    host, port = server.address[:2]
    print(f"listening on {host}:{port}, serving {Path(args.root).resolve()}", flush=True)
    try:
        if args.duration:
            await asyncio.sleep(args.duration)
        else:
            await asyncio.Event().wait()
    finally:
        if both is not None:
            both.goaway()
        server.close()
    return 0


async def _serve_workers(
    args: argparse.Namespace, config: Config, files: hq.FileServer, both: _BothProtocols | None
) -> int:
    """``serve --workers``: the worker pool until --duration, SIGTERM (graceful: drain)
    or SIGINT (close at once; exit status 130)."""
    pool = await serve(
        args.host,
        args.port,
        config=config,
        on_stream=None if both else files.handle,
        on_connection=both.on_connection if both else None,
        versions=_V2_FIRST if args.v2 else None,
        workers=args.workers,
        drain_timeout=args.drain_timeout,
    )
    host, port = pool.address[:2]
    steering = "steered by connection ID" if pool.steered else "no kernel steering"
    print(
        f"listening on {host}:{port} with {pool.count} workers ({steering}), serving "
        f"{Path(args.root).resolve()}",
        flush=True,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    now = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, now.set)
    waits = [asyncio.ensure_future(e.wait()) for e in (stop, now)]
    waits.append(asyncio.ensure_future(pool.wait_closed()))  # every worker stopped itself
    try:
        await asyncio.wait(waits, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
        if waits[2].done() and not (stop.is_set() or now.is_set()):
            # Every worker stopped itself: a Ctrl-C to the process group reaches this process
            # too, and its handler may run only after their exits were seen.
            await asyncio.wait(waits[:2], timeout=SIGNAL_GRACE)
        if not now.is_set():
            await pool.shutdown()
    finally:
        for wait in waits:
            wait.cancel()
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)
        pool.close()
        await pool.wait_closed()
    return 130 if now.is_set() else 0


def _secrets(args: argparse.Namespace) -> int:
    """``quicish secrets new|stage|promote|rotate|show FILE``: never prints a key, only
    counts and a fingerprint."""
    if args.action == "new":
        secrets = FleetSecrets.generate()
        secrets.save(args.file)
    else:
        secrets = FleetSecrets.load(args.file)
        if args.action in ("stage", "rotate"):
            secrets = secrets.rotated(args.keep, stage=args.action == "stage")
        elif args.action == "promote":
            secrets = secrets.promoted()
        if args.action != "show":
            secrets.save(args.file, replace=True)
    print(
        f"{args.file}: {len(secrets.ticket_keys)} ticket keys, {len(secrets.token_keys)} "
        f"token keys, fingerprint {secrets.fingerprint}",
        flush=True,
    )
    return 0


def _cid_format(path: str | None, server_id: str | None) -> CidFormat | None:
    if path is None or server_id is None:
        return None
    try:
        sid = bytes.fromhex(server_id)
    except ValueError:
        raise ConfigError("--server-id must be hex digits") from None
    return CidFormat(QuicLbConfig.load(path), sid)


def _lb(args: argparse.Namespace) -> int:
    """``quicish lb new FILE`` (a fresh key) or ``quicish lb decode FILE CID...``."""
    if args.action == "new":
        config = QuicLbConfig(
            args.config_id,
            args.server_id_length,
            args.nonce_length,
            None if args.plaintext else os.urandom(16),
        )
        config.save(args.file)
        print(f"{args.file}: {config.algorithm}, CIDs of {config.cid_length} bytes", flush=True)
        return 0
    config = QuicLbConfig.load(args.file)
    for text in args.cids:
        try:
            cid = bytes.fromhex(text)
        except ValueError:
            print(f"{text}: not hex", flush=True)
            continue
        server_id = decode(cid, config)
        print(f"{text}: {'unroutable' if server_id is None else server_id.hex()}", flush=True)
    return 0


class _BothProtocols:
    """``serve --http3``: each connection speaks what its ALPN says, HTTP/3 or hq-interop."""

    def __init__(self, files: hq.FileServer, args: argparse.Namespace) -> None:
        from .h3.files import FileHandler

        self.files = files
        self.http3 = FileHandler(args.root, on_served=None if args.quiet else _access_log)
        self.h3_connections: set[Any] = set()

    async def on_connection(self, conn: QuicConnection) -> None:
        from .h3.server import serve_connection

        await conn.wait_connected()
        if conn.alpn == "h3":
            await serve_connection(conn, self.http3, registry=self.h3_connections)
            return
        while True:
            reader, writer = await conn.accept_stream()
            conn.spawn(self.files.handle(reader, writer))

    def goaway(self) -> None:
        for h3 in self.h3_connections:
            h3.send_goaway()


def _access_log(record: hq.Served) -> None:
    """One line per request: client, request, outcome, bytes, duration."""
    host, port = record.peer[:2] if record.peer else ("?", 0)
    worker = current_worker()
    print(
        ("" if worker is None else f"[worker {worker}] ")
        + f"{host}:{port} GET {record.path} {record.status} {record.size} bytes "
        f"{record.duration:.3f} s",
        flush=True,
    )


async def _get(args: argparse.Namespace) -> int:
    if args.http3 and _h3_missing("get"):
        return 2
    unsupported = [
        name
        for name, on in (("--migrate", args.migrate), ("--key-update", args.key_update))
        if on and not _feature_built(name)
    ]
    if unsupported:
        print(f"quicish get: {', '.join(unsupported)} not implemented yet", file=sys.stderr)
        return 2
    targets = []
    for url in args.urls:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            print(f"quicish get: not an https:// URL: {url}", file=sys.stderr)
            return 2
        targets.append((parts.hostname, parts.port or 443, parts.path or "/"))
    hosts = {(h, p) for h, p, _ in targets}
    if len(hosts) != 1:
        print("quicish get: all URLs must name the same host:port", file=sys.stderr)
        return 2
    host, port = hosts.pop()
    verify: bool | str = True
    if args.insecure:
        verify = False
    elif args.ca:
        verify = args.ca
    config = Config(
        alpn=["h3"] if args.http3 else [args.alpn],
        verify=verify,
        pin=args.pin,
        cipher_suites=[args.cipher] if args.cipher else None,
        congestion_control=args.cc,
        keylog_file=args.keylog,
        qlog_dir=args.qlog_dir,
        max_data=16 << 20,
        max_stream_data=8 << 20,
    )
    ticket = None
    if args.session_ticket and os.path.exists(args.session_ticket):
        ticket = Path(args.session_ticket).read_bytes()
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    conn = await connect(
        host,
        port,
        config=config,
        session_ticket=ticket,
        timeout=args.timeout,
        early_data=args.zero_rtt and bool(ticket),
        versions=_V2_FIRST if args.v2 else None,
    )
    total = done = 0
    ok = True
    client: Any = None
    try:
        progress = _Progress(
            [Path(p).name or "index.html" for _, _, p in targets],
            sys.stderr if not args.quiet and sys.stderr.isatty() else None,
        )
        key_update = _KeyUpdater(conn) if args.key_update else None
        migrator = _Migrator(conn) if args.migrate else None
        hooks = [h.on_chunk for h in (key_update, migrator) if h is not None]
        client = await _h3_client(conn, host, port) if args.http3 else None

        async def one(index: int, path: str) -> int:
            name = Path(path).name or "index.html"

            def on_chunk(size: int) -> None:
                progress.advance(index, size)
                for hook in hooks:
                    hook(size)

            if client is not None:
                from .h3.files import fetch as h3_fetch

                size = await h3_fetch(client, path, out_dir / name, on_chunk=on_chunk)
            else:
                reader, writer = await conn.open_stream()
                size = await hq.fetch(reader, writer, path, out_dir / name, on_chunk=on_chunk)
            progress.finish(index)
            return size

        results = await asyncio.gather(
            *(one(i, p) for i, (_, _, p) in enumerate(targets)), return_exceptions=True
        )
        for (_, _, path), result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                ok = False
                print(f"quicish get: {path}: {_describe(result)}", file=sys.stderr)
            else:
                total += result
                done += 1
        progress.close()
        if key_update is not None:
            key_update.on_chunk(0)  # a transfer too short to update during it: do it now
        if migrator is not None:
            await migrator.finish()
        if args.session_ticket:
            await _store_ticket(conn, args.session_ticket)
        await conn.wait_connected()  # with 0-RTT the transfer may have begun before it
        _print_features(conn, args)
    finally:
        conn.close(0x100 if client is not None else 0)  # H3_NO_ERROR for HTTP/3
        await conn.wait_closed()
    elapsed = time.perf_counter() - start
    mbit = total * 8 / elapsed / 1e6 if elapsed > 0 else 0.0
    print(
        f"fetched {done} file(s), {total} bytes in {elapsed:.3f} s: {mbit:.1f} Mbit/s",
        flush=True,
    )
    if conn.qlog_path is not None:
        print(f"qlog: {conn.qlog_path}", flush=True)
    return 0 if ok else 1


async def _h3_client(conn: QuicConnection, host: str, port: int) -> Any:
    """An HTTP/3 client on ``conn`` (``get --http3``)."""
    from .h3.client import H3Client

    client = H3Client(conn, host if port == 443 else f"{host}:{port}")
    await client.start()
    return client


def _describe(exc: BaseException) -> str:
    """A one-line reason for a failure: a download, a name lookup, a socket."""
    if isinstance(exc, StreamResetError) and exc.error_code == hq.ERROR_NOT_FOUND:
        return "not found on the server"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, OSError) and not isinstance(exc, QuicError) and exc.strerror:
        return exc.strerror
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


def _feature_built(option: str) -> bool:
    return option in _BUILT


_BUILT = frozenset(("--session-ticket", "--0rtt", "--key-update", "--migrate"))
_V2_FIRST = (QUIC_V2, QUIC_V1)
MIGRATE_AFTER = 64 * 1024  # bytes received before --migrate moves to a new socket


class _Migrator:
    """``--migrate``: move to a new local socket once, mid-transfer (after MIGRATE_AFTER
    bytes; a transfer shorter than that migrates at its end)."""

    def __init__(self, conn: QuicConnection) -> None:
        self._conn = conn
        self._received = 0
        self._task: asyncio.Task[None] | None = None
        self.migrated = False

    def on_chunk(self, size: int) -> None:
        self._received += size
        conn = self._conn
        if self._task is None and self._received >= MIGRATE_AFTER and conn.handshake_confirmed:
            self._task = asyncio.ensure_future(self._migrate())

    async def _migrate(self) -> None:
        try:
            await self._conn.migrate()
            self.migrated = True
        except QuicError as exc:
            print(f"quicish get: migration failed: {exc}", file=sys.stderr)

    async def finish(self) -> None:
        if self._task is None:
            await self._conn.wait_connected()
            self._task = asyncio.ensure_future(self._migrate())
        await self._task


class _KeyUpdater:
    """``--key-update``: start a 1-RTT key update once data flows (the handshake must be
    confirmed first, so each arriving chunk retries until it is)."""

    def __init__(self, conn: QuicConnection) -> None:
        self._conn = conn
        self.done = False

    def on_chunk(self, size: int) -> None:
        if self.done:
            return
        try:
            self._conn.request_key_update()
        except ConnectionStateError:
            return  # handshake not confirmed yet
        self.done = True


async def _store_ticket(conn: QuicConnection, path: str) -> None:
    """Save the newest session ticket (waiting briefly: it follows HANDSHAKE_DONE)."""
    if conn.session_ticket is None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(conn.wait_session_ticket(), 1.0)
    if conn.session_ticket is not None:
        Path(path).write_bytes(conn.session_ticket)


def _print_features(conn: QuicConnection, args: argparse.Namespace) -> None:
    """What the advanced options achieved, one ``name: yes|no`` line each."""

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    if conn.stats().retries_received:
        print("retry: yes", flush=True)
    if args.key_update:
        print(f"key_update: {yes(conn.stats().key_updates > 0)}", flush=True)
    if args.migrate:
        print(f"migrated: {yes(conn.stats().path_migrations > 0)}", flush=True)
    if args.v2:
        print(f"version: {'v2' if conn.version == QUIC_V2 else 'v1'}", flush=True)
    if args.session_ticket or args.zero_rtt:
        print(f"resumed: {yes(conn.session_resumed)}", flush=True)
        print(f"early_data_accepted: {yes(conn.early_data_accepted)}", flush=True)


class _Progress:
    """Transfer progress redrawn on one terminal line: bytes per file (the largest in flight
    first), total bytes, rate and files done. hq-interop sends no length, so there is no
    ETA. With no terminal (``out`` None) it draws nothing; the summary line follows."""

    INTERVAL = 0.1  # seconds between redraws

    def __init__(self, names: list[str], out: TextIO | None) -> None:
        self._names = names
        self._sizes = [0] * len(names)
        self._done = [False] * len(names)
        self._out = out
        self._start = time.perf_counter()
        self._drawn = 0.0
        self._width = 0

    def advance(self, index: int, size: int) -> None:
        self._sizes[index] += size
        now = time.perf_counter()
        if self._out is not None and now - self._drawn >= self.INTERVAL:
            self._drawn = now
            self._draw(now)

    def finish(self, index: int) -> None:
        self._done[index] = True

    def line(self, now: float) -> str:
        """The progress line at ``now`` (perf_counter seconds)."""
        total = sum(self._sizes)
        elapsed = max(now - self._start, 1e-9)
        active = [i for i, done in enumerate(self._done) if not done and self._sizes[i]]
        active.sort(key=lambda i: -self._sizes[i])
        files = ", ".join(f"{self._names[i]} {_human(self._sizes[i])}" for i in active[:2])
        more = f" +{len(active) - 2}" if len(active) > 2 else ""
        return (
            f"{sum(self._done)}/{len(self._names)} files, {_human(total)}, "
            f"{total * 8 / elapsed / 1e6:.1f} Mbit/s" + (f" | {files}{more}" if files else "")
        )

    def _draw(self, now: float) -> None:
        assert self._out is not None
        text = self.line(now)
        self._out.write("\r" + text.ljust(self._width))
        self._out.flush()
        self._width = len(text)

    def close(self) -> None:
        if self._out is not None and self._width:
            self._out.write("\r" + " " * self._width + "\r")
            self._out.flush()


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


if __name__ == "__main__":
    sys.exit(main())

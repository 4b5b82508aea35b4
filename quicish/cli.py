"""The ``quicish`` command: ``quicish serve`` and ``quicish get`` speaking hq-interop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from . import __version__, hq
from .aio.api import connect, run, serve
from .aio.connection import QuicConnection
from .config import Config
from .errors import ConnectionStateError, QuicError, StreamResetError
from .wire.packet import QUIC_V1, QUIC_V2

logger = logging.getLogger("quicish")

CIPHERS = {"aes128": "aes128", "aes256": "aes256", "chacha20": "chacha20"}


def build_parser() -> argparse.ArgumentParser:
    """The ``quicish`` argument parser (every option has help text)."""
    parser = argparse.ArgumentParser(prog="quicish", description="QUIC file transfer (hq-interop)")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log connection events to stderr (-v: lifecycle, -vv: debug)",
    )
    parser.add_argument("--version", action="version", version=f"quicish {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve files under a directory")
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
    s.add_argument("--keylog", help="append TLS secrets to this file (SSLKEYLOGFILE format)")
    s.add_argument("--duration", type=float, help="stop after this many seconds")
    s.add_argument("--quiet", action="store_true", help="no access-log line per request")

    g = sub.add_parser("get", help="fetch https://host:port/path URLs over one connection")
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
    g.add_argument("--quiet", action="store_true", help="no progress display")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.command == "serve":
            return run(_serve(args))
        return run(_get(args))
    except KeyboardInterrupt:
        return 130
    except (QuicError, OSError, asyncio.TimeoutError) as exc:
        print(f"quicish {args.command}: {_describe(exc)}", file=sys.stderr)
        return 1


async def _serve(args: argparse.Namespace) -> int:
    cert, key = args.cert, args.key
    if (cert is None) != (key is None):
        print("quicish serve: --cert and --key go together", file=sys.stderr)
        return 2
    if cert is None:
        from cryptography import x509

        from .tls.certs import certificate_fingerprint, generate_self_signed

        cert, key = generate_self_signed(("localhost", "127.0.0.1", "::1"))  # PEM, in memory
        fingerprint = certificate_fingerprint(x509.load_pem_x509_certificate(cert))
        print(f"self-signed certificate, SHA-256 fingerprint: {fingerprint}", flush=True)
    config = Config(
        alpn=[args.alpn],
        certificate_chain=cert,
        private_key=key,
        congestion_control=args.cc,
        keylog_file=args.keylog,
        retry=args.retry_mode or "auto",
        retry_threshold=args.retry_threshold,
        max_half_open=args.max_half_open,
        handshake_timeout=args.handshake_timeout,
    )
    files = hq.FileServer(args.root, on_served=None if args.quiet else _access_log)
    server = await serve(
        args.host,
        args.port,
        config=config,
        on_stream=files.handle,
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
        server.close()
    return 0


def _access_log(record: hq.Served) -> None:
    """One line per request: client, request, outcome, bytes, duration."""
    host, port = record.peer[:2] if record.peer else ("?", 0)
    print(
        f"{host}:{port} GET {record.path} {record.status} {record.size} bytes "
        f"{record.duration:.3f} s",
        flush=True,
    )


async def _get(args: argparse.Namespace) -> int:
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
        alpn=[args.alpn],
        verify=verify,
        pin=args.pin,
        cipher_suites=[args.cipher] if args.cipher else None,
        congestion_control=args.cc,
        keylog_file=args.keylog,
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
    try:
        progress = _Progress(
            [Path(p).name or "index.html" for _, _, p in targets],
            sys.stderr if not args.quiet and sys.stderr.isatty() else None,
        )
        key_update = _KeyUpdater(conn) if args.key_update else None
        migrator = _Migrator(conn) if args.migrate else None
        hooks = [h.on_chunk for h in (key_update, migrator) if h is not None]

        async def one(index: int, path: str) -> int:
            reader, writer = await conn.open_stream()
            name = Path(path).name or "index.html"

            def on_chunk(size: int) -> None:
                progress.advance(index, size)
                for hook in hooks:
                    hook(size)

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
        conn.close()
        await conn.wait_closed()
    elapsed = time.perf_counter() - start
    mbit = total * 8 / elapsed / 1e6 if elapsed > 0 else 0.0
    print(
        f"fetched {done} file(s), {total} bytes in {elapsed:.3f} s: {mbit:.1f} Mbit/s",
        flush=True,
    )
    return 0 if ok else 1


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

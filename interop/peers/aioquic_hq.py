"""hq-interop server and client on aioquic's public API: the matrix's foreign peer.

    python interop/peers/aioquic_hq.py serve --host H --port P --root DIR --cert C --key K
        [--retry] [--keylog F] [--cc reno|cubic]
    python interop/peers/aioquic_hq.py get URL... --output DIR [--cipher chacha20]
        [--session-ticket F] [--0rtt] [--key-update] [--v2] [--keylog F]

Prints the same lines the matrix expects from ``quicish serve`` / ``quicish get``
("listening on H:P"; "fetched N file(s), B bytes in S s: X Mbit/s", "resumed: yes|no",
"early_data_accepted: yes|no", "key_update: yes"). Options aioquic cannot do
(``--migrate``) print "not implemented" and exit 2, like quicish does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pickle
import ssl
import sys
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent
from aioquic.quic.packet import QuicProtocolVersion
from aioquic.tls import CipherSuite, SessionTicket

ALPN = ["hq-interop"]
CHUNK = 64 * 1024
CIPHERS = {
    "aes128": CipherSuite.AES_128_GCM_SHA256,
    "aes256": CipherSuite.AES_256_GCM_SHA384,
    "chacha20": CipherSuite.CHACHA20_POLY1305_SHA256,
}


def _keylog(path: str | None) -> TextIO | None:
    return open(path, "a", buffering=1) if path else None  # lives with the process


# -- server ----------------------------------------------------------------------------


class TicketStore:
    """Single-use session tickets, so a replayed 0-RTT ClientHello finds none."""

    def __init__(self) -> None:
        self._tickets: dict[bytes, SessionTicket] = {}

    def add(self, ticket: SessionTicket) -> None:
        self._tickets[ticket.ticket] = ticket

    def pop(self, label: bytes) -> SessionTicket | None:
        return self._tickets.pop(label, None)


def _resolve(root: Path, request: bytes) -> Path | None:
    try:
        method, path = request.decode("ascii").strip().split(" ")
    except (UnicodeDecodeError, ValueError):
        return None
    if method != "GET" or not path.startswith("/"):
        return None
    target = (root / path.lstrip("/")).resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file():
        return None
    return target


async def _serve_one(
    root: Path, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    request = await reader.read(4096)
    while b"\n" not in request and not reader.at_eof() and len(request) < 4096:
        more = await reader.read(4096 - len(request))
        if not more:
            break
        request += more
    target = _resolve(root, request)
    if target is not None:
        with open(target, "rb") as fh:
            while chunk := fh.read(CHUNK):
                writer.write(chunk)
                await writer.drain()
    writer.write_eof()


async def run_server(args: argparse.Namespace) -> int:
    config = QuicConfiguration(
        is_client=False,
        alpn_protocols=ALPN,
        congestion_control_algorithm=args.cc,
        secrets_log_file=_keylog(args.keylog),
        max_datagram_frame_size=None,
    )
    config.load_cert_chain(args.cert, args.key)
    root = Path(args.root)
    tasks: set[asyncio.Task[None]] = set()

    def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(_serve_one(root, reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    store = TicketStore()
    server = await serve(
        args.host,
        args.port,
        configuration=config,
        stream_handler=on_stream,
        session_ticket_fetcher=store.pop,
        session_ticket_handler=store.add,
        retry=args.retry,
    )
    print(f"listening on {args.host}:{args.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
    return 0


# -- client ----------------------------------------------------------------------------


class ClientProtocol(QuicConnectionProtocol):
    """Remembers the handshake outcome for the report lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handshake: HandshakeCompleted | None = None
        self.terminated: ConnectionTerminated | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self.handshake = event
        elif isinstance(event, ConnectionTerminated):
            self.terminated = event
        super().quic_event_received(event)


async def _fetch(proto: ClientProtocol, path: str, dest: Path, first_byte: asyncio.Event) -> int:
    reader, writer = await proto.create_stream()
    writer.write(f"GET {path}\r\n".encode())
    writer.write_eof()
    size = 0
    with open(dest, "wb") as fh:
        while chunk := await reader.read(CHUNK):
            fh.write(chunk)
            size += len(chunk)
            first_byte.set()
    if proto.terminated is not None:  # EOF from the connection dying, not from a FIN
        t = proto.terminated
        raise ConnectionError(f"connection closed: code {t.error_code:#x} {t.reason_phrase!r}")
    return size


async def run_client(args: argparse.Namespace) -> int:
    if args.migrate:
        print("aioquic_hq get: --migrate not implemented (no public API)", file=sys.stderr)
        return 2
    parts = [urlsplit(u) for u in args.urls]
    hosts = {(p.hostname, p.port or 443) for p in parts}
    if len(hosts) != 1 or any(p.scheme != "https" for p in parts):
        print("aioquic_hq get: need https:// URLs of one host:port", file=sys.stderr)
        return 2
    host, port = hosts.pop()
    assert host is not None
    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=ALPN,
        server_name="localhost",
        verify_mode=ssl.CERT_NONE,  # test peer: the quicish side is what is under test
        secrets_log_file=_keylog(args.keylog),
        congestion_control_algorithm=args.cc,
        max_data=16 << 20,
        max_stream_data=8 << 20,
    )
    if args.cipher:
        config.cipher_suites = [CIPHERS[args.cipher]]
    if args.v2:
        config.original_version = QuicProtocolVersion.VERSION_1
        config.supported_versions = [QuicProtocolVersion.VERSION_2, QuicProtocolVersion.VERSION_1]
    ticket_path = Path(args.session_ticket) if args.session_ticket else None
    if ticket_path is not None and ticket_path.exists():
        with open(ticket_path, "rb") as fh:
            config.session_ticket = pickle.load(fh)

    def save_ticket(ticket: SessionTicket) -> None:
        if ticket_path is not None:
            with open(ticket_path, "wb") as fh:
                pickle.dump(ticket, fh)

    early = bool(args.zero_rtt and config.session_ticket is not None)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    total, ok = 0, True
    async with connect(
        host,
        port,
        configuration=config,
        create_protocol=ClientProtocol,
        session_ticket_handler=save_ticket,
        wait_connected=not early,
    ) as proto:
        assert isinstance(proto, ClientProtocol)
        first_byte = asyncio.Event()
        jobs = [
            _fetch(proto, p.path or "/", out / (Path(p.path).name or "index.html"), first_byte)
            for p in parts
        ]
        key_update = None
        if args.key_update:
            key_update = asyncio.ensure_future(_update_keys(proto, first_byte))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for p, result in zip(parts, results, strict=True):
            if isinstance(result, BaseException):
                ok = False
                print(f"aioquic_hq get: {p.path}: {result!r}", file=sys.stderr)
            else:
                total += result
        if key_update is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(key_update, 1.0)
            print(f"key_update: {'yes' if key_update.done() else 'no'}", flush=True)
        if proto.handshake is not None:
            hs = proto.handshake
            print(f"resumed: {'yes' if hs.session_resumed else 'no'}", flush=True)
            if early:
                print(f"early_data_accepted: {'yes' if hs.early_data_accepted else 'no'}")
    elapsed = time.perf_counter() - start
    mbit = total * 8 / elapsed / 1e6 if elapsed > 0 else 0.0
    print(
        f"fetched {len(parts)} file(s), {total} bytes in {elapsed:.3f} s: {mbit:.1f} Mbit/s",
        flush=True,
    )
    return 0 if ok else 1


async def _update_keys(proto: ClientProtocol, first_byte: asyncio.Event) -> None:
    await first_byte.wait()
    proto.request_key_update()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aioquic_hq", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=4433)
    s.add_argument("--root", default=".")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--retry", action="store_true")
    s.add_argument("--keylog")
    s.add_argument("--cc", choices=["reno", "cubic"], default="cubic")
    g = sub.add_parser("get")
    g.add_argument("urls", nargs="+")
    g.add_argument("--output", default=".")
    g.add_argument("--cipher", choices=sorted(CIPHERS))
    g.add_argument("--session-ticket")
    g.add_argument("--0rtt", dest="zero_rtt", action="store_true")
    g.add_argument("--key-update", action="store_true")
    g.add_argument("--migrate", action="store_true")
    g.add_argument("--v2", action="store_true")
    g.add_argument("--keylog")
    g.add_argument("--cc", choices=["reno", "cubic"], default="cubic")
    g.add_argument("--pin", help="accepted for CLI symmetry; not checked")
    args = parser.parse_args(argv)
    runner = run_server if args.command == "serve" else run_client
    try:
        return asyncio.run(runner(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

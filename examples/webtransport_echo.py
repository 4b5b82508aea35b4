"""WebTransport echo server: accepts sessions on any path, echoes every bidirectional
stream's bytes back (then FIN), every unidirectional stream on a new one, and every
datagram. Open examples/webtransport_page.html in Chromium to try it.

    python examples/webtransport_echo.py --host 127.0.0.1 --port 4433 --cert C --key K

Browsers accept a self-signed certificate through ``serverCertificateHashes`` only if it
is ECDSA P-256 and valid for at most 14 days: without --cert/--key one is made (10 days)
and its SHA-256 hash printed for the page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Coroutine
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import quicish
import quicish.h3 as h3
from quicish.aio.streams import QuicStreamWriter
from quicish.h3.webtransport import WebTransportReader, WebTransportSession
from quicish.tls.certs import generate_self_signed


async def echo_stream(reader: WebTransportReader, writer: QuicStreamWriter) -> None:
    async for chunk in reader:
        writer.write(chunk)
        await writer.drain()
    writer.write_eof()


async def echo_uni_stream(session: WebTransportSession, reader: WebTransportReader) -> None:
    data = await reader.read()
    writer = await session.open_uni_stream()
    writer.write(data)
    writer.write_eof()


async def on_session(session: WebTransportSession) -> None:
    """Echo until the session ends."""
    print(f"session {session.session_id} on {session.path}", flush=True)
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def streams() -> None:
        while True:
            spawn(echo_stream(*await session.accept_stream()))

    async def uni_streams() -> None:
        while True:
            spawn(echo_uni_stream(session, await session.accept_uni_stream()))

    async def datagrams() -> None:
        while True:
            session.send_datagram(await session.receive_datagram())

    with contextlib.suppress(ConnectionError, quicish.QuicError):
        await asyncio.gather(streams(), uni_streams(), datagrams())
    code, reason = await session.wait_closed()
    print(f"session {session.session_id} closed: {code} {reason!r}", flush=True)


def certificate_hash(cert_pem: bytes) -> str:
    """SHA-256 of the DER certificate, hex: what ``serverCertificateHashes`` takes."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4433)
    parser.add_argument("--cert", help="PEM certificate (ECDSA P-256, <= 14 days)")
    parser.add_argument("--key", help="PEM private key of --cert")
    args = parser.parse_args()
    if args.cert and args.key:
        cert: bytes | str = args.cert
        key: bytes | str = args.key
        with open(args.cert, "rb") as fh:
            cert_pem = fh.read()
    else:
        cert_pem, key_pem = generate_self_signed(("localhost", "127.0.0.1"), days=10)
        cert, key = cert_pem, key_pem
    config = quicish.Config(certificate_chain=cert, private_key=key)
    async with h3.serve(args.host, args.port, config=config, on_session=on_session) as server:
        host, port = server.address[:2]
        print(f"listening on {host}:{port}", flush=True)
        print(f"certificate SHA-256: {certificate_hash(cert_pem)}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())

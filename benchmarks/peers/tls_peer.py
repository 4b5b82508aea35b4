"""TLS 1.3 over TCP benchmark peer (asyncio + ssl): ``python tls_peer.py server|client ...``.

Python's ``ssl`` cannot choose TLS 1.3 cipher suites, so OpenSSL's default applies (usually
AES-256-GCM); the client reports the negotiated suite.
"""

from __future__ import annotations

import argparse
import ssl
import sys

import common
import tcp_peer


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    return ctx


cipher_seen: list[str] = []


async def dial(host: str, port: int) -> tcp_peer.TcpSession:
    session = await tcp_peer.dial(host, port, client_context())
    obj = session.writer.get_extra_info("ssl_object")
    if obj is not None and not cipher_seen:
        cipher_seen.append(obj.cipher()[0])
    return session


async def serve(host: str, port: int, handler: common.Handler, args: argparse.Namespace) -> int:
    cert, key = common.ensure_cert(args)
    return await tcp_peer.serve(host, port, handler, args, server_context(cert, key))


if __name__ == "__main__":
    sys.exit(common.main("tls", dial, serve, extra=lambda: {"cipher": ",".join(cipher_seen)}))

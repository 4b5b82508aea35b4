"""Plain TCP benchmark peer (asyncio streams): ``python tcp_peer.py server|client ...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import ssl
import sys
from typing import Any

import common

STREAM_LIMIT = 1 << 20  # StreamReader buffer limit, for TCP and TLS alike


class TcpSession:
    """One TCP (or TLS) connection: a single byte stream, so requests are pipelined on it."""

    multiplexed = False

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def open_stream(self) -> tuple[Any, Any]:
        return self.reader, self.writer

    def end_stream(self, writer: Any) -> None:
        """Nothing: the response length is known, and TLS transports cannot half-close."""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
            await self.writer.wait_closed()


async def dial(host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> TcpSession:
    reader, writer = await common.connect_within(
        asyncio.open_connection(
            host,
            port,
            ssl=ssl_context,
            limit=STREAM_LIMIT,
            server_hostname="localhost" if ssl_context else None,
        ),
        "TLS handshake" if ssl_context else "TCP connect",
    )
    return TcpSession(reader, writer)


async def serve(
    host: str,
    port: int,
    handler: common.Handler,
    args: argparse.Namespace,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        TcpSession(reader, writer)  # sets TCP_NODELAY
        await handler(reader, writer)

    server = await asyncio.start_server(
        on_connection, host, port, ssl=ssl_context, limit=STREAM_LIMIT
    )
    _keep.append(server)
    return int(server.sockets[0].getsockname()[1])


_keep: list[Any] = []

if __name__ == "__main__":
    sys.exit(common.main("tcp", dial, serve))

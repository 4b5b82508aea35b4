"""Helpers for the HTTP/3 tests: a quicish HTTP/3 server on loopback UDP, and a raw HTTP/3
peer (plain quicish streams, frames written by hand) that sees the codes it is answered
with."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pylsqpack
from support import client_config, server_config

import quicish
import quicish.h3 as h3
from quicish import ConnectionClosedError, QuicConnection, QuicStreamReader, QuicStreamWriter
from quicish.h3.frames import FrameType, encode_frame, encode_settings, encode_varint

GET_HEADERS = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/"),
]


@contextlib.asynccontextmanager
async def h3_server(handler: h3.server.Handler, **kw: Any) -> AsyncIterator[h3.H3Server]:
    """A quicish HTTP/3 server on 127.0.0.1 (``kw``: serve()'s keywords)."""
    async with h3.serve("127.0.0.1", 0, handler, config=server_config(), **kw) as server:
        yield server


def h3_client_config(**kw: Any) -> quicish.Config:
    kw.setdefault("alpn", ["h3"])
    return client_config(**kw)


def block(headers: list[tuple[bytes, bytes]], stream_id: int = 0) -> bytes:
    """A QPACK header block with no dynamic table (literals and static references)."""
    return bytes(pylsqpack.Encoder().encode(stream_id, headers)[1])


def headers_frame(headers: list[tuple[bytes, bytes]]) -> bytes:
    return encode_frame(FrameType.HEADERS, block(headers))


SETTINGS = encode_settings({0x6: 1 << 16})


class RawPeer:
    """A QUIC connection (ALPN h3) whose HTTP/3 bytes the test writes itself."""

    def __init__(self, conn: QuicConnection) -> None:
        self.conn = conn

    async def uni(
        self, stream_type: int, payload: bytes = b"", fin: bool = False
    ) -> QuicStreamWriter:
        _, writer = await self.conn.open_stream(unidirectional=True)
        writer.write(encode_varint(stream_type) + payload)
        if fin:
            writer.write_eof()
        return writer

    async def control(self, payload: bytes = SETTINGS) -> QuicStreamWriter:
        """Our control stream, starting with ``payload`` (a SETTINGS frame by default)."""
        return await self.uni(0x00, payload)

    async def request(
        self, payload: bytes, fin: bool = True
    ) -> tuple[QuicStreamReader, QuicStreamWriter]:
        reader, writer = await self.conn.open_stream()
        writer.write(payload)
        if fin:
            writer.write_eof()
        return reader, writer

    async def close_code(self, timeout: float = 5.0) -> int:
        """The code of the CONNECTION_CLOSE the server sends."""
        with contextlib.suppress(ConnectionClosedError):
            await asyncio.wait_for(self.conn.wait_closed(), timeout)
        error = self.conn.close_error
        assert error is not None, "the connection did not close"
        assert error.by_peer, f"closed by us: {error}"
        return error.error_code


@contextlib.asynccontextmanager
async def raw_peer(port: int) -> AsyncIterator[RawPeer]:
    async with quicish.connect("127.0.0.1", port, config=h3_client_config()) as conn:
        yield RawPeer(conn)


async def reset_code(reader: QuicStreamReader, timeout: float = 5.0) -> int:
    """The code the server reset a request stream with (fails if it answered instead)."""
    try:
        data = await asyncio.wait_for(reader.read(), timeout)
    except quicish.StreamResetError as exc:
        return exc.error_code
    raise AssertionError(f"stream answered, not reset: {data[:80]!r}")

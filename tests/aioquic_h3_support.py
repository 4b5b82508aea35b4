"""aioquic's HTTP/3 (tests only): a client (aioquic.h3.connection.H3Connection over
aioquic's asyncio client) and a file server, as peers of quicish.h3."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent
from support import cert_files

Headers = list[tuple[bytes, bytes]]


class _Exchange:
    def __init__(self) -> None:
        self.headers: Headers = []
        self.body = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class H3ClientProtocol(QuicConnectionProtocol):
    """aioquic's HTTP/3 client: ``await get(authority, path)`` -> (headers, body)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.http = H3Connection(self._quic)
        self.exchanges: dict[int, _Exchange] = {}
        self.close_code: int | None = None

    async def request(
        self, method: str, authority: str, path: str, body: bytes = b""
    ) -> tuple[Headers, bytes]:
        stream_id = self._quic.get_next_available_stream_id()
        exchange = self.exchanges[stream_id] = _Exchange()
        self.http.send_headers(
            stream_id,
            [
                (b":method", method.encode()),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
                (b"user-agent", b"aioquic"),
            ],
            end_stream=not body,
        )
        if body:
            self.http.send_data(stream_id, body, end_stream=True)
        self.transmit()
        await exchange.done
        return exchange.headers, bytes(exchange.body)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.close_code = event.error_code
            for exchange in self.exchanges.values():
                if not exchange.done.done():
                    exchange.done.set_exception(ConnectionError(event.reason_phrase))
        for h3_event in self.http.handle_event(event):
            self._h3_event(h3_event)

    def _h3_event(self, event: H3Event) -> None:
        exchange = self.exchanges.get(getattr(event, "stream_id", -1))
        if exchange is None:
            return
        if isinstance(event, HeadersReceived):
            exchange.headers = list(event.headers)
        elif isinstance(event, DataReceived):
            exchange.body += event.data
        if getattr(event, "stream_ended", False) and not exchange.done.done():
            exchange.done.set_result(None)


@contextlib.asynccontextmanager
async def aioquic_h3_client(port: int) -> AsyncIterator[H3ClientProtocol]:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
    config.verify_mode = ssl.CERT_NONE
    config.max_stream_data = 8 << 20
    config.max_data = 32 << 20
    async with connect(
        "127.0.0.1", port, configuration=config, create_protocol=H3ClientProtocol
    ) as client:
        assert isinstance(client, H3ClientProtocol)
        yield client


class H3FileServerProtocol(QuicConnectionProtocol):
    """aioquic's HTTP/3 server answering GETs with the files under ``root`` (404 else)."""

    root: Path

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.http = H3Connection(self._quic)
        self.requests: list[Headers] = []

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.http.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                self.requests.append(list(h3_event.headers))
                self._answer(h3_event.stream_id, dict(h3_event.headers))

    def _answer(self, stream_id: int, headers: dict[bytes, bytes]) -> None:
        name = headers.get(b":path", b"/").decode().lstrip("/")
        target = self.root / name
        if headers.get(b":method") != b"GET" or not name or not target.is_file():
            body, status = b"not found", b"404"
        else:
            body, status = target.read_bytes(), b"200"
        self.http.send_headers(
            stream_id, [(b":status", status), (b"content-length", str(len(body)).encode())]
        )
        self.http.send_data(stream_id, body, end_stream=True)
        self.transmit()


@contextlib.asynccontextmanager
async def aioquic_h3_file_server(root: Path) -> AsyncIterator[int]:
    """aioquic's HTTP/3 server for ``root`` on 127.0.0.1; yields its port."""
    cert, key, _ = cert_files()
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    config.load_cert_chain(cert, key)
    protocol = type("Files", (H3FileServerProtocol,), {"root": root})
    server = await serve("127.0.0.1", 0, configuration=config, create_protocol=protocol)
    try:
        transport = server._transport
        assert transport is not None
        yield transport.get_extra_info("sockname")[1]
    finally:
        server.close()

"""The HTTP/3 server: :func:`serve` with an ``async def handler(request) -> Response``, and
:func:`serve_connection` for an application that picks HTTP/3 by ALPN itself."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Generator
from typing import Any

from ..aio.api import Server
from ..aio.api import serve as quic_serve
from ..aio.connection import QuicConnection
from ..aio.streams import QuicStreamReader, QuicStreamWriter
from ..config import Config
from ..errors import QuicError, StreamResetError
from .connection import H3Connection, H3Settings
from .errors import H3Error, H3ErrorCode, H3StreamError
from .headers import validate_request
from .messages import (
    Body,
    FieldSectionTooLarge,
    MessageIn,
    Request,
    Response,
    from_wire,
    to_wire,
)
from .webtransport import WT_BIDI_SIGNAL, SessionHandler, WebTransportHub

logger = logging.getLogger("quicish.h3")
ALPN = "h3"
Handler = Callable[[Request], Awaitable[Response]]
GOAWAY_GRACE = 2.0  # seconds requests in progress get to finish when a server closes


class H3Server:
    """A listening HTTP/3 server. ``shutdown()`` sends GOAWAY, lets it arrive and the
    requests in progress finish for up to GOAWAY_GRACE seconds, then closes the
    connections; ``close()`` does it at once."""

    def __init__(
        self,
        handler: Handler,
        settings: H3Settings | None = None,
        on_session: SessionHandler | None = None,
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.on_session = on_session
        self.quic: Server | None = None
        self.connections: set[H3Connection] = set()

    @property
    def address(self) -> Any:
        assert self.quic is not None
        return self.quic.address

    async def on_connection(self, conn: QuicConnection) -> None:
        await serve_connection(
            conn, self.handler, self.settings, self.connections, on_session=self.on_session
        )

    async def shutdown(self, grace: float = GOAWAY_GRACE) -> None:
        """GOAWAY to every client, then close once their requests are done (or ``grace``)."""
        conns = list(self.connections)
        for h3 in conns:
            h3.send_goaway()
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(h3.control_delivered(grace)) for h3 in conns
        ]
        waits += [t for h3 in conns for t in h3.requests]
        if waits:
            await asyncio.wait(waits, timeout=grace)
        for h3 in conns:
            h3.close()
        if self.quic is not None:
            self.quic.close()
            await self.quic.wait_closed()

    def close(self) -> None:
        """Close at once (GOAWAY, then H3_NO_ERROR)."""
        for h3 in list(self.connections):
            h3.send_goaway()
            h3.close()
        if self.quic is not None:
            self.quic.close()

    async def wait_closed(self) -> None:
        if self.quic is not None:
            await self.quic.wait_closed()

    async def __aenter__(self) -> H3Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown(grace=0.5)


class PendingH3Server:
    """What :func:`serve` returns: ``await`` it, or use it in ``async with``."""

    def __init__(self, make: Callable[[], Awaitable[H3Server]]) -> None:
        self._make = make
        self._server: H3Server | None = None

    def __await__(self) -> Generator[Any, None, H3Server]:
        return self._make().__await__()

    async def __aenter__(self) -> H3Server:
        self._server = await self._make()
        return self._server

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            await self._server.__aexit__(*exc)


def h3_config(config: Config) -> Config:
    """``config`` offering ALPN ``h3`` (unless it already does)."""
    alpn = [config.alpn] if isinstance(config.alpn, str) else list(config.alpn)
    return config if ALPN in alpn else dataclasses.replace(config, alpn=[ALPN])


async def not_found(request: Request) -> Response:
    """The handler of a server given none (WebTransport only)."""
    return Response(404, body=b"not found\n")


def serve(
    host: str,
    port: int,
    handler: Handler | None = None,
    *,
    config: Config,
    settings: H3Settings | None = None,
    on_session: SessionHandler | None = None,
) -> PendingH3Server:
    """Serve HTTP/3 on ``host:port``: ``handler(request)`` answers each request.
    ``on_session(session)`` accepts WebTransport sessions (then the WebTransport settings
    are advertised and QUIC DATAGRAM frames enabled)."""
    if on_session is not None:
        settings = dataclasses.replace(settings or H3Settings(), webtransport=True)
        if config.max_datagram_frame_size is None:
            config = dataclasses.replace(config, max_datagram_frame_size=65535)

    async def make() -> H3Server:
        server = H3Server(handler or not_found, settings, on_session)
        server.quic = await quic_serve(
            host, port, config=h3_config(config), on_connection=server.on_connection
        )
        return server

    return PendingH3Server(make)


async def serve_connection(
    conn: QuicConnection,
    handler: Handler,
    settings: H3Settings | None = None,
    registry: set[H3Connection] | None = None,
    on_session: SessionHandler | None = None,
) -> None:
    """Serve HTTP/3 on one accepted QUIC connection until it ends (WebTransport sessions
    too with ``on_session``: give ``settings`` with ``webtransport=True`` then)."""
    h3 = H3Connection(conn, is_client=False, settings=settings)
    if registry is not None:
        registry.add(h3)
    try:
        await conn.wait_connected()
        await h3.start()
        hub = WebTransportHub(h3, on_session) if on_session is not None else None

        async def on_request(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
            await _serve_request(h3, handler, reader, writer, hub)

        await h3.run(on_request)
    except QuicError:
        pass
    finally:
        if registry is not None:
            registry.discard(h3)


async def _serve_request(
    h3: H3Connection,
    handler: Handler,
    reader: QuicStreamReader,
    writer: QuicStreamWriter,
    hub: WebTransportHub | None = None,
) -> None:
    message = MessageIn(h3, reader, writer)
    try:
        if hub is not None and await message.frames.read_varint(consume=False) == WT_BIDI_SIGNAL:
            await message.frames.read_varint()
            await hub.bidi_stream(message.frames, reader, writer)
            return
        try:
            fields = await message.headers()
        except FieldSectionTooLarge:
            await _send(h3, writer, "GET", Response(431, body=b"request header fields too large"))
            reader.stop_sending(H3ErrorCode.H3_NO_ERROR)
            return
        if fields is None:
            raise H3StreamError(H3ErrorCode.H3_REQUEST_INCOMPLETE, "no HEADERS")
        head = validate_request(fields)
        if head.protocol is not None and not h3.settings.webtransport:
            # RFC 9220 section 3: :protocol only after SETTINGS_ENABLE_CONNECT_PROTOCOL
            raise H3StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "extended CONNECT not enabled")
        message.start_body(head.fields)
        peer = writer.get_extra_info("peername")
        request = Request(
            head.method,
            head.path,
            head.authority,
            head.scheme,
            from_wire(head.fields),
            Body(message.body()),
            head.protocol,
            writer.stream_id,
            tuple(peer[:2]) if peer else None,
        )
        if hub is not None and head.method == "CONNECT" and head.protocol == "webtransport":
            await hub.serve_session(request, reader, writer, message.frames)
            return
        response = await handler(request)
        await _send(h3, writer, head.method, response)
        if not message.done and not reader.at_eof():
            reader.stop_sending(H3ErrorCode.H3_NO_ERROR)  # the body is not needed (9114 4.1)
    except H3StreamError as exc:
        logger.info("h3: stream %d: %s", writer.stream_id, exc)
        h3.reset_stream(reader, writer, exc.code)
    except H3Error as exc:
        h3.fail(exc)
    except StreamResetError:
        h3.reset_stream(reader, writer, H3ErrorCode.H3_REQUEST_CANCELLED)
    except QuicError:
        pass
    except Exception:
        logger.exception("h3: handler failed")
        h3.reset_stream(reader, writer, H3ErrorCode.H3_INTERNAL_ERROR)


async def _send(
    h3: H3Connection, writer: QuicStreamWriter, method: str, response: Response
) -> None:
    """The response: HEADERS (with content-length for a bytes body), DATA, FIN."""
    fields = [(b":status", str(response.status).encode())]
    fields += to_wire(response.headers)
    body = response.body
    no_body = method == "HEAD" or response.status in (204, 304)
    if isinstance(body, bytes | bytearray | memoryview):
        if not any(name == b"content-length" for name, _ in fields):
            fields.append((b"content-length", str(len(body)).encode()))
        no_body = no_body or not body
    if no_body:
        h3.send_headers(writer, fields, end=True)
        return
    h3.send_headers(writer, fields)
    if isinstance(body, AsyncIterable):
        async for chunk in body:
            if chunk:
                await h3.send_data(writer, bytes(chunk))
    else:
        await h3.send_data(writer, bytes(body))
    writer.write_eof()

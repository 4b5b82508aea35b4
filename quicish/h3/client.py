"""The HTTP/3 client: :func:`connect` (many requests on one connection), :func:`request`
(one request, its whole body) and :func:`stream` (one request, its body as it arrives)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Generator
from typing import Any
from urllib.parse import urlsplit

from ..aio.api import connect as quic_connect
from ..aio.connection import QuicConnection
from ..aio.streams import QuicStreamReader, QuicStreamWriter
from ..config import Config
from ..errors import ConfigError, QuicError, StreamResetError
from .connection import H3Connection, H3Settings
from .errors import H3Error, H3ErrorCode, H3ResponseError, H3StreamError
from .frames import FrameReader
from .headers import validate_response
from .messages import (
    Body,
    HeadersLike,
    MessageIn,
    Request,
    Response,
    StreamingResponse,
    from_wire,
    to_wire,
)
from .server import h3_config
from .webtransport import WT_BIDI_SIGNAL, WebTransportHub, WebTransportSession

BodyLike = bytes | AsyncIterable[bytes]


class H3Client:
    """HTTP/3 over one QUIC connection; close it with ``close()`` or ``async with``."""

    def __init__(
        self, quic: QuicConnection, authority: str, settings: H3Settings | None = None
    ) -> None:
        self.quic = quic
        self.authority = authority
        self.h3 = H3Connection(quic, is_client=True, settings=settings)
        self._runner: asyncio.Task[None] | None = None
        self.webtransport: WebTransportHub | None = None

    async def start(self) -> None:
        await self.h3.start()
        if self.h3.settings.webtransport:
            self.webtransport = WebTransportHub(self.h3)
            self._runner = asyncio.ensure_future(self.h3.run(self._server_stream))
        else:
            self._runner = asyncio.ensure_future(self.h3.run())

    async def _server_stream(self, reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        """A bidirectional stream the server opened: WebTransport's, or an error."""
        frames = FrameReader(reader.read, 16)
        with contextlib.suppress(QuicError):
            if await frames.read_varint() == WT_BIDI_SIGNAL and self.webtransport is not None:
                await self.webtransport.bidi_stream(frames, reader, writer)
                return
            error = H3Error(H3ErrorCode.H3_STREAM_CREATION_ERROR, "bidi stream from the server")
            self.h3.fail(error)

    async def open_webtransport(
        self, path: str, *, headers: HeadersLike = ()
    ) -> WebTransportSession:
        """A WebTransport session on ``path`` (extended CONNECT, RFC 9220); needs
        ``H3Settings(webtransport=True)``. Raises H3ResponseError unless the server accepts
        (2xx)."""
        hub = self.webtransport
        if hub is None:
            raise ConfigError("WebTransport needs H3Settings(webtransport=True)")
        reader, writer = await self.quic.open_stream()
        fields = [
            (b":method", b"CONNECT"),
            (b":protocol", b"webtransport"),
            (b":scheme", b"https"),
            (b":authority", self.authority.encode()),
            (b":path", path.encode()),
            (b"sec-webtransport-http3-draft02", b"1"),
            *to_wire(headers),
        ]
        message = MessageIn(self.h3, reader, writer)
        try:
            self.h3.send_headers(writer, fields)
            status, response_fields = await self._response_head(message, "CONNECT")
        except H3Error as exc:
            if not isinstance(exc, H3StreamError):
                self.h3.fail(exc)
            raise H3ResponseError(exc.code, exc.reason) from exc
        except StreamResetError as exc:
            raise H3ResponseError(exc.error_code, "CONNECT stream reset") from exc
        if not 200 <= status < 300:
            self.h3.reset_stream(reader, writer, H3ErrorCode.H3_REQUEST_CANCELLED)
            raise H3ResponseError(H3ErrorCode.H3_CONNECT_ERROR, f"status {status}")
        request = Request("CONNECT", path, self.authority, "https", from_wire(response_fields))
        request.protocol = "webtransport"
        return hub.add_session(request, reader, writer, message.frames)

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: HeadersLike = (),
        body: BodyLike = b"",
    ) -> Response:
        """Send a request and read the whole response."""
        async with self.stream(method, path, headers=headers, body=body) as response:
            content = await response.read()
        return Response(response.status, response.headers, content)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        headers: HeadersLike = (),
        body: BodyLike = b"",
    ) -> AsyncIterator[StreamingResponse]:
        """Send a request; the response with its body to read as it arrives. Leaving the
        block early abandons the stream (H3_REQUEST_CANCELLED)."""
        reader, writer = await self.quic.open_stream()
        sender: asyncio.Task[None] | None = None
        message = MessageIn(self.h3, reader, writer)
        try:
            sender = await self._send_request(writer, method, path, headers, body)
            status, fields = await self._response_head(message, method)
            response = StreamingResponse(status, from_wire(fields), Body(message.body()))
            yield response
        except H3StreamError as exc:
            self.h3.reset_stream(reader, writer, exc.code)
            raise H3ResponseError(exc.code, exc.reason) from exc
        except H3Error as exc:
            self.h3.fail(exc)
            raise H3ResponseError(exc.code, exc.reason) from exc
        except StreamResetError as exc:
            raise H3ResponseError(exc.error_code, "stream reset by the server") from exc
        finally:
            if sender is not None and not sender.done():
                sender.cancel()
            if not message.done and not reader.at_eof() and self.quic.close_error is None:
                with contextlib.suppress(QuicError):
                    self.h3.reset_stream(reader, writer, H3ErrorCode.H3_REQUEST_CANCELLED)

    async def _send_request(
        self,
        writer: QuicStreamWriter,
        method: str,
        path: str,
        headers: HeadersLike,
        body: BodyLike,
    ) -> asyncio.Task[None] | None:
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", self.authority.encode()),
            (b":path", (path or "/").encode()),
        ]
        fields += to_wire(headers)
        if isinstance(body, bytes | bytearray | memoryview):
            if body and not any(n == b"content-length" for n, _ in fields):
                fields.append((b"content-length", str(len(body)).encode()))
            self.h3.send_headers(writer, fields, end=not body)
            if not body:
                return None
            await self.h3.send_data(writer, bytes(body))
            writer.write_eof()
            return None
        self.h3.send_headers(writer, fields)
        return asyncio.ensure_future(self._stream_body(writer, body))

    async def _stream_body(self, writer: QuicStreamWriter, body: AsyncIterable[bytes]) -> None:
        with contextlib.suppress(QuicError):
            async for chunk in body:
                if chunk:
                    await self.h3.send_data(writer, bytes(chunk))
            writer.write_eof()

    async def _response_head(
        self, message: MessageIn, method: str
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        while True:
            fields = await message.headers()
            if fields is None:
                raise H3StreamError(
                    H3ErrorCode.H3_REQUEST_INCOMPLETE, "response ended before its HEADERS"
                )
            status, rest = validate_response(fields)
            if status >= 200:
                message.start_body(rest, method == "HEAD" or status in (204, 304))
                return status, rest
            # 1xx: an interim response; the final one follows

    def close(self) -> None:
        """GOAWAY, then close the connection (H3_NO_ERROR)."""
        self.h3.send_goaway()
        self.h3.close()

    async def wait_closed(self) -> None:
        await self.quic.wait_closed()
        if self._runner is not None:
            await self._runner

    async def __aenter__(self) -> H3Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


class PendingClient:
    """What :func:`connect` returns: ``await`` it, or use it in ``async with``."""

    def __init__(self, coro: Any) -> None:
        self._coro = coro
        self._client: H3Client | None = None

    def __await__(self) -> Generator[Any, None, H3Client]:
        result: H3Client = yield from self._coro.__await__()
        return result

    async def __aenter__(self) -> H3Client:
        self._client = await self._coro
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.__aexit__(*exc)


def connect(
    host: str,
    port: int,
    *,
    config: Config | None = None,
    settings: H3Settings | None = None,
    timeout: float | None = None,
) -> PendingClient:
    """An :class:`H3Client` connected to ``host:port`` (ALPN ``h3``). With
    ``H3Settings(webtransport=True)`` QUIC DATAGRAM frames are enabled as well."""
    quic_config = h3_config(config or Config())
    webtransport = settings is not None and settings.webtransport
    if webtransport and quic_config.max_datagram_frame_size is None:
        quic_config = dataclasses.replace(quic_config, max_datagram_frame_size=65535)

    async def make() -> H3Client:
        quic = await quic_connect(host, port, config=quic_config, timeout=timeout)
        authority = host if port == 443 else f"{host}:{port}"
        client = H3Client(quic, authority, settings)
        try:
            await client.start()
        except BaseException:
            quic.close()
            raise
        return client

    return PendingClient(make())


def _split_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"not an https:// URL: {url}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 443, path


async def request(
    url: str,
    method: str = "GET",
    *,
    headers: HeadersLike = (),
    body: BodyLike = b"",
    config: Config | None = None,
    settings: H3Settings | None = None,
) -> Response:
    """One request on its own connection; the response with its whole body."""
    host, port, path = _split_url(url)
    async with connect(host, port, config=config, settings=settings) as client:
        return await client.request(method, path, headers=headers, body=body)


@contextlib.asynccontextmanager
async def stream(
    url: str,
    method: str = "GET",
    *,
    headers: HeadersLike = (),
    body: BodyLike = b"",
    config: Config | None = None,
    settings: H3Settings | None = None,
) -> AsyncIterator[StreamingResponse]:
    """One request on its own connection; the response's body read as it arrives."""
    host, port, path = _split_url(url)
    async with (
        connect(host, port, config=config, settings=settings) as client,
        client.stream(method, path, headers=headers, body=body) as response,
    ):
        yield response


__all__ = ["H3Client", "connect", "request", "stream"]

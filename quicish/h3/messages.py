"""HTTP messages as the application sees them (:class:`Request`, :class:`Response`,
:class:`Body`) and :class:`MessageIn`, which reads one off a request stream: HEADERS, then
DATA, then optional trailers (RFC 9114 section 4.1)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

from ..aio.streams import QuicStreamReader, QuicStreamWriter
from .connection import H3Connection
from .errors import H3Error, H3ErrorCode, H3StreamError
from .frames import FrameReader, FrameType
from .headers import content_length, field_section_size, validate_trailers
from .qpack import Headers

HeaderList = list[tuple[str, str]]
HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


def to_wire(headers: HeadersLike) -> Headers:
    """Application headers -> field lines (names lowercased, latin-1)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in items]


def from_wire(fields: Headers) -> HeaderList:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in fields]


def header(headers: HeaderList, name: str) -> str | None:
    """The first value of ``name`` (case-insensitive), or None."""
    name = name.lower()
    return next((v for k, v in headers if k == name), None)


class FieldSectionTooLarge(H3StreamError):
    """A decoded field section is over our SETTINGS_MAX_FIELD_SECTION_SIZE (a server
    answers 431, RFC 9114 section 4.2.2)."""


class MessageIn:
    """The incoming message on one request stream."""

    def __init__(self, h3: H3Connection, reader: QuicStreamReader, writer: QuicStreamWriter):
        self.h3 = h3
        self.reader = reader
        self.writer = writer
        self.stream_id = writer.stream_id
        limit = h3.settings.max_field_section_size
        self.frames = FrameReader(reader.read, limit + 1024)
        self.expected_length: int | None = None
        self.received = 0
        self.trailers: Headers = []
        self.trailers_seen = False
        self.done = False

    async def _decode(self, block: bytes) -> Headers:
        headers = await self.h3.qpack.decode(self.stream_id, block)
        self.h3.flush_qpack()  # Section Acknowledgment
        if field_section_size(headers) > self.h3.settings.max_field_section_size:
            raise FieldSectionTooLarge(H3ErrorCode.H3_EXCESSIVE_LOAD, "field section too large")
        return headers

    async def headers(self) -> Headers | None:
        """The next field section (the message's head); None if the stream ended cleanly
        before any."""
        while True:
            try:
                frame = await self.frames.next()
            except H3Error as exc:
                if exc.code == H3ErrorCode.H3_EXCESSIVE_LOAD:
                    raise FieldSectionTooLarge(exc.code, exc.reason) from exc
                raise
            if frame is None:
                return None
            frame_type, payload = frame
            if not self.h3.check_request_frame(frame_type):
                continue
            if frame_type == FrameType.DATA:
                raise H3Error(H3ErrorCode.H3_FRAME_UNEXPECTED, "DATA before HEADERS")
            return await self._decode(payload)

    def start_body(self, fields: Headers, bodiless: bool = False) -> None:
        """The head was ``fields``; ``bodiless``: a response to HEAD, or a 204/304, whose
        content-length describes no body here (RFC 9110 section 8.6)."""
        length = content_length(fields)
        self.expected_length = 0 if bodiless else length

    async def body(self) -> AsyncIterator[bytes]:
        """The DATA payload in pieces; checks content-length at the end, reads trailers."""
        frames = self.frames
        while (frame := await frames.next()) is not None:
            frame_type, payload = frame
            if not self.h3.check_request_frame(frame_type):
                continue
            if self.trailers_seen:
                raise H3Error(H3ErrorCode.H3_FRAME_UNEXPECTED, "frame after trailers")
            if frame_type == FrameType.HEADERS:
                self.trailers = validate_trailers(await self._decode(payload))
                self.trailers_seen = True
                continue
            self.received += len(payload)
            if self.expected_length is not None and self.received > self.expected_length:
                raise H3StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "body over content-length")
            if payload:
                yield payload
        if self.expected_length is not None and self.received != self.expected_length:
            raise H3StreamError(H3ErrorCode.H3_MESSAGE_ERROR, "body under content-length")
        self.done = True


class Body:
    """A message body arriving: ``async for chunk in body`` or ``await body.read()``. Errors
    the owner translates (a reset stream, a malformed message) are raised from here."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.consumed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        self.consumed = True
        async for chunk in self._chunks:
            yield chunk

    async def read(self) -> bytes:
        """The whole body."""
        return b"".join([chunk async for chunk in self])


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover (makes this an async generator)


EMPTY_BODY_CHUNKS = _no_body


@dataclass
class Request:
    """An HTTP request a server handler receives."""

    method: str
    path: str
    authority: str = ""
    scheme: str = "https"
    headers: HeaderList = field(default_factory=list)
    body: Body = field(default_factory=lambda: Body(_no_body()))
    protocol: str | None = None  # extended CONNECT's :protocol
    stream_id: int = 0
    client: tuple[str, int] | None = None

    def header(self, name: str) -> str | None:
        return header(self.headers, name)


@dataclass
class Response:
    """An HTTP response: what a handler returns, and what :func:`quicish.h3.request`
    returns (its body then ``bytes``). A handler's body may be an async iterable of bytes
    (streamed as it comes; no content-length is added for it)."""

    status: int = 200
    headers: HeadersLike = field(default_factory=list)
    body: bytes | AsyncIterable[bytes] = b""

    def header(self, name: str) -> str | None:
        return header(list(_items(self.headers)), name)


def _items(headers: HeadersLike) -> Iterable[tuple[str, str]]:
    return headers.items() if isinstance(headers, Mapping) else headers


@dataclass
class StreamingResponse:
    """A response whose body is read as it arrives (``quicish.h3`` client's ``stream``)."""

    status: int
    headers: HeaderList
    body: Body

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    async def read(self) -> bytes:
        return await self.body.read()

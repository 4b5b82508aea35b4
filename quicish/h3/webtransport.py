"""WebTransport over HTTP/3 (draft-ietf-webtrans-http3-02, the revision Chromium speaks),
server side: sessions opened by extended CONNECT (RFC 9220) with ``:protocol
webtransport``, their bidirectional and unidirectional streams, HTTP datagrams (RFC 9297)
and session close (CLOSE_WEBTRANSPORT_SESSION capsule)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from ..aio.streams import QuicStreamReader, QuicStreamWriter
from ..errors import QuicError
from .connection import H3Connection
from .frames import FrameReader, FrameType, data_frame_header, decode_varint, encode_varint
from .messages import Request

logger = logging.getLogger("quicish.h3")

WT_BIDI_SIGNAL = 0x41  # first varint of a WebTransport bidirectional stream
WT_UNI_STREAM = 0x54  # unidirectional stream type
CLOSE_SESSION_CAPSULE = 0x2843
MAX_PENDING = 64  # streams or datagrams held for a session not accepted yet
T = TypeVar("T")
SessionHandler = Callable[["WebTransportSession"], Awaitable[None]]


class WebTransportReader:
    """The receiving half of a WebTransport stream (the bytes after its header)."""

    def __init__(self, reader: QuicStreamReader, leftover: bytes) -> None:
        self._reader = reader
        self._leftover = leftover
        self.stream_id = reader.stream_id

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all until FIN with -1); b"" at the end."""
        if self._leftover:
            if n < 0:
                data, self._leftover = self._leftover, b""
                return data + await self._reader.read()
            data, self._leftover = self._leftover[:n], self._leftover[n:]
            return data
        return await self._reader.read(n)

    def at_eof(self) -> bool:
        return not self._leftover and self._reader.at_eof()

    def stop_sending(self, error_code: int = 0) -> None:
        self._reader.stop_sending(error_code)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.read(1 << 16):
            yield chunk


Stream = tuple[WebTransportReader, QuicStreamWriter]


class WebTransportSession:
    """One WebTransport session (its id is the CONNECT stream's)."""

    def __init__(
        self, h3: H3Connection, request: Request, reader: QuicStreamReader, writer: QuicStreamWriter
    ) -> None:
        self.h3 = h3
        self.request = request
        self.session_id = writer.stream_id
        self._connect_reader = reader
        self._connect_writer = writer
        self._streams: asyncio.Queue[Stream] = asyncio.Queue()
        self._uni_streams: asyncio.Queue[WebTransportReader] = asyncio.Queue()
        self._datagrams: asyncio.Queue[bytes] = asyncio.Queue(MAX_PENDING * 16)
        self._closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._prefix = encode_varint(self.session_id // 4)
        self.capsule_task: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return self.request.path

    async def accept_stream(self) -> Stream:
        """The next bidirectional stream the peer opened."""
        return await self._next(self._streams)

    async def accept_uni_stream(self) -> WebTransportReader:
        """The next unidirectional stream the peer opened."""
        return await self._next(self._uni_streams)

    async def _next(self, queue: asyncio.Queue[T]) -> T:
        """The next item of ``queue``; ConnectionError once the session has ended."""
        getter = asyncio.ensure_future(queue.get())
        waiting: set[asyncio.Future[Any]] = {getter, self._closed}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        raise ConnectionError(f"WebTransport session closed: {self._closed.result()}")

    async def open_stream(self) -> Stream:
        reader, writer = await self.h3.quic.open_stream()
        writer.write(encode_varint(WT_BIDI_SIGNAL) + encode_varint(self.session_id))
        return WebTransportReader(reader, b""), writer

    async def open_uni_stream(self) -> QuicStreamWriter:
        _, writer = await self.h3.quic.open_stream(unidirectional=True)
        writer.write(encode_varint(WT_UNI_STREAM) + encode_varint(self.session_id))
        return writer

    def send_datagram(self, data: bytes) -> None:
        """An HTTP datagram of this session (dropped if it does not fit a packet)."""
        self.h3.quic.send_datagram(self._prefix + data)

    async def receive_datagram(self) -> bytes:
        """The next datagram of this session (its payload)."""
        return await self._next(self._datagrams)

    def close(self, code: int = 0, reason: str = "") -> None:
        """End the session: CLOSE_WEBTRANSPORT_SESSION with ``code`` and ``reason`` (a capsule
        in a DATA frame of the CONNECT stream, RFC 9297), then FIN."""
        if self._closed.done():
            return
        payload = struct.pack("!I", code) + reason.encode()[:1024]
        capsule = encode_varint(CLOSE_SESSION_CAPSULE) + encode_varint(len(payload)) + payload
        with contextlib.suppress(QuicError):
            self._connect_writer.write(data_frame_header(len(capsule)) + capsule)
            self._connect_writer.write_eof()
        self._set_closed(code, reason)

    async def wait_closed(self) -> tuple[int, str]:
        """(code, reason) once the session ended (either side)."""
        return await asyncio.shield(self._closed)

    def _set_closed(self, code: int, reason: str) -> None:
        if not self._closed.done():
            self._closed.set_result((code, reason))

    # ---- fed by the hub ----
    def deliver_stream(self, reader: WebTransportReader, writer: QuicStreamWriter | None) -> None:
        if writer is None:
            self._uni_streams.put_nowait(reader)
        else:
            self._streams.put_nowait((reader, writer))

    def deliver_datagram(self, data: bytes) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # an unread backlog: drop, as UDP would
            self._datagrams.put_nowait(data)

    async def read_capsules(self, frames: FrameReader | None = None) -> None:
        """Read the CONNECT stream (capsules in DATA frames) until the peer closes the
        session: a CLOSE_WEBTRANSPORT_SESSION capsule, FIN or a reset."""
        frames = frames or FrameReader(self._connect_reader.read, 1 << 16)
        capsules = bytearray()
        code, reason = 0, ""
        try:
            while (frame := await frames.next()) is not None:
                if frame[0] == FrameType.DATA:
                    capsules += frame[1]
                while (capsule := _capsule(capsules)) is not None:
                    kind, value = capsule
                    if kind == CLOSE_SESSION_CAPSULE and len(value) >= 4:
                        code = struct.unpack("!I", value[:4])[0]
                        reason = value[4:].decode("utf-8", "replace")
        except Exception as exc:  # a reset, the connection closing, a malformed frame
            logger.debug("WebTransport session %d: %s", self.session_id, exc)
        self._set_closed(code, reason)
        with contextlib.suppress(QuicError):
            if not self._connect_writer.is_closing():
                self._connect_writer.write_eof()


def _capsule(buffer: bytearray) -> tuple[int, bytes] | None:
    """The next whole capsule (type, value) taken off ``buffer``, or None."""
    kind = decode_varint(buffer, 0)
    length = decode_varint(buffer, kind[1]) if kind is not None else None
    if kind is None or length is None or len(buffer) < length[1] + length[0]:
        return None
    value = bytes(buffer[length[1] : length[1] + length[0]])
    del buffer[: length[1] + length[0]]
    return kind[0], value


class WebTransportHub:
    """The WebTransport sessions of one HTTP/3 connection: routes their streams and
    datagrams, holds what arrives before its session is accepted."""

    def __init__(self, h3: H3Connection, on_session: SessionHandler | None = None) -> None:
        self.h3 = h3
        self.on_session = on_session
        self.sessions: dict[int, WebTransportSession] = {}
        self._pending: dict[int, list[tuple[WebTransportReader, QuicStreamWriter | None]]] = {}
        h3.uni_stream_handlers[WT_UNI_STREAM] = self._uni_stream
        h3.quic.spawn(self._pump_datagrams())

    async def serve_session(
        self,
        request: Request,
        reader: QuicStreamReader,
        writer: QuicStreamWriter,
        frames: FrameReader | None = None,
    ) -> None:
        """Accept a session (200) and run ``on_session`` while it lasts."""
        assert self.on_session is not None
        self.h3.send_headers(
            writer, [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")]
        )
        session = self.add_session(request, reader, writer, frames)
        try:
            await self.on_session(session)
            await session.wait_closed()
        except (ConnectionError, QuicError) as exc:  # the session or connection ended
            logger.info("WebTransport session %d: %s", session.session_id, exc)
        finally:
            session.close()
            self.remove_session(session)

    def add_session(
        self,
        request: Request,
        reader: QuicStreamReader,
        writer: QuicStreamWriter,
        frames: FrameReader | None = None,
    ) -> WebTransportSession:
        """A session on the CONNECT stream ``reader``/``writer`` (``frames``: the reader of
        that stream so far): registered, given what arrived for it, its capsules read."""
        session = WebTransportSession(self.h3, request, reader, writer)
        self.sessions[session.session_id] = session
        for stream_reader, stream_writer in self._pending.pop(session.session_id, []):
            session.deliver_stream(stream_reader, stream_writer)
        session.capsule_task = asyncio.ensure_future(session.read_capsules(frames))
        return session

    def remove_session(self, session: WebTransportSession) -> None:
        if session.capsule_task is not None:
            session.capsule_task.cancel()
        self.sessions.pop(session.session_id, None)

    async def bidi_stream(
        self, frames: FrameReader, reader: QuicStreamReader, writer: QuicStreamWriter
    ) -> None:
        """A request stream that began with WT_BIDI_SIGNAL (already consumed)."""
        session_id = await frames.read_varint()
        if session_id is None:
            return
        self._route(session_id, WebTransportReader(reader, _take(frames)), writer)

    async def _uni_stream(self, reader: QuicStreamReader, leftover: bytes) -> None:
        buffered = bytearray(leftover)
        while (parsed := decode_varint(buffered, 0)) is None:
            more = await reader.read(8)
            if not more:
                return
            buffered += more
        session_id, end = parsed
        self._route(session_id, WebTransportReader(reader, bytes(buffered[end:])), None)

    def _route(
        self, session_id: int, reader: WebTransportReader, writer: QuicStreamWriter | None
    ) -> None:
        session = self.sessions.get(session_id)
        if session is not None:
            session.deliver_stream(reader, writer)
            return
        pending = self._pending.setdefault(session_id, [])
        if len(pending) < MAX_PENDING:
            pending.append((reader, writer))
        else:
            reader.stop_sending(0x10B)  # H3_REQUEST_REJECTED
            if writer is not None:
                writer.reset(0x10B)

    async def _pump_datagrams(self) -> None:
        quic = self.h3.quic
        with contextlib.suppress(QuicError):
            while True:
                data = await quic.receive_datagram()
                parsed = decode_varint(data, 0)
                if parsed is None:
                    continue  # RFC 9297: malformed, dropped
                session = self.sessions.get(parsed[0] * 4)
                if session is not None:
                    session.deliver_datagram(data[parsed[1] :])


def _take(frames: FrameReader) -> bytes:
    data = bytes(frames.decoder.buffer)
    frames.decoder.buffer.clear()
    return data

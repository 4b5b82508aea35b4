"""One HTTP/3 connection over a :class:`quicish.QuicConnection`: our control and QPACK
streams, the peer's unidirectional streams (RFC 9114 section 6.2), SETTINGS, GOAWAY, and
the frame rules of request streams. Client and server share it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..aio.connection import QuicConnection
from ..aio.streams import QuicStreamReader, QuicStreamWriter
from ..errors import ConnectionClosedError, QuicError, StreamResetError
from .errors import H3Error, H3ErrorCode, H3StreamError
from .frames import (
    HTTP2_ONLY_FRAMES,
    FrameReader,
    FrameType,
    Setting,
    data_frame_header,
    encode_frame,
    encode_settings,
    encode_varint,
    parse_settings,
    parse_single_varint,
)
from .headers import field_section_size
from .qpack import Headers, Qpack

logger = logging.getLogger("quicish.h3")

STREAM_CONTROL = 0x00
STREAM_PUSH = 0x01
STREAM_QPACK_ENCODER = 0x02
STREAM_QPACK_DECODER = 0x03
_CRITICAL = {
    STREAM_CONTROL: "control",
    STREAM_QPACK_ENCODER: "QPACK encoder",
    STREAM_QPACK_DECODER: "QPACK decoder",
}
MAX_CONTROL_FRAME = 16 << 10  # bytes of one control stream frame (SETTINGS, GOAWAY, ...)
DATA_CHUNK = 64 << 10  # bytes per DATA frame we send

RequestHandler = Callable[[QuicStreamReader, QuicStreamWriter], Awaitable[None]]
#: An extension's unidirectional stream (WebTransport's): the reader, and the bytes already
#: read past the stream type.
UniStreamHandler = Callable[[QuicStreamReader, bytes], Awaitable[None]]


@dataclass(frozen=True)
class H3Settings:
    """What we advertise in SETTINGS. ``webtransport`` adds the settings WebTransport over
    HTTP/3 needs (extended CONNECT, HTTP datagrams, WebTransport draft-02 and later)."""

    max_field_section_size: int = 64 << 10
    qpack_max_table_capacity: int = 4096
    qpack_blocked_streams: int = 16
    webtransport: bool = False

    def to_wire(self) -> dict[int, int]:
        settings = {
            Setting.QPACK_MAX_TABLE_CAPACITY: self.qpack_max_table_capacity,
            Setting.MAX_FIELD_SECTION_SIZE: self.max_field_section_size,
            Setting.QPACK_BLOCKED_STREAMS: self.qpack_blocked_streams,
        }
        if self.webtransport:
            settings[Setting.ENABLE_CONNECT_PROTOCOL] = 1
            settings[Setting.H3_DATAGRAM] = 1
            settings[Setting.ENABLE_WEBTRANSPORT] = 1
            settings[Setting.WEBTRANSPORT_MAX_SESSIONS] = 16
        return {int(k): v for k, v in settings.items()}


class H3Connection:
    """The HTTP/3 state of one QUIC connection. ``await start()`` opens our streams, then
    ``run(on_request)`` reads the peer's streams until the connection ends."""

    def __init__(
        self, quic: QuicConnection, *, is_client: bool, settings: H3Settings | None = None
    ) -> None:
        self.quic = quic
        self.is_client = is_client
        self.settings = settings or H3Settings()
        self.qpack = Qpack(
            self.settings.qpack_max_table_capacity, self.settings.qpack_blocked_streams
        )
        self.peer_settings: dict[int, int] | None = None
        self.settings_received = asyncio.Event()
        self.goaway_received: int | None = None  # the peer's GOAWAY id
        self.goaway_sent: int | None = None
        self.error: H3Error | None = None  # the connection error we closed with
        self._peer_streams: dict[int, int] = {}  # critical stream type -> stream id
        self._control: QuicStreamWriter | None = None
        self._encoder: QuicStreamWriter | None = None
        self._decoder: QuicStreamWriter | None = None
        self._max_push_id = -1
        self._last_request = -1  # the server's largest request stream id accepted
        self.requests: set[asyncio.Task[None]] = set()  # the server's requests in progress
        #: Extension stream types (WebTransport's 0x54) and who reads them.
        self.uni_stream_handlers: dict[int, UniStreamHandler] = {}

    # ---- our streams -------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the control stream (SETTINGS first) and the QPACK encoder and decoder streams."""
        self._control = await self._open_uni(STREAM_CONTROL)
        self._control.write(encode_settings(self.settings.to_wire()))
        self._encoder = await self._open_uni(STREAM_QPACK_ENCODER)
        self._decoder = await self._open_uni(STREAM_QPACK_DECODER)
        self.flush_qpack()

    async def _open_uni(self, stream_type: int) -> QuicStreamWriter:
        _, writer = await self.quic.open_stream(unidirectional=True)
        writer.write(encode_varint(stream_type))
        return writer

    def flush_qpack(self) -> None:
        """Write what the QPACK encoder and decoder produced to their streams."""
        qpack = self.qpack
        if qpack.encoder_out and self._encoder is not None:
            self._encoder.write(bytes(qpack.encoder_out))
            qpack.encoder_out.clear()
        if qpack.decoder_out and self._decoder is not None:
            self._decoder.write(bytes(qpack.decoder_out))
            qpack.decoder_out.clear()

    def send_headers(self, writer: QuicStreamWriter, headers: Headers, end: bool = False) -> None:
        """A HEADERS frame on a request stream (and FIN with ``end``)."""
        limit = (self.peer_settings or {}).get(Setting.MAX_FIELD_SECTION_SIZE)
        if limit is not None and field_section_size(headers) > limit:
            raise H3StreamError(H3ErrorCode.H3_EXCESSIVE_LOAD, "over the peer's field limit")
        block = self.qpack.encode(writer.stream_id, headers)
        self.flush_qpack()  # the encoder's instructions go first
        writer.write(encode_frame(FrameType.HEADERS, block))
        if end:
            writer.write_eof()

    async def send_data(self, writer: QuicStreamWriter, data: bytes) -> None:
        """DATA frames of at most DATA_CHUNK bytes, with backpressure."""
        view = memoryview(data)
        for start in range(0, len(data), DATA_CHUNK):
            piece = view[start : start + DATA_CHUNK]
            writer.write(data_frame_header(len(piece)))
            writer.write(piece)
            await writer.drain()

    def send_goaway(self) -> None:
        """GOAWAY (RFC 9114 section 5.2): a server names the first request it will not
        process; a client sends 0 (it accepts no pushes)."""
        if self._control is None or self.quic_closed:
            return
        goaway = 0 if self.is_client or self._last_request < 0 else self._last_request + 4
        if self.goaway_sent is not None and goaway >= self.goaway_sent:
            return
        self.goaway_sent = goaway
        self._control.write(encode_frame(FrameType.GOAWAY, encode_varint(goaway)))

    async def control_delivered(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` s) until the peer acknowledged all of our control stream
        (a GOAWAY before the connection closes); whether it did."""
        control = self._control
        deadline = asyncio.get_running_loop().time() + timeout
        while control is not None and control.bytes_acked < control.bytes_written:
            if self.quic_closed or asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    @property
    def quic_closed(self) -> bool:
        return self.quic.close_error is not None or self.error is not None

    def fail(self, exc: H3Error) -> None:
        """Close the connection with the error's code (a connection error)."""
        if self.error is None:
            self.error = exc
            logger.info("h3: closing the connection: %s", exc)
        self.quic.close(int(exc.code), exc.reason)

    def close(self) -> None:
        """Close cleanly: H3_NO_ERROR."""
        self.quic.close(H3ErrorCode.H3_NO_ERROR, "")

    def reset_stream(
        self, reader: QuicStreamReader | None, writer: QuicStreamWriter, code: int
    ) -> None:
        """A stream error: reset the request stream both ways with ``code``."""
        if not writer.is_closing():
            writer.reset(code)
        if reader is not None and not reader.at_eof():
            reader.stop_sending(code)
        self.qpack.cancel_stream(writer.stream_id)
        self.flush_qpack()

    # ---- the peer's streams ------------------------------------------------------------------
    async def run(self, on_request: RequestHandler | None = None) -> None:
        """Accept the peer's streams until the connection ends: unidirectional ones are read
        here, bidirectional ones go to ``on_request`` (one task each; a client passes one
        only for WebTransport streams, which a server may open)."""
        quic = self.quic
        try:
            while True:
                reader, writer = await quic.accept_stream()
                sid = writer.stream_id
                if sid & 0x2:
                    quic.spawn(self._uni_stream(reader))
                elif on_request is None:
                    self.fail(H3Error(H3ErrorCode.H3_STREAM_CREATION_ERROR, "bidi from server"))
                elif self.goaway_sent is not None and sid >= self.goaway_sent:
                    self.reset_stream(reader, writer, H3ErrorCode.H3_REQUEST_REJECTED)
                else:
                    self._last_request = max(self._last_request, sid)
                    task = asyncio.ensure_future(on_request(reader, writer))
                    self.requests.add(task)
                    task.add_done_callback(self.requests.discard)
        except QuicError:
            pass
        finally:
            self.qpack.fail_blocked(quic.close_error or ConnectionClosedError(0, "closed"))

    async def _uni_stream(self, reader: QuicStreamReader) -> None:
        frames = FrameReader(reader.read, MAX_CONTROL_FRAME)
        kind: int | None = None
        try:
            kind = await frames.read_varint()
            if kind is None:
                return  # ended before its type: nothing to do (RFC 9114 section 6.2)
            if kind == STREAM_PUSH:
                if self.is_client:
                    raise H3Error(H3ErrorCode.H3_ID_ERROR, "push stream without MAX_PUSH_ID")
                raise H3Error(H3ErrorCode.H3_STREAM_CREATION_ERROR, "push stream from a client")
            extension = self.uni_stream_handlers.get(kind)
            if extension is not None:
                leftover = bytes(frames.decoder.buffer)
                frames.decoder.buffer.clear()
                await extension(reader, leftover)
                return
            if kind not in _CRITICAL:
                reader.stop_sending(H3ErrorCode.H3_STREAM_CREATION_ERROR)  # unknown or grease
                return
            if kind in self._peer_streams:
                raise H3Error(
                    H3ErrorCode.H3_STREAM_CREATION_ERROR, f"second {_CRITICAL[kind]} stream"
                )
            self._peer_streams[kind] = reader.stream_id
            if kind == STREAM_CONTROL:
                await self._control_stream(frames)
            else:
                await self._qpack_stream(kind, frames, reader)
        except H3Error as exc:
            self.fail(exc)
        except StreamResetError:
            if kind in _CRITICAL:
                self.fail(self._critical_closed(kind))
        except QuicError:
            pass  # the connection ended

    @staticmethod
    def _critical_closed(kind: int | None) -> H3Error:
        name = _CRITICAL.get(kind or 0, "critical")
        return H3Error(H3ErrorCode.H3_CLOSED_CRITICAL_STREAM, f"{name} stream closed")

    async def _qpack_stream(self, kind: int, frames: FrameReader, reader: QuicStreamReader) -> None:
        feed = (
            self.qpack.feed_encoder_stream
            if kind == STREAM_QPACK_ENCODER
            else self.qpack.feed_decoder_stream
        )
        pending = bytes(frames.decoder.buffer)
        frames.decoder.buffer.clear()
        while True:
            if pending:
                feed(pending)
                self.flush_qpack()  # Insert Count Increments for what was unblocked
            pending = await reader.read(1 << 16)
            if not pending:
                raise self._critical_closed(kind)

    async def _control_stream(self, frames: FrameReader) -> None:
        first = await frames.next()
        if first is None:
            raise self._critical_closed(STREAM_CONTROL)
        if first[0] != FrameType.SETTINGS:
            raise H3Error(H3ErrorCode.H3_MISSING_SETTINGS, f"first frame {first[0]:#x}")
        self._apply_settings(parse_settings(first[1]))
        while (frame := await frames.next()) is not None:
            self._control_frame(*frame)
        raise self._critical_closed(STREAM_CONTROL)

    def _apply_settings(self, settings: dict[int, int]) -> None:
        self.peer_settings = settings
        self.qpack.apply_peer_settings(
            settings.get(Setting.QPACK_MAX_TABLE_CAPACITY, 0),
            settings.get(Setting.QPACK_BLOCKED_STREAMS, 0),
        )
        self.flush_qpack()
        self.settings_received.set()

    def _control_frame(self, frame_type: int, payload: bytes) -> None:
        if frame_type == FrameType.GOAWAY:
            goaway = parse_single_varint(payload, "GOAWAY")
            if self.is_client and goaway % 4:
                raise H3Error(H3ErrorCode.H3_ID_ERROR, "GOAWAY names no request stream")
            if self.goaway_received is not None and goaway > self.goaway_received:
                raise H3Error(H3ErrorCode.H3_ID_ERROR, "GOAWAY id increased")
            self.goaway_received = goaway
        elif frame_type == FrameType.MAX_PUSH_ID:
            push_id = parse_single_varint(payload, "MAX_PUSH_ID")
            if self.is_client:
                raise H3Error(H3ErrorCode.H3_FRAME_UNEXPECTED, "MAX_PUSH_ID from a server")
            if push_id < self._max_push_id:
                raise H3Error(H3ErrorCode.H3_ID_ERROR, "MAX_PUSH_ID decreased")
            self._max_push_id = push_id  # we never push
        elif frame_type == FrameType.CANCEL_PUSH:
            parse_single_varint(payload, "CANCEL_PUSH")
            raise H3Error(H3ErrorCode.H3_ID_ERROR, "CANCEL_PUSH of a push never promised")
        elif frame_type in (FrameType.DATA, FrameType.HEADERS, FrameType.PUSH_PROMISE):
            raise H3Error(H3ErrorCode.H3_FRAME_UNEXPECTED, f"frame {frame_type:#x} on control")
        elif frame_type == FrameType.SETTINGS:
            raise H3Error(H3ErrorCode.H3_FRAME_UNEXPECTED, "second SETTINGS")
        elif frame_type in HTTP2_ONLY_FRAMES:
            raise H3Error(H3ErrorCode.H3_FRAME_UNEXPECTED, f"HTTP/2 frame {frame_type:#x}")
        # any other type (grease included) is ignored (RFC 9114 section 9)

    def check_request_frame(self, frame_type: int) -> bool:
        """Whether a frame on a request stream is one of its own (DATA, HEADERS); raises for
        the ones that may not appear there; False for types to ignore."""
        if frame_type in (FrameType.DATA, FrameType.HEADERS):
            return True
        if frame_type == FrameType.PUSH_PROMISE and self.is_client:
            raise H3Error(H3ErrorCode.H3_ID_ERROR, "PUSH_PROMISE without MAX_PUSH_ID")
        if frame_type in FrameType.__members__.values() or frame_type in HTTP2_ONLY_FRAMES:
            raise H3Error(H3ErrorCode.H3_FRAME_UNEXPECTED, f"frame {frame_type:#x} on a request")
        return False

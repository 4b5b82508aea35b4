"""HTTP/3 frames (RFC 9114 section 7): types, encoding, SETTINGS, and an incremental
decoder that reads frames off a byte stream without copying DATA payloads twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import IntEnum

from .errors import H3Error, H3ErrorCode

MAX_VARINT = (1 << 62) - 1


class FrameType(IntEnum):
    DATA = 0x0
    HEADERS = 0x1
    CANCEL_PUSH = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    GOAWAY = 0x7
    MAX_PUSH_ID = 0xD


HTTP2_ONLY_FRAMES = frozenset((0x2, 0x6, 0x8, 0x9))  # PRIORITY, PING, WINDOW_UPDATE, CONTINUATION


class Setting(IntEnum):
    QPACK_MAX_TABLE_CAPACITY = 0x1
    MAX_FIELD_SECTION_SIZE = 0x6
    QPACK_BLOCKED_STREAMS = 0x7
    ENABLE_CONNECT_PROTOCOL = 0x8  # RFC 9220
    H3_DATAGRAM = 0x33  # RFC 9297
    WEBTRANSPORT_MAX_SESSIONS = 0xC671706A  # draft-ietf-webtrans-http3 (-07 and later)
    ENABLE_WEBTRANSPORT = 0x2B603742  # draft-ietf-webtrans-http3-02 (what Chromium speaks)


HTTP2_ONLY_SETTINGS = frozenset((0x2, 0x3, 0x4, 0x5))


def is_reserved(value: int) -> bool:
    """A grease value (0x1f * N + 0x21), for frame, stream and setting types."""
    return value >= 0x21 and (value - 0x21) % 0x1F == 0


def encode_varint(value: int) -> bytes:
    """RFC 9000 section 16 variable-length integer."""
    if value < 0x40:
        return bytes((value,))
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 0x40000000:
        return (value | 0x80000000).to_bytes(4, "big")
    if value <= MAX_VARINT:
        return (value | 0xC000000000000000).to_bytes(8, "big")
    raise ValueError(f"varint out of range: {value}")


def decode_varint(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(value, next position), or None when ``data`` ends inside the integer."""
    if pos >= len(data):
        return None
    first = data[pos]
    size = 1 << (first >> 6)
    if pos + size > len(data):
        return None
    value = first & 0x3F
    for i in range(pos + 1, pos + size):
        value = (value << 8) | data[i]
    return value, pos + size


def encode_frame(frame_type: int, payload: bytes) -> bytes:
    return encode_varint(frame_type) + encode_varint(len(payload)) + payload


def data_frame_header(length: int) -> bytes:
    return encode_varint(FrameType.DATA) + encode_varint(length)


def encode_settings(settings: dict[int, int]) -> bytes:
    """A SETTINGS frame."""
    payload = b"".join(encode_varint(k) + encode_varint(v) for k, v in settings.items())
    return encode_frame(FrameType.SETTINGS, payload)


def parse_settings(payload: bytes) -> dict[int, int]:
    """SETTINGS payload -> {identifier: value}; H3_SETTINGS_ERROR for a duplicate or an
    HTTP/2 setting, H3_FRAME_ERROR for a truncated pair."""
    settings: dict[int, int] = {}
    pos = 0
    while pos < len(payload):
        key = decode_varint(payload, pos)
        value = decode_varint(payload, key[1]) if key is not None else None
        if key is None or value is None:
            raise H3Error(H3ErrorCode.H3_FRAME_ERROR, "truncated SETTINGS")
        if key[0] in settings:
            raise H3Error(H3ErrorCode.H3_SETTINGS_ERROR, f"setting {key[0]:#x} twice")
        if key[0] in HTTP2_ONLY_SETTINGS:
            raise H3Error(H3ErrorCode.H3_SETTINGS_ERROR, f"HTTP/2 setting {key[0]:#x}")
        settings[key[0]] = value[0]
        pos = value[1]
    for flag in (Setting.ENABLE_CONNECT_PROTOCOL, Setting.H3_DATAGRAM):
        if settings.get(flag, 0) > 1:
            raise H3Error(H3ErrorCode.H3_SETTINGS_ERROR, f"{flag.name} must be 0 or 1")
    return settings


def parse_single_varint(payload: bytes, name: str) -> int:
    """The payload of GOAWAY, MAX_PUSH_ID, CANCEL_PUSH: exactly one varint."""
    parsed = decode_varint(payload, 0)
    if parsed is None or parsed[1] != len(payload):
        raise H3Error(H3ErrorCode.H3_FRAME_ERROR, f"malformed {name}")
    return parsed[0]


KNOWN_FRAMES = frozenset(FrameType)


class FrameDecoder:
    """Frames from a byte stream fed in pieces (sans-IO: used by :class:`FrameReader` and the
    fuzz target). ``max_payload`` bounds the buffered payload of the known frames other than
    DATA. Unknown and reserved frame types are skipped as their bytes arrive, whatever their
    size (RFC 9114 section 9); HTTP/2-only types come out with an empty payload."""

    def __init__(self, max_payload: int = 1 << 16) -> None:
        self.buffer = bytearray()
        self.max_payload = max_payload
        self.data_left = 0  # bytes of the current DATA frame not yet returned
        self.skip_left = 0  # bytes of an ignored frame not yet discarded

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next(self) -> tuple[int, bytes] | None:
        """The next frame ``(type, payload)``, or None when more bytes are needed. A DATA frame
        comes out in pieces, each as ``(DATA, piece)``, as its bytes arrive."""
        buf = self.buffer
        while True:
            if self.skip_left:
                skipped = min(len(buf), self.skip_left)
                del buf[:skipped]
                self.skip_left -= skipped
                if self.skip_left:
                    return None
            if self.data_left:
                if not buf:
                    return None
                piece = bytes(buf[: self.data_left])
                del buf[: len(piece)]
                self.data_left -= len(piece)
                return FrameType.DATA, piece
            head = decode_varint(buf, 0)
            length = decode_varint(buf, head[1]) if head is not None else None
            if head is None or length is None:
                return None
            frame_type, (size, start) = head[0], length
            if frame_type == FrameType.DATA:
                del buf[:start]
                self.data_left = size
                if size == 0:
                    return FrameType.DATA, b""
                continue
            if frame_type not in KNOWN_FRAMES:
                del buf[:start]
                self.skip_left = size
                if frame_type in HTTP2_ONLY_FRAMES:
                    return frame_type, b""  # an error wherever it appears
                continue
            if size > self.max_payload:
                code = H3ErrorCode.H3_EXCESSIVE_LOAD
                raise H3Error(code, f"frame {frame_type:#x} of {size} bytes is over the limit")
            if len(buf) < start + size:
                return None
            payload = bytes(buf[start : start + size])
            del buf[: start + size]
            return frame_type, payload

    @property
    def mid_frame(self) -> bool:
        """Bytes of an unfinished frame are buffered (a stream ending here is truncated)."""
        return bool(self.buffer) or self.data_left > 0 or self.skip_left > 0


class FrameReader:
    """Frames off an asyncio stream reader (anything with ``async read(n)``)."""

    def __init__(self, read: Callable[[int], Awaitable[bytes]], max_payload: int) -> None:
        self._read = read
        self.decoder = FrameDecoder(max_payload)
        self.eof = False

    async def next(self) -> tuple[int, bytes] | None:
        """The next frame (DATA in pieces); None at a clean end of the stream. A stream that
        ends inside a frame is H3_FRAME_ERROR (RFC 9114 section 7.1)."""
        decoder = self.decoder
        while True:
            frame = decoder.next()
            if frame is not None:
                return frame
            if self.eof:
                if decoder.mid_frame:
                    raise H3Error(H3ErrorCode.H3_FRAME_ERROR, "stream ended inside a frame")
                return None
            chunk = await self._read(1 << 18)
            if chunk:
                decoder.feed(chunk)
            else:
                self.eof = True

    async def read_varint(self, consume: bool = True) -> int | None:
        """One varint (a unidirectional stream's type); None if the stream ends first.
        ``consume=False`` leaves it in the buffer (a peek)."""
        decoder = self.decoder
        while True:
            parsed = decode_varint(decoder.buffer, 0)
            if parsed is not None:
                if consume:
                    del decoder.buffer[: parsed[1]]
                return parsed[0]
            if self.eof:
                return None
            chunk = await self._read(1 << 16)
            if chunk:
                decoder.feed(chunk)
            else:
                self.eof = True

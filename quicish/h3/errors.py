"""HTTP/3 (RFC 9114 section 8.1) and QPACK (RFC 9204 section 6) error codes, and the two
kinds of error: one that closes the connection and one that resets a request stream."""

from __future__ import annotations

from enum import IntEnum


class H3ErrorCode(IntEnum):
    H3_NO_ERROR = 0x100
    H3_GENERAL_PROTOCOL_ERROR = 0x101
    H3_INTERNAL_ERROR = 0x102
    H3_STREAM_CREATION_ERROR = 0x103
    H3_CLOSED_CRITICAL_STREAM = 0x104
    H3_FRAME_UNEXPECTED = 0x105
    H3_FRAME_ERROR = 0x106
    H3_EXCESSIVE_LOAD = 0x107
    H3_ID_ERROR = 0x108
    H3_SETTINGS_ERROR = 0x109
    H3_MISSING_SETTINGS = 0x10A
    H3_REQUEST_REJECTED = 0x10B
    H3_REQUEST_CANCELLED = 0x10C
    H3_REQUEST_INCOMPLETE = 0x10D
    H3_MESSAGE_ERROR = 0x10E
    H3_CONNECT_ERROR = 0x10F
    H3_VERSION_FALLBACK = 0x110
    QPACK_DECOMPRESSION_FAILED = 0x200
    QPACK_ENCODER_STREAM_ERROR = 0x201
    QPACK_DECODER_STREAM_ERROR = 0x202


class H3Error(Exception):
    """A connection error: the whole connection closes with ``code``."""

    def __init__(self, code: H3ErrorCode, reason: str = "") -> None:
        super().__init__(f"{code.name}: {reason}" if reason else code.name)
        self.code = code
        self.reason = reason


class H3StreamError(H3Error):
    """A stream error: only the request stream is reset (and stopped) with ``code``."""


class H3ResponseError(Exception):
    """A request failed: the peer reset its stream with ``code`` or the connection closed."""

    def __init__(self, code: int, reason: str = "") -> None:
        try:
            name = H3ErrorCode(code).name
        except ValueError:
            name = hex(code)
        super().__init__(f"{name}: {reason}" if reason else name)
        self.code = code

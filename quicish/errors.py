"""Exceptions and QUIC error codes (RFC 9000 section 20, RFC 9001 section 4.8)."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """QUIC transport error codes."""

    NO_ERROR = 0x0
    INTERNAL_ERROR = 0x1
    CONNECTION_REFUSED = 0x2
    FLOW_CONTROL_ERROR = 0x3
    STREAM_LIMIT_ERROR = 0x4
    STREAM_STATE_ERROR = 0x5
    FINAL_SIZE_ERROR = 0x6
    FRAME_ENCODING_ERROR = 0x7
    TRANSPORT_PARAMETER_ERROR = 0x8
    CONNECTION_ID_LIMIT_ERROR = 0x9
    PROTOCOL_VIOLATION = 0xA
    INVALID_TOKEN = 0xB
    APPLICATION_ERROR = 0xC
    CRYPTO_BUFFER_EXCEEDED = 0xD
    KEY_UPDATE_ERROR = 0xE
    AEAD_LIMIT_REACHED = 0xF
    NO_VIABLE_PATH = 0x10
    CRYPTO_ERROR = 0x100  # 0x100 + TLS alert


class QuicError(Exception):
    """Base class of every exception quicish raises."""


class ProtocolError(QuicError):
    """A peer broke the protocol; closes the connection with ``code``.

    ``frame_type`` names the frame that triggered it, when known (it goes into
    the CONNECTION_CLOSE frame).
    """

    def __init__(self, code: int, reason: str = "", frame_type: int | None = None) -> None:
        super().__init__(f"{_code_name(code)}: {reason}" if reason else _code_name(code))
        self.code = int(code)
        self.reason = reason
        self.frame_type = frame_type


class DecodeError(ProtocolError):
    """Malformed or truncated bytes from the network (FRAME_ENCODING_ERROR by default)."""

    def __init__(
        self,
        reason: str = "malformed input",
        code: int = ErrorCode.FRAME_ENCODING_ERROR,
        frame_type: int | None = None,
    ) -> None:
        super().__init__(code, reason, frame_type)


class CryptoError(ProtocolError):
    """A TLS failure: the QUIC code is 0x100 + the TLS alert number."""

    def __init__(self, alert: int, reason: str = "") -> None:
        super().__init__(ErrorCode.CRYPTO_ERROR + alert, reason)
        self.alert = alert


class CertificateError(CryptoError, ConnectionError):
    """The peer's certificate was rejected; ``reason`` says why in one line (unknown CA, name
    mismatch, expired, pin mismatch). ``connect()`` raises it; it is a ``ConnectionError``."""


class DecryptionError(QuicError):
    """A packet failed authentication; such packets are dropped, never fatal."""


class ConfigError(QuicError, ValueError):
    """Invalid configuration or arguments supplied by the application."""


class ConnectionStateError(QuicError):
    """The connection cannot do that now or in this role: a key update or a migration before
    the handshake is confirmed, a migration the server disabled, DATAGRAM frames the peer
    does not accept, a call meant for a fresh connection."""


class StreamError(QuicError):
    """Misuse of a stream by the application (wrong direction, closed, unknown id)."""


class StreamResetError(QuicError):
    """The peer reset the stream (RESET_STREAM) or asked us to stop (STOP_SENDING)."""

    def __init__(self, stream_id: int, error_code: int, reason: str = "reset by peer") -> None:
        super().__init__(f"stream {stream_id} {reason} with code {error_code}")
        self.stream_id = stream_id
        self.error_code = error_code


class ConnectionClosedError(QuicError, ConnectionError):
    """The connection is closed; carries the code and reason and who closed it. A
    ``ConnectionError`` (so an ``OSError``), as asyncio's own connection errors are."""

    def __init__(self, error_code: int = 0, reason: str = "", by_peer: bool = False) -> None:
        who = "peer" if by_peer else "local"
        super().__init__(f"connection closed by {who}: code {error_code:#x} {reason}".rstrip())
        self.error_code = error_code
        self.reason = reason
        self.by_peer = by_peer


class HandshakeTimeout(ConnectionClosedError, TimeoutError):
    """The handshake did not complete in time (``Config.handshake_timeout`` or
    ``connect(timeout=...)``): nothing answered, or the peer stopped answering. A
    ``TimeoutError`` as well as a ``ConnectionError``."""


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        if 0x100 <= code <= 0x1FF:
            return f"CRYPTO_ERROR({code - 0x100})"
        return f"ERROR({code:#x})"


# The reason phrase of every CONNECTION_CLOSE we send for a transport error: fixed per
# error code, so no exception text (which may quote the peer's bytes or our state) leaves.
_WIRE_REASONS: dict[int, str] = {
    int(c): c.name.lower().replace("_", " ") for c in ErrorCode if c != ErrorCode.CRYPTO_ERROR
}
_WIRE_REASONS[0x11] = "version negotiation error"  # RFC 9368
_CRYPTO_REASON = "crypto error"  # 0x100 + TLS alert: the code names the alert
_OTHER_REASON = "connection error"
WIRE_REASONS = frozenset({*_WIRE_REASONS.values(), _CRYPTO_REASON, _OTHER_REASON})


def wire_reason(code: int) -> str:
    """The reason phrase sent to the peer with a transport error ``code``."""
    phrase = _WIRE_REASONS.get(code)
    if phrase is not None:
        return phrase
    return _CRYPTO_REASON if 0x100 <= code <= 0x1FF else _OTHER_REASON

"""TLS alert numbers (RFC 8446 section 6) used as QUIC CRYPTO_ERROR codes (0x100 + alert)."""

from __future__ import annotations

from enum import IntEnum

from ..errors import CryptoError


class Alert(IntEnum):
    """TLS 1.3 alert descriptions."""

    CLOSE_NOTIFY = 0
    UNEXPECTED_MESSAGE = 10
    BAD_RECORD_MAC = 20
    HANDSHAKE_FAILURE = 40
    BAD_CERTIFICATE = 42
    UNSUPPORTED_CERTIFICATE = 43
    CERTIFICATE_REVOKED = 44
    CERTIFICATE_EXPIRED = 45
    CERTIFICATE_UNKNOWN = 46
    ILLEGAL_PARAMETER = 47
    UNKNOWN_CA = 48
    DECODE_ERROR = 50
    DECRYPT_ERROR = 51
    PROTOCOL_VERSION = 70
    INSUFFICIENT_SECURITY = 71
    INTERNAL_ERROR = 80
    MISSING_EXTENSION = 109
    UNSUPPORTED_EXTENSION = 110
    UNRECOGNIZED_NAME = 112
    NO_APPLICATION_PROTOCOL = 120


def alert(code: Alert, reason: str) -> CryptoError:
    """A :class:`CryptoError` carrying ``code``; the reason names the alert."""
    return CryptoError(int(code), f"{code.name.lower()}: {reason}")

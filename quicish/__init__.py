"""quicish: QUIC version 1 for Python asyncio."""

from .config import Config
from .errors import (
    CertificateError,
    ConfigError,
    ConnectionClosedError,
    CryptoError,
    DecodeError,
    ErrorCode,
    ProtocolError,
    QuicError,
    StreamError,
    StreamResetError,
)
from .native import ACCELERATED

__all__ = [
    "ACCELERATED",
    "CertificateError",
    "Config",
    "ConfigError",
    "ConnectionClosedError",
    "CryptoError",
    "DecodeError",
    "ErrorCode",
    "ProtocolError",
    "QuicError",
    "StreamError",
    "StreamResetError",
]
__version__ = "0.1.0"

"""quicish: QUIC version 1 for Python asyncio."""

from .aio.api import PendingConnection, PendingServer, Server, connect, open_stream, run, serve
from .aio.connection import QuicConnection
from .aio.streams import QuicStreamReader, QuicStreamWriter
from .config import Config
from .errors import (
    CertificateError,
    ConfigError,
    ConnectionClosedError,
    ConnectionStateError,
    CryptoError,
    DecodeError,
    ErrorCode,
    HandshakeTimeout,
    ProtocolError,
    QuicError,
    StreamError,
    StreamResetError,
)
from .native import ACCELERATED, CRYPTO_ACCELERATED
from .proto.stats import Stats

__all__ = [
    "ACCELERATED",
    "CRYPTO_ACCELERATED",
    "CertificateError",
    "Config",
    "ConfigError",
    "ConnectionClosedError",
    "ConnectionStateError",
    "CryptoError",
    "DecodeError",
    "ErrorCode",
    "HandshakeTimeout",
    "PendingConnection",
    "PendingServer",
    "ProtocolError",
    "QuicConnection",
    "QuicError",
    "QuicStreamReader",
    "QuicStreamWriter",
    "Server",
    "Stats",
    "StreamError",
    "StreamResetError",
    "connect",
    "open_stream",
    "run",
    "serve",
]
__version__ = "0.1.0"

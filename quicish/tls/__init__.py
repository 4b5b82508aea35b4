"""TLS 1.3 handshake for QUIC (sans-IO): see :class:`quicish.tls.engine.TlsEngine`."""

from .certs import (
    certificate_fingerprint,
    generate_self_signed,
    load_certificate_chain,
    load_private_key,
    verify_certificate,
)
from .engine import Epoch, TlsEngine
from .keylog import keylog_file
from .tickets import ReplayFilter, SessionTicket, TicketKeys

__all__ = [
    "Epoch",
    "ReplayFilter",
    "SessionTicket",
    "TicketKeys",
    "TlsEngine",
    "certificate_fingerprint",
    "generate_self_signed",
    "keylog_file",
    "load_certificate_chain",
    "load_private_key",
    "verify_certificate",
]

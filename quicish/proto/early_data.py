"""0-RTT helpers (RFC 9000 section 7.4.1): the limits a client remembers from a session
ticket, and the checks both sides make on them."""

from __future__ import annotations

from ..errors import ConfigError, DecodeError
from ..tls.tickets import SessionTicket
from ..wire.transport_params import TransportParameters

# The server's parameters a client applies to 0-RTT (RFC 9000 section 7.4.1).
REMEMBERED_FIELDS = (
    "active_connection_id_limit",
    "initial_max_data",
    "initial_max_stream_data_bidi_local",
    "initial_max_stream_data_bidi_remote",
    "initial_max_stream_data_uni",
    "initial_max_streams_bidi",
    "initial_max_streams_uni",
)


def remembered_parameters(ticket: bytes) -> TransportParameters | None:
    """The server's transport parameters stored in a serialised ticket (None: unusable)."""
    try:
        raw = SessionTicket.from_bytes(ticket).transport_parameters
        return TransportParameters.decode(raw, from_server=True)
    except (ConfigError, DecodeError):
        return None


def limits_reduced(old: TransportParameters, new: TransportParameters) -> str | None:
    """The first remembered limit that ``new`` lowers, or None when all are kept."""
    for name in REMEMBERED_FIELDS:
        if getattr(new, name) < getattr(old, name):
            return name
    if (new.max_datagram_frame_size or 0) < (old.max_datagram_frame_size or 0):
        return "max_datagram_frame_size"
    return None

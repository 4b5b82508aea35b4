"""Stream identifiers (RFC 9000 section 2.1).

The two low bits of a stream id say who opened it (bit 0: 0 client, 1 server) and
whether it is bidirectional (bit 1: 0 bidi, 1 uni); the rest is the stream's index
among the streams of that type.
"""

from __future__ import annotations

CLIENT_BIDI, SERVER_BIDI, CLIENT_UNI, SERVER_UNI = 0, 1, 2, 3
MAX_STREAM_ID = (1 << 62) - 1


def is_bidirectional(sid: int) -> bool:
    """True for a bidirectional stream."""
    return not sid & 2


def is_client_initiated(sid: int) -> bool:
    """True when the client opened (or will open) the stream."""
    return not sid & 1


def is_local(sid: int, is_client: bool) -> bool:
    """True when the endpoint with role ``is_client`` initiates ``sid``."""
    return (not sid & 1) == is_client


def stream_index(sid: int) -> int:
    """Position of ``sid`` among the streams of its type (0 for the first)."""
    return sid >> 2


def make_stream_id(index: int, client: bool, bidi: bool) -> int:
    """The id of the ``index``-th stream of the given type."""
    return (index << 2) | (0 if client else 1) | (0 if bidi else 2)


def can_send(sid: int, is_client: bool) -> bool:
    """True when the endpoint with role ``is_client`` may send on ``sid``."""
    return not sid & 2 or (not sid & 1) == is_client


def can_receive(sid: int, is_client: bool) -> bool:
    """True when the endpoint with role ``is_client`` may receive on ``sid``."""
    return not sid & 2 or (not sid & 1) != is_client

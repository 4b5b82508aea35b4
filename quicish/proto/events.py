"""Events a :class:`~quicish.proto.connection.Connection` reports to its driver."""

from __future__ import annotations

from dataclasses import dataclass, field


class Event:
    """Base class of connection events."""

    __slots__ = ()


@dataclass(slots=True)
class HandshakeCompleted(Event):
    alpn: str | None
    session_resumed: bool
    early_data_accepted: bool


@dataclass(slots=True)
class HandshakeConfirmed(Event):
    """The handshake is confirmed (RFC 9001 4.1.2): key updates and migration may start."""


@dataclass(slots=True)
class StreamDataAvailable(Event):
    """In-order data (or the end of the stream) became readable: call ``read_stream``.

    Edge-triggered: reported again only after the stream has been read empty.
    """

    stream_id: int


@dataclass(slots=True)
class StreamReset(Event):
    """The peer sent RESET_STREAM: no more data will arrive on this stream."""

    stream_id: int
    error_code: int
    final_size: int


@dataclass(slots=True)
class StopSendingReceived(Event):
    """The peer sent STOP_SENDING; quicish has already reset our sending half."""

    stream_id: int
    error_code: int


@dataclass(slots=True)
class StreamsAvailable(Event):
    """The peer raised its stream limit, so ``open_stream`` may succeed again."""

    bidirectional: bool


@dataclass(slots=True)
class DatagramReceived(Event):
    data: bytes


@dataclass(slots=True)
class SessionTicketReceived(Event):
    """A ticket for resumption / 0-RTT, serialised for ``connect(session_ticket=...)``."""

    ticket: bytes


@dataclass(slots=True)
class ConnectionIdIssued(Event):
    """A new local connection ID the endpoint must route to this connection."""

    cid: bytes


@dataclass(slots=True)
class ConnectionIdRetired(Event):
    cid: bytes


@dataclass(slots=True)
class PathValidated(Event):
    """A path answered our PATH_CHALLENGE and traffic goes there: the peer's new address
    (server) or, after ``probe_path``, the new local path ``local`` (client)."""

    addr: tuple[str, int]
    local: int = 0


@dataclass(slots=True)
class PathValidationFailed(Event):
    """A path did not answer in time; a server returns to the last validated address."""

    addr: tuple[str, int]
    local: int = 0


@dataclass(slots=True)
class ConnectionTerminated(Event):
    error_code: int
    reason: str
    frame_type: int | None
    by_peer: bool
    #: An application close (0x1d), not a transport error (not compared: a detail).
    application: bool = field(default=False, compare=False)

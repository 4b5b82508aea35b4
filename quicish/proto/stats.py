"""Per-connection counters, and the snapshot ``Connection.stats()`` returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(slots=True)
class ConnectionStats:
    """The counters a connection keeps (see :class:`Stats` for their meaning)."""

    datagrams_sent: int = 0
    datagrams_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    bytes_lost: int = 0
    packets_dropped: int = 0  # unparseable, unknown CID, wrong version, no keys yet
    packets_undecryptable: int = 0  # failed AEAD authentication (corruption, attacks)
    packets_duplicate: int = 0
    stream_bytes_retransmitted: int = 0
    stream_bytes_lost: int = 0  # STREAM bytes in packets declared lost
    stream_bytes_probed: int = 0  # unacknowledged STREAM bytes repeated by PTO probes
    retries_received: int = 0
    key_updates: int = 0
    path_migrations: int = 0
    datagrams_dropped: int = 0  # received DATAGRAM frames dropped unread (queue full)
    max_datagram_size: int = 1200  # the datagram size sent now (path MTU discovery moves it)
    mtu_probes_sent: int = 0
    mtu_probes_lost: int = 0
    mtu_black_holes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of one connection's state and counters (``stats()``). Times in seconds,
    sizes in bytes."""

    smoothed_rtt: float  #: smoothed round-trip time (RFC 9002 5.3)
    min_rtt: float  #: smallest RTT sample seen
    latest_rtt: float  #: the last RTT sample
    rttvar: float  #: RTT variation
    cwnd: int  #: congestion window
    ssthresh: float  #: slow-start threshold (inf before the first loss)
    bytes_in_flight: int  #: bytes sent and neither acknowledged nor declared lost
    pto_count: int  #: probe timeouts in a row (0 once an ACK arrives)
    datagrams_sent: int  #: UDP datagrams sent
    datagrams_received: int  #: UDP datagrams received
    bytes_sent: int  #: bytes of those datagrams
    bytes_received: int  #: bytes of those datagrams
    packets_sent: int  #: QUIC packets sent (coalesced ones counted each)
    packets_received: int  #: QUIC packets received and opened
    packets_lost: int  #: packets declared lost (RFC 9002)
    bytes_lost: int  #: bytes of those packets
    packets_dropped: int  #: unparseable, unknown connection ID, wrong version, no keys yet
    packets_undecryptable: int  #: failed authentication (corruption or forgery)
    packets_duplicate: int  #: received again and ignored
    stream_bytes_retransmitted: int  #: STREAM bytes sent again after a loss
    stream_bytes_lost: int  #: STREAM bytes in packets declared lost
    stream_bytes_probed: int  #: unacknowledged STREAM bytes repeated by PTO probes
    retries_received: int  #: Retry packets acted on (client)
    key_updates: int  #: 1-RTT key updates done, either side starting
    path_migrations: int  #: moves to a new validated path
    datagrams_dropped: int  #: received DATAGRAM frames dropped unread (queue full)
    max_datagram_size: int  #: the largest datagram sent now (path MTU discovery raises it)
    mtu_probes_sent: int  #: path MTU probes sent (docs/pmtud.md)
    mtu_probes_lost: int  #: of those, declared lost (too big, or lost anyway)
    mtu_black_holes: int  #: falls back to 1200 bytes after full-size packets vanished

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (for JSON, logs)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

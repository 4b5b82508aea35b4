"""Per-connection counters reported by ``Connection.stats()``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class ConnectionStats:
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

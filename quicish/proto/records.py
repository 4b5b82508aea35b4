"""What a sent packet carried: one record tuple per frame, so that acknowledgement frees
the data and loss re-queues it (never the packet itself: packet numbers are not reused).

A record is ``(kind, ...)``; the kinds below are shared by the connection and the stream
manager. :class:`BuiltPacket` is a packet assembled but not yet sealed.
"""

from __future__ import annotations

from typing import Any

from ..wire.protection import PacketProtector
from .packet_space import PacketSpace

K_ACK, K_CRYPTO, K_STREAM, K_HANDSHAKE_DONE, K_MAX_DATA, K_MAX_STREAM_DATA = range(6)
K_MAX_STREAMS, K_RESET, K_STOP, K_NEW_CID, K_RETIRE_CID, K_PING, K_NEW_TOKEN = range(6, 13)
K_PATH_RESPONSE = 13
K_DATA_BLOCKED, K_STREAM_DATA_BLOCKED, K_STREAMS_BLOCKED = 20, 21, 22


class BuiltPacket:
    """A packet assembled but not yet sealed: its plaintext (padded, if it is very short,
    so that header protection can sample it) and what it carries."""

    __slots__ = (
        "eliciting",
        "header_len",
        "payload",
        "pn",
        "pn_length",
        "ptype",
        "records",
        "space",
        "truncated",
        "tx",
    )

    def __init__(
        self,
        space: PacketSpace,
        tx: PacketProtector,
        ptype: int,
        pn: int,
        truncated: int,
        pn_length: int,
        header_len: int,
        payload: bytearray,
        records: list[tuple[Any, ...]],
        eliciting: bool,
    ) -> None:
        self.space = space
        self.tx = tx
        self.ptype = ptype
        self.pn = pn
        self.truncated = truncated
        self.pn_length = pn_length
        self.header_len = header_len
        if len(payload) + pn_length < 4:
            # Header protection samples 16 bytes starting 4 bytes after the packet number.
            payload.extend(bytes(4 - pn_length - len(payload)))
        self.payload = payload
        self.records = records
        self.eliciting = eliciting

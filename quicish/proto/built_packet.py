"""A packet assembled but not yet sealed (the general builder's unit of work)."""

from __future__ import annotations

from ..wire.protection import PacketProtector
from .packet_space import PacketSpace
from .records import Record


class BuiltPacket:
    """A packet assembled but not yet sealed: its plaintext (padded, if it is very short,
    so that header protection can sample it) and the records of what it carries."""

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
        records: list[Record],
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

"""A reply's packet: the first packet of a burst while it can only be a 1-RTT packet of an
ACK, control frames and STREAM frames (a response to a request, the next request).

``PacketBuilder.build_datagram`` walks the packet spaces and asks each kind of frame in turn;
in this state (``PacketBuilder.lean_ready(reply=True)``: handshake spaces gone, path validated, no
probe, CRYPTO, PING, HANDSHAKE_DONE, connection ID, DATAGRAM, ACK_FREQUENCY or path frame
waiting) :meth:`ReplyPacket.build` writes the same frames in the same order (the ACK when
one is owed, since stream data waits; the control frames once per burst; STREAM frames)
and seals the packet through the builder's one ``_seal``, without the walk. When the
window, the pacer or the streams say no it builds nothing and the general builder decides.
"""

from __future__ import annotations

from typing import Protocol

from ..wire.buffer import Buffer
from ..wire.packet import PacketType, encode_packet_number
from ..wire.protection import AEAD_TAG_SIZE, PacketProtector
from .congestion.base import CongestionController
from .pacing import Pacer
from .packet_space import ACK_DELAY_EXPONENT, APPLICATION, PacketSpace
from .path import Path, PathManager
from .records import AckRecord, Record, new_record
from .recovery import LossRecovery
from .stream_manager import StreamManager
from .trace import Trace

_ONE_RTT = PacketType.ONE_RTT


def write_ack(
    space: PacketSpace, buf: Buffer, records: list[Record], app: bool, now: float
) -> None:
    """The ACK frame of ``space`` into ``buf`` (a packet's first frame), with its record."""
    received = space.received
    delay = 0
    if app:
        delay = int((now - space.largest_received_time) * 1_000_000) >> ACK_DELAY_EXPONENT
    counts = space.ecn_counts
    ecn = (counts[0], counts[1], counts[2]) if any(counts) else None
    # The whole frame in one native call (same bytes as F.push_ack_frame).
    buf.push_bytes(received.ack_frame(max(0, delay), ecn, 32))
    records.append(new_record(AckRecord, (space.index, received.bounds()[1] - 1)))
    space.on_ack_sent()


class ReplyHost(Protocol):
    """What a reply's packet reads of the packet builder (and its one seal)."""

    control_checked: bool

    @property
    def peer_cid(self) -> bytes: ...
    @property
    def max_datagram_size(self) -> int: ...
    @property
    def cc(self) -> CongestionController: ...
    @property
    def trace(self) -> Trace | None: ...

    def _seal(
        self,
        space: PacketSpace,
        tx: PacketProtector,
        ptype: int,
        pn: int,
        truncated: int,
        pn_length: int,
        payload: bytes | bytearray,
        records: list[Record],
        eliciting: bool,
        in_flight: bool,
        now: float,
    ) -> bytes: ...

    def _count_datagram(self, datagram: bytes, path: Path) -> None: ...

    def lean_ready(self, reply: bool = False) -> bool: ...


class ReplyPacket:
    """A connection's reply packets (made by the packet builder at the first one)."""

    __slots__ = ("_pacer", "_paths", "_recovery", "_space", "_streams")

    def __init__(
        self,
        space: PacketSpace,
        streams: StreamManager,
        recovery: LossRecovery,
        pacer: Pacer,
        paths: PathManager,
    ) -> None:
        self._space = space
        self._streams = streams
        self._recovery = recovery
        self._pacer = pacer
        self._paths = paths

    def build(self, b: ReplyHost, now: float) -> bytes | None:
        """The datagram ``b.build_datagram`` would build now, or None (nothing changed)
        when ``b.lean_ready(reply=True)`` does not hold, the window or the pacer holds it
        back or no stream data waits."""
        recovery = self._recovery
        streams = self._streams
        if (
            not b.lean_ready(True)
            or recovery.bytes_in_flight >= b.cc.cwnd
            or self._pacer.next_send_time(now) is not None
            or streams.first_sendable() is None  # (no stream data to send)
        ):
            return None
        recovery.amplification_limited = False  # (a validated path, as build_datagram sets)
        space = self._space
        tx = space.tx
        assert tx is not None
        pn = space.next_pn
        truncated, pn_length = encode_packet_number(pn, recovery.largest_acked(APPLICATION))
        room = b.max_datagram_size - (1 + len(b.peer_cid) + pn_length) - AEAD_TAG_SIZE
        buf = Buffer()
        records: list[Record] = []
        if space.unacked_ranges:  # (stream data waits: build_datagram adds the ACK too)
            write_ack(space, buf, records, True, now)
        eliciting = False
        if not b.control_checked:  # (once per burst)
            b.control_checked = True
            rtt = recovery.rtt.smoothed_rtt
            eliciting = streams.write_control_frames(buf, room, records, now, rtt)
        eliciting |= streams.write_stream_frames(buf, room, records)
        if not buf.written:
            return None
        payload = buf.take()
        in_flight = eliciting or len(records) != 1  # (an ACK alone is not in flight)
        out = b._seal(
            space, tx, _ONE_RTT, pn, truncated, pn_length, payload, records, eliciting, in_flight,
            now,
        )  # fmt: skip
        b._count_datagram(out, self._paths.current)
        if b.trace is not None:
            b.trace.packet_sent(now, _ONE_RTT, pn, len(out), payload, records)
        return out

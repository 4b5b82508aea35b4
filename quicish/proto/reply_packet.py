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
from ..wire.frames import stream_frame_overhead
from ..wire.packet import PacketType, encode_packet_number
from ..wire.protection import AEAD_TAG_SIZE, PacketProtector
from .congestion.base import CongestionController
from .keys import KeyState
from .pacing import Pacer
from .packet_space import ACK_DELAY_EXPONENT, APPLICATION, PacketSpace
from .path import Path, PathManager
from .records import AckRecord, Record, SentPacket, StreamRecord, new_record
from .recovery import LossRecovery
from .stream_manager import Stream, StreamManager
from .trace import Trace

_ONE_RTT = PacketType.ONE_RTT


def write_ack(
    space: PacketSpace, buf: Buffer, records: list[Record], app: bool, now: float
) -> None:
    """The ACK frame of ``space`` into ``buf`` (a packet's first frame), with its record."""
    buf.push_bytes(ack_frame(space, records, app, now))


def ack_frame(space: PacketSpace, records: list[Record], app: bool, now: float) -> bytes:
    """The ACK frame of ``space`` (its bytes), its record appended to ``records``."""
    received = space.received
    delay = 0
    if app:
        delay = int((now - space.largest_received_time) * 1_000_000) >> ACK_DELAY_EXPONENT
    counts = space.ecn_counts
    ecn = (counts[0], counts[1], counts[2]) if any(counts) else None
    # The whole frame in one native call (same bytes as F.push_ack_frame).
    frame = received.ack_frame(max(0, delay), ecn, 32)
    records.append(new_record(AckRecord, (space.index, received.bounds()[1] - 1)))
    space.on_ack_sent()
    return frame


class ReplyHost(Protocol):
    """What a reply's packet reads of the packet builder (and its one seal)."""

    control_checked: bool
    spin: bool
    sealed_ahead: list[tuple[SentPacket, int, bytes | bytearray]] | None

    @property
    def _keys(self) -> KeyState: ...
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
    def _skip_packet_number(self, space: PacketSpace, pn: int) -> int: ...
    def record_sent(self, sent: SentPacket, probe_path: Path | None = None) -> None: ...

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
        records: list[Record] = []
        # (stream data waits: build_datagram adds the ACK too)
        ack = ack_frame(space, records, True, now) if space.unacked_ranges else b""
        control = not b.control_checked  # (control frames: once per burst)
        b.control_checked = True
        eliciting = False
        out = None
        if not (control and streams.control_due()) and b.trace is None:
            out = self.sealed(b, streams.lone_stream(), pn, pn_length, room, ack, records, now)
            if out:
                return out
        payload: bytes | bytearray = ack
        if out is None:  # (the general way: the frames into a buffer, sealed by _seal)
            buf = Buffer()
            buf.push_bytes(ack)
            if control:
                rtt = recovery.rtt.smoothed_rtt
                eliciting = streams.write_control_frames(buf, room, records, now, rtt)
            eliciting |= streams.write_stream_frames(buf, room, records)
            payload = buf.take()
        if not payload:
            return None
        in_flight = eliciting or len(records) != 1  # (an ACK alone is not in flight)
        out = b._seal(
            space, tx, _ONE_RTT, pn, truncated, pn_length, payload, records, eliciting, in_flight,
            now,
        )  # fmt: skip
        b._count_datagram(out, self._paths.current)
        if b.trace is not None:
            b.trace.packet_sent(now, _ONE_RTT, pn, len(out), payload, records)
        return out

    def sealed(
        self,
        b: ReplyHost,
        stream: Stream | None,
        pn: int,
        pn_length: int,
        room: int,
        ack: bytes,
        records: list[Record],
        now: float,
    ) -> bytes | None:
        """The packet of ``ack`` and ``stream``'s STREAM frame (the one stream queued) in
        one C call (``PacketProtector.seal_reply``), recorded as ``PacketBuilder._seal``
        records a packet: the packet ``write_stream_frames`` and ``_seal`` would make; b""
        when the stream has no frame to send now (the packet is the ACK alone, if any);
        None (nothing changed) when another stream is queued or no frame fits."""
        if stream is None or b.sealed_ahead is not None:
            return None
        send = stream.send
        assert send is not None
        sid = stream.stream_id
        avail = room - len(ack)  # (write_stream_frames for its one stream, inlined)
        max_len = avail - stream_frame_overhead(sid, send.next_offset, avail)
        if max_len < 1:
            return None
        streams = self._streams
        credit = streams.send_credit
        frame = send.next_frame(max_len, credit.limit - credit.used)
        if frame is None:  # (held back: no STREAM frame, as write_stream_frames finds)
            if credit.used >= credit.limit and send.wants_credit:
                credit.note_blocked()
            return b""
        new = send.last_new_bytes
        credit.used += new
        offset, data, fin = frame
        if new != len(data):
            streams.bytes_retransmitted += len(data) - new
        records.append(new_record(StreamRecord, (sid, offset, len(data), fin)))
        space = self._space
        tx = space.tx
        assert tx is not None
        following = pn + 1  # (PacketBuilder._seal from here)
        if following == space.skip_pn:
            following = b._skip_packet_number(space, following)
        space.next_pn = following
        first = (0x60 if b.spin else 0x40) | (0x04 if b._keys.phase else 0)
        out = tx.seal_reply(b.peer_cid, first, pn, pn_length, ack, sid, offset, data, fin)
        b.record_sent(SentPacket(pn, now, len(out), True, True, space.index, records))
        b._count_datagram(out, self._paths.current)
        return out

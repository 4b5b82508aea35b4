"""ACK frequency (draft-ietf-quic-ack-frequency-14): what we ask of the peer, and what we do
with what it asks of us.

* :class:`AckFrequencySender` (ours to the peer, when it advertised ``min_ack_delay``): once
  the congestion window is large, ACK_FREQUENCY asks for an ACK every N ack-eliciting
  packets (about eight per window: N = cwnd / 8 packets, 2..16; in slow start cwnd / 16,
  so HyStart++ keeps its RTT samples; a quarter window and up to 32 cost BBR 5% of its
  goodput at 1% loss in benchmarks/bench_ack_frequency.py) within a quarter of the
  smoothed RTT (at least the peer's ``min_ack_delay`` and 1 ms, at most 25 ms), with our
  loss detection's packet threshold as the reordering threshold (draft section 9). A new
  request goes out when the wanted values move by a quarter or more, at most once per RTT;
  a lost one goes again under a new sequence number unless a newer one went. IMMEDIATE_ACK
  rides on PTO probes and on a packet sent when the application runs out of data with
  packets in flight (section 8.1.1, at most once per RTT), so the last ACK does not wait
  out the delay.
* :func:`on_ack_frequency` / :func:`on_immediate_ack` (the peer's to us): the first installs
  the peer's policy on the application space (:class:`~.packet_space.AckFrequency`), the
  second asks for an ACK at once; both are unknown frames when we did not advertise
  ``min_ack_delay`` (Config.ack_frequency off).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from ..errors import ErrorCode, ProtocolError
from ..wire.ack_frequency import ACK_FREQUENCY, AckFrequencyFrame, ImmediateAckFrame
from ..wire.buffer import Buffer
from ..wire.frames import encode_frame
from .congestion.base import CongestionController
from .packet_space import LOCAL_MIN_ACK_DELAY, AckFrequency, PacketSpace
from .records import OwnerHandlers, Record
from .recovery import LossRecovery

ACKS_PER_WINDOW = 8  # ask for about this many ACKs per congestion window
SLOW_START_ACKS_PER_WINDOW = 16
MIN_ACK_GAP = 2  # packets per ACK: RFC 9000's default, never asked for less
MAX_ACK_GAP = 16
MAX_REQUESTED_DELAY = 0.025  # seconds: RFC 9000's default max_ack_delay
CHANGE = 0.25  # a new request only when a value moves by this fraction
_MAX_ACK_DELAY_LIMIT = (1 << 14) * 1000  # microseconds: max_ack_delay < 2^14 ms


class AckFrequencyRecord(NamedTuple):
    """An ACK_FREQUENCY frame sent: its sequence number, and the delay it asked for."""

    sequence: int
    delay: float


class ImmediateAckRecord(NamedTuple):
    """An IMMEDIATE_ACK frame sent: nothing to do either way (never repeated)."""


IMMEDIATE_ACK_RECORD = ImmediateAckRecord()


class AckFrequencySender:
    """Our ACK_FREQUENCY requests to a peer that advertised ``min_ack_delay``. The packet
    builder calls :meth:`update` once per burst, writes what is pending with :meth:`write`
    and sets ``immediate_ack`` for a PTO probe. The PTO allows for the largest of the peer's
    max_ack_delay and the requests not yet acknowledged (section 7): ``recovery.max_ack_delay``
    grows with each request sent and becomes the newest one's delay once it is acknowledged."""

    __slots__ = (
        "data_sent",
        "gap",
        "immediate_ack",
        "min_delay",
        "next_immediate",
        "next_update",
        "pending",
        "recovery",
        "requested",
        "sequence",
    )

    def __init__(self, peer_min_ack_delay: float, recovery: LossRecovery) -> None:
        self.recovery = recovery
        self.min_delay = max(peer_min_ack_delay, LOCAL_MIN_ACK_DELAY)
        self.sequence = 0  # of the next ACK_FREQUENCY
        self.requested: tuple[int, float, int] | None = None  # (gap, delay, reordering) last asked
        self.pending: tuple[int, float, int] | None = None  # values to send
        self.gap = MIN_ACK_GAP  # packets per ACK asked for (acknowledged or not)
        self.immediate_ack = False  # an IMMEDIATE_ACK is due in the next 1-RTT packet
        self.data_sent = False  # ack-eliciting packets went out since the last IMMEDIATE_ACK
        self.next_update = 0.0
        self.next_immediate = 0.0  # no IMMEDIATE_ACK before idle sooner (once per RTT)

    @property
    def has_pending(self) -> bool:
        return self.pending is not None or self.immediate_ack

    def update(
        self, cwnd: int, mss: int, in_slow_start: bool, srtt: float, reordering: int, now: float
    ) -> None:
        """Decide whether the peer should hear new values (at most once per ``srtt``)."""
        if now < self.next_update:
            return
        divisor = SLOW_START_ACKS_PER_WINDOW if in_slow_start else ACKS_PER_WINDOW
        gap = min(max(cwnd // mss // divisor, MIN_ACK_GAP), MAX_ACK_GAP)
        delay = min(max(srtt / 4, self.min_delay), MAX_REQUESTED_DELAY)
        last = self.requested
        if last is None:
            if gap == MIN_ACK_GAP:
                return  # RFC 9000's policy is what we want: nothing to ask (yet)
        elif (
            abs(gap - last[0]) < CHANGE * last[0]
            and abs(delay - last[1]) <= CHANGE * last[1]
            and reordering == last[2]
        ):
            return
        self.pending = self.requested = (gap, delay, reordering)
        self.next_update = now + srtt

    def before_burst(self, cc: CongestionController, mss: int, now: float) -> int:
        """Before a burst: :meth:`update` from the window and RTT; returns the bytes in
        flight (for :meth:`after_burst`)."""
        recovery = self.recovery
        rtt = recovery.rtt.smoothed_rtt
        self.update(cc.cwnd, mss, cc.in_slow_start, rtt, recovery.packet_threshold, now)
        return recovery.bytes_in_flight

    def after_burst(self, in_flight: int, more_to_send: Callable[[], bool], now: float) -> bool:
        """After a burst: True when an IMMEDIATE_ACK is due because the application ran out
        of data with packets in flight and the peer delays its ACKs (draft section 8.1.1);
        at most once per RTT (a writer that refills its buffer as ACKs free it runs out
        again and again). ``more_to_send()``: frames other than stream data still wait."""
        recovery = self.recovery
        now_in_flight = recovery.bytes_in_flight
        if now_in_flight > in_flight:
            self.data_sent = True
        if not (self.data_sent and self.in_effect and now_in_flight) or now < self.next_immediate:
            return False
        if more_to_send():
            return False
        self.immediate_ack = True
        self.next_immediate = now + recovery.rtt.smoothed_rtt
        return True

    def write(self, buf: Buffer, room: int, records: list[Record]) -> bool:
        """Write the pending frames that fit; True if any was written."""
        wrote = False
        pending = self.pending
        if pending is not None and room - buf.written >= 24:
            gap, delay, reordering = pending
            seq = self.sequence
            self.sequence = seq + 1
            micros = int(delay * 1_000_000)
            encode_frame(buf, AckFrequencyFrame(seq, gap - 1, micros, reordering))
            records.append(AckFrequencyRecord(seq, delay))
            self.pending = None
            self.gap = gap
            recovery = self.recovery
            recovery.max_ack_delay = max(recovery.max_ack_delay, delay)
            wrote = True
        if self.immediate_ack and room - buf.written >= 1:
            encode_frame(buf, ImmediateAckFrame())
            records.append(IMMEDIATE_ACK_RECORD)
            self.immediate_ack = self.data_sent = False
            wrote = True
        return wrote

    @property
    def in_effect(self) -> bool:
        """The peer was asked for fewer ACKs than RFC 9000's default."""
        return self.gap > MIN_ACK_GAP

    def on_acked(self, rec: AckFrequencyRecord) -> None:
        if rec.sequence == self.sequence - 1 and self.pending is None:
            # the newest request holds: the PTO need only allow for its delay
            self.recovery.max_ack_delay = rec.delay

    def on_lost(self, rec: AckFrequencyRecord) -> None:
        if rec.sequence == self.sequence - 1 and self.pending is None:
            self.pending = self.requested  # the newest request again, with a new number


class SenderOwner(Protocol):
    """What holds the connection's :class:`AckFrequencySender` (None while there is none)."""

    ack_frequency: AckFrequencySender | None


def _acked(owner: SenderOwner, rec: AckFrequencyRecord) -> None:
    if owner.ack_frequency is not None:
        owner.ack_frequency.on_acked(rec)


def _lost(owner: SenderOwner, rec: AckFrequencyRecord) -> None:
    if owner.ack_frequency is not None:
        owner.ack_frequency.on_lost(rec)


#: ACK_FREQUENCY and IMMEDIATE_ACK records, answered through the owner's sender
#: (``RecordTable.register_owner``).
RECORD_HANDLERS: OwnerHandlers = {
    AckFrequencyRecord: (_acked, _lost),
    ImmediateAckRecord: (None, None),
}


# ---- received frames -----------------------------------------------------------------------------
def _check_negotiated(enabled: bool, frame_type: int) -> None:
    if not enabled:
        # We did not advertise min_ack_delay: to us it is an unknown frame (RFC 9000 12.4).
        raise ProtocolError(ErrorCode.FRAME_ENCODING_ERROR, "unknown frame type", frame_type)


def on_ack_frequency(enabled: bool, frame: AckFrequencyFrame, space: PacketSpace) -> None:
    """The peer's ACK_FREQUENCY (section 4): ignored unless its sequence number is above the
    last one processed; a requested delay below our min_ack_delay or not below 2^14 ms is a
    PROTOCOL_VIOLATION."""
    _check_negotiated(enabled, ACK_FREQUENCY)
    delay = frame.request_max_ack_delay
    if delay < int(LOCAL_MIN_ACK_DELAY * 1_000_000) or delay >= _MAX_ACK_DELAY_LIMIT:
        raise ProtocolError(
            ErrorCode.PROTOCOL_VIOLATION, f"ACK_FREQUENCY max ack delay {delay} us", ACK_FREQUENCY
        )
    policy = space.ack_frequency
    if policy is not None and frame.sequence <= policy.sequence:
        return  # stale or repeated
    space.ack_frequency = AckFrequency(
        frame.sequence,
        frame.ack_eliciting_threshold,
        delay / 1_000_000,
        frame.reordering_threshold,
        space.ecn_counts[2],
    )


def on_immediate_ack(enabled: bool, space: PacketSpace) -> None:
    """The peer's IMMEDIATE_ACK (section 5): acknowledge at once."""
    _check_negotiated(enabled, 0x1F)
    space.ack_now = True

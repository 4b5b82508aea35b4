"""One packet-number space (Initial, Handshake or application): keys, numbering, ACK state.

RFC 9000 section 12.3: each space numbers its packets independently and acknowledges
only packets of its own space. Our ACK policy is RFC 9000 section 13.2.1's (an ACK for
every second ack-eliciting packet, at once for one out of order, else within max_ack_delay)
until the peer sends ACK_FREQUENCY (draft-ietf-quic-ack-frequency-14): then the
application space's :class:`AckFrequency` decides with the peer's values.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..native import RangeSet, ReassemblyBuffer
from ..wire.protection import PacketProtector
from .records import AckRecord, CryptoRecord, OwnerHandlers, RecordTable
from .send_stream import SendStream

INITIAL, HANDSHAKE, APPLICATION = 0, 1, 2
SPACE_NAMES = ("initial", "handshake", "application")

# RFC 9000 section 7.5: an endpoint must buffer at least 4096 bytes of out-of-order CRYPTO data.
# The window slides: it counts from the read offset (see ``crypto_window``).
CRYPTO_BUFFER_LIMIT = 64 * 1024
ACK_RANGES_LIMIT = 64
# Our acknowledgement policy, announced in our transport parameters (RFC 9000 18.2).
ACK_DELAY_EXPONENT = 3  # the ACK Delay field is in units of 2**3 microseconds
LOCAL_MAX_ACK_DELAY = 0.025  # seconds an ACK-eliciting packet waits at most for its ACK
# The shortest ACK delay we can keep to (our timers' granularity), advertised as
# min_ack_delay when Config.ack_frequency is on.
LOCAL_MIN_ACK_DELAY = 0.001


class AckFrequency:
    """The ACK policy the peer asked for in its newest ACK_FREQUENCY (draft section 6): an
    ACK once more than ``threshold`` ack-eliciting packets wait, or ``max_delay`` seconds
    after the first of them, or at once when reordering reaches ``reordering`` (section
    6.2; 0: never, 1: any packet out of order, as RFC 9000), or, with a threshold above 1,
    at once for the first CE-marked packet after unmarked ones (section 6.3). With (1, 25 ms,
    1) it decides as the RFC 9000 policy of :meth:`PacketSpace.on_packet_received` does."""

    __slots__ = ("ce_count", "ce_last", "gap", "max_delay", "reordering", "sequence", "threshold")

    def __init__(
        self, sequence: int, threshold: int, max_delay: float, reordering: int, ce_count: int = 0
    ) -> None:
        self.sequence = sequence
        self.threshold = threshold
        self.max_delay = max_delay
        self.reordering = reordering
        self.gap = False  # packets may be missing that no ACK of ours reported yet
        self.ce_count = ce_count  # the space's CE count as of the last packet scheduled
        self.ce_last = False  # that packet was CE-marked

    def schedule(self, space: PacketSpace, pn: int, out_of_order: bool, now: float) -> None:
        """Schedule the ACK for ack-eliciting ``pn`` (recorded, counted in
        ``space.unacked_eliciting``, ``space.largest_received`` updated)."""
        ce_onset = self._ce_onset(space)  # (always: it tracks the marks packet by packet)
        if (
            ce_onset
            or space.unacked_eliciting > self.threshold
            or self._reordered(space, pn, out_of_order)
        ):
            space.ack_now = True
        elif space.ack_due_at is None:
            space.ack_due_at = now + self.max_delay

    def _ce_onset(self, space: PacketSpace) -> bool:
        """The packet (its ECN already counted) is CE-marked and the one before was not."""
        ce = space.ecn_counts[2]
        if ce == self.ce_count:
            self.ce_last = False
            return False
        self.ce_count = ce
        onset = not self.ce_last
        self.ce_last = True
        return onset and self.threshold > 1

    def _reordered(self, space: PacketSpace, pn: int, out_of_order: bool) -> bool:
        limit = self.reordering
        if limit <= 1:
            return out_of_order and limit == 1
        acked = space.ack_largest_sent  # "Largest Acked" of the draft; -1: no ACK sent yet
        if pn < space.largest_received and pn <= acked - limit:
            return True  # late: the peer may have declared it lost already
        if out_of_order:
            self.gap = True
        if not self.gap:
            return False
        # the smallest packet number missing above the "Largest Reported Missing"
        missing = max(acked - limit + 1, space.ack_floor)
        for start, stop in space.received.ranges():
            if stop <= missing:
                continue
            if start > missing:
                break
            missing = stop
        if missing > space.largest_received:
            self.gap = False  # nothing missing: in-order packets need no look
            return False
        return space.largest_received - missing >= limit


class PacketSpace:
    """State of one packet-number space."""

    __slots__ = (
        "ack_due_at",
        "ack_floor",
        "ack_frequency",
        "ack_largest_sent",
        "ack_now",
        "crypto_recv",
        "crypto_send",
        "crypto_window",
        "discarded",
        "ecn_counts",
        "index",
        "largest_received",
        "largest_received_time",
        "next_pn",
        "probes",
        "received",
        "rx",
        "skip_pn",
        "tx",
        "unacked_eliciting",
        "unacked_ranges",
    )

    def __init__(
        self,
        index: int,
        crypto_window: int = CRYPTO_BUFFER_LIMIT,
        max_crypto_fragments: int | None = None,
    ) -> None:
        self.index = index
        self.rx: PacketProtector | None = None
        self.tx: PacketProtector | None = None
        self.next_pn = 0
        self.skip_pn = -1  # the next packet number never to send (RFC 9000 21.4); -1: none
        self.received = RangeSet(ACK_RANGES_LIMIT)  # packet numbers still to acknowledge
        self.ack_floor = 0  # packets below this are old: dropped as possible duplicates
        self.largest_received = -1
        self.largest_received_time = 0.0
        self.unacked_eliciting = 0  # ack-eliciting packets received since our last ACK
        self.unacked_ranges = False  # anything received since our last ACK
        self.ack_now = False  # send an ACK in the next packet
        self.ack_due_at: float | None = None  # deadline for a delayed ACK
        self.ack_largest_sent = -1  # the largest packet number our last ACK reported
        self.ack_frequency: AckFrequency | None = None  # the peer's ACK_FREQUENCY policy
        self.crypto_send = SendStream(1 << 62, stream_id=-1)
        self.crypto_window = crypto_window  # CRYPTO bytes accepted above the read offset
        self.crypto_recv = ReassemblyBuffer(crypto_window)
        if max_crypto_fragments is not None:
            self.crypto_recv.max_fragments = max_crypto_fragments
        self.probes = 0  # PTO probe packets still to send
        self.discarded = False
        self.ecn_counts = [0, 0, 0]  # ECT(0), ECT(1), CE of received packets

    def record(self, pn: int) -> bool:
        """Record ``pn`` for acknowledgement; False for a duplicate (seen before, or below
        the ACK floor), whose frames must not be processed again."""
        return pn >= self.ack_floor and self.received.add_packet(pn)

    def on_packet_received(
        self, pn: int, ack_eliciting: object, now: float, max_delay: float
    ) -> None:
        """Schedule the ACK of ``pn``, recorded before its frames were processed
        (RFC 9000 section 13.2); ``ack_eliciting`` truthy when the packet is."""
        out_of_order = pn != self.largest_received + 1
        if pn > self.largest_received:
            self.largest_received = pn
            self.largest_received_time = now
        self.unacked_ranges = True
        if not ack_eliciting:
            return
        self.unacked_eliciting += 1
        if self.ack_frequency is not None:
            self.ack_frequency.schedule(self, pn, out_of_order, now)
        elif self.index != APPLICATION or out_of_order or self.unacked_eliciting >= 2:
            self.ack_now = True
        elif self.ack_due_at is None:
            self.ack_due_at = now + max_delay

    def on_ack_sent(self) -> None:
        self.ack_largest_sent = self.largest_received
        self.unacked_eliciting = 0
        self.unacked_ranges = False
        self.ack_now = False
        self.ack_due_at = None

    def on_ack_acknowledged(self, largest: int) -> None:
        """The peer got an ACK of ours reaching ``largest``: stop acknowledging up to it."""
        if largest + 1 > self.ack_floor:
            self.ack_floor = largest + 1
            self.received.drop_below(largest + 1)

    def wants_ack(self, now: float) -> bool:
        if not self.unacked_ranges:
            return False
        return self.ack_now or (self.ack_due_at is not None and now >= self.ack_due_at)

    def discard(self) -> bool:
        """Drop this space's keys, ACK state and sent CRYPTO data for good (RFC 9001 4.9);
        False when it was discarded already. Nothing writes a discarded space's CRYPTO send
        stream, ACK ranges or ECN counts again (its packets are dropped, nothing is built for
        it, the records of what it sent are forgotten): they are swapped for empty stand-ins
        shared by every connection. (The receive buffer stays: the rest of the packet that
        discarded the space may still carry CRYPTO frames.)"""
        if self.discarded:
            return False
        self.discarded = True
        self.rx = self.tx = None
        self.crypto_send = SPENT_CRYPTO_SEND
        self.received = SPENT_RANGES
        self.ecn_counts = SPENT_ECN_COUNTS
        self.ack_due_at = None
        self.unacked_ranges = False
        self.probes = 0
        return True


# What a discarded space holds instead of its own CRYPTO streams and ACK ranges (about
# 1.5 KB per space): empty, and never touched (tests/test_conn_memory.py checks they stay so).
SPENT_CRYPTO_SEND = SendStream(0, stream_id=-1)
SPENT_RANGES = RangeSet(1)
# ... and an Initial space's receive buffer once the Handshake space is discarded too.
SPENT_CRYPTO_RECV = ReassemblyBuffer(0)


class _SpentCounts(list[int]):
    """A discarded space's ECN counts: always zero; a count added (the packet whose
    frames discarded its space is still counted) is dropped."""

    __slots__ = ()

    def __setitem__(self, index: object, value: object) -> None:
        pass


# (shared: a discarded space builds no ACK frame, so its counts are never read)
SPENT_ECN_COUNTS: list[int] = _SpentCounts((0, 0, 0))


def register_space_records(table: RecordTable, spaces: Sequence[PacketSpace]) -> None:
    """Answer CRYPTO and ACK records through the space (of ``spaces``) that sent them."""
    table.register_owner(spaces, _RECORD_HANDLERS)


def _crypto_acked(spaces: Sequence[PacketSpace], rec: CryptoRecord) -> None:
    spaces[rec.space].crypto_send.on_acked(rec.offset, rec.length, False)


def _crypto_lost(spaces: Sequence[PacketSpace], rec: CryptoRecord) -> None:
    space = spaces[rec.space]
    if not space.discarded:
        space.crypto_send.on_lost(rec.offset, rec.length, False)


def _ack_acked(spaces: Sequence[PacketSpace], rec: AckRecord) -> None:
    spaces[rec.space].on_ack_acknowledged(rec.largest)


# (a lost ACK is not re-sent: the next one says more)
_RECORD_HANDLERS: OwnerHandlers = {
    CryptoRecord: (_crypto_acked, _crypto_lost),
    AckRecord: (_ack_acked, None),
}

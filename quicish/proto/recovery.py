"""Loss detection and probe timeouts (RFC 9002 section 6 and appendix A).

Sent packets are kept per packet number space in a dict keyed by packet number plus a list
of packet numbers in sending order (packet numbers only grow). After every ACK the part of
that list below the largest acknowledged packet is compacted down to the (at most two) packets
still awaiting a verdict, so the list from ``head`` on holds only outstanding packets: sending
is O(1), an ACK range costs two bisections plus O(packets it newly acknowledges), and loss
detection only looks at the holes between ranges.

Packets not in flight (ACK-only) stay tracked only so that their acknowledgement tells the
connection which of its ACK ranges arrived; a peer that never acknowledges them must not
grow that state without end, so at most ``max_not_in_flight`` are kept per space (beyond it
the oldest half are forgotten: their loss would need no action anyway).

The connection skips a packet number now and then (RFC 9000 21.4) and says so with
:meth:`LossRecovery.on_packet_number_skipped`: an ACK that covers a skipped number
acknowledges a packet the peer cannot have received (an optimistic ACK, to inflate the
congestion window) and is a PROTOCOL_VIOLATION. Checking costs one comparison per ACK until
an ACK reaches the oldest unchecked skip.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence

from ..errors import ErrorCode, ProtocolError
from .congestion.base import CongestionController
from .loss_clusters import LossClusters
from .packet_space import APPLICATION, HANDSHAKE, INITIAL
from .records import SentPacket
from .rtt import INITIAL_RTT, TIMER_GRANULARITY, RttEstimator
from .spurious import SpuriousLosses

# RFC 9002 section 6.1 and 7.6.1 (kPacketThreshold, kTimeThreshold,
# kPersistentCongestionThreshold).
PACKET_THRESHOLD = 3  # packets: reordering tolerated before a packet counts as lost
TIME_THRESHOLD = 9 / 8  # RTTs: time reordering tolerated, as a multiple of the RTT
PERSISTENT_CONGESTION_THRESHOLD = 3  # PTO periods a loss must span to be persistent
# The PTO doubles on each consecutive timeout (RFC 9002 section 6.2.1) but stops doubling
# after 2^3 before the handshake is confirmed and after 2^6 once it is: on a path with heavy
# bursty loss the next probe then still comes within seconds (a few RTTs' worth), instead of
# after the idle timeout has already ended the connection. Like TCP's RTO ceiling.
_MAX_BACKOFF_EXPONENT = 6
_MAX_HANDSHAKE_BACKOFF_EXPONENT = 3
_COMPACT_MIN = 1024  # drop the consumed prefix of the order list once it is this long
MAX_NOT_IN_FLIGHT = 512  # default cap on tracked packets not in flight, per space
_SKIPS_KEPT = 8  # the most recent skipped packet numbers remembered, per space
_NO_SKIP = 1 << 62  # skip_watch when no skipped packet number awaits its check


class _Space:
    """Recovery state of one packet number space."""

    __slots__ = (
        "ack_eliciting_in_flight",
        "ecn_ce",
        "head",
        "largest_acked",
        "largest_acked_sent_time",
        "largest_sent",
        "last_ack_eliciting_time",
        "loss_time",
        "not_in_flight",
        "order",
        "packets",
        "skip_watch",
        "skipped",
    )

    def __init__(self) -> None:
        self.packets: dict[int, SentPacket] = {}
        self.order: list[int] = []  # packet numbers in sending order; order[head:] outstanding
        self.head = 0
        self.largest_sent = -1
        self.largest_acked = -1
        self.largest_acked_sent_time = 0.0
        self.loss_time: float | None = None
        self.last_ack_eliciting_time = 0.0
        self.ack_eliciting_in_flight = 0
        self.not_in_flight = 0  # outstanding packets not in flight (ACK-only)
        self.ecn_ce = 0
        self.skipped: list[int] = []  # recently skipped packet numbers, ascending
        self.skip_watch = _NO_SKIP  # lowest skipped number no ACK has reached yet

    def clear(self) -> list[SentPacket]:
        packets = self.packets
        out = [packets[pn] for pn in self.order[self.head :]]
        self.packets = {}
        self.order = []
        self.head = 0
        self.loss_time = None
        self.last_ack_eliciting_time = 0.0
        self.ack_eliciting_in_flight = 0
        self.not_in_flight = 0
        self.skipped = []
        self.skip_watch = _NO_SKIP
        return out


#: What a space whose keys are discarded holds instead of its own tables of sent packets
#: and skipped numbers: empty, and never written (tests/test_conn_memory.py checks so).
SPENT_PACKETS: dict[int, SentPacket] = {}
SPENT_ORDER: list[int] = []
SPENT_SKIPS: list[int] = []


class LossRecovery:
    """RFC 9002 loss detection for the three packet number spaces of one connection.

    The connection sets ``max_ack_delay`` (the peer's, seconds), ``handshake_confirmed``,
    ``peer_completed_address_validation`` (always True on a server; on a client once the
    handshake is confirmed or a Handshake packet was acknowledged), ``has_handshake_keys``
    (client anti-deadlock probes go to Handshake instead of Initial) and
    ``amplification_limited`` (a server that may not send: no PTO timer).
    ``max_not_in_flight``: packets not in flight tracked per space at most (see the module
    docstring). ``undo_spurious`` and ``adaptive_reordering``: what an acknowledgement of a
    packet already declared lost does (``spurious.py``). ``loss_filter``: for a window-based
    controller, only losses in clusters (``loss_clusters.py``) start a congestion event;
    scattered random loss is retransmitted without one (off by default).
    """

    __slots__ = (
        "_anchor", "_cc", "_clusters", "_packet_cc", "_spaces", "_spurious",
        "amplification_limited", "bytes_in_flight", "bytes_lost", "handshake_confirmed",
        "has_handshake_keys", "max_ack_delay", "max_not_in_flight", "on_metrics",
        "packets_forgotten", "packets_lost", "peer_completed_address_validation",
        "persistent_congestion_events", "pto_count", "pto_timeouts", "rtt",
    )  # fmt: skip

    #: An ACK of the one packet outstanding takes ``ack_one_packet`` (tests turn it off).
    ack_one = True

    def __init__(
        self,
        cc: CongestionController,
        max_ack_delay: float,
        initial_rtt: float = INITIAL_RTT,
        max_not_in_flight: int = MAX_NOT_IN_FLIGHT,
        *,
        undo_spurious: bool = True,
        adaptive_reordering: bool = True,
        loss_filter: bool = False,
    ) -> None:
        self._cc = cc
        self._spurious = SpuriousLosses(
            PACKET_THRESHOLD, TIME_THRESHOLD, adaptive=adaptive_reordering, undo=undo_spurious
        )
        self._packet_cc: CongestionController | None = cc if cc.packet_aware else None
        #: window-based controllers: only clustered losses are congestion (option)
        self._clusters: LossClusters | None = LossClusters() if loss_filter else None
        self.rtt = RttEstimator(initial_rtt)
        self.max_ack_delay = max_ack_delay
        self.handshake_confirmed = False
        self.peer_completed_address_validation = False
        self.has_handshake_keys = False
        self.amplification_limited = False
        self.pto_count = 0
        self.bytes_in_flight = 0
        # statistics
        self.packets_lost = 0  # in-flight packets declared lost
        self.bytes_lost = 0
        self.pto_timeouts = 0
        self.persistent_congestion_events = 0
        self.packets_forgotten = 0  # not-in-flight packets dropped from tracking unanswered
        self.max_not_in_flight = max(1, max_not_in_flight)
        self.on_metrics: Callable[[LossRecovery, float], None] | None = None
        self._spaces = (_Space(), _Space(), _Space())
        self._anchor: float | None = None  # when the timer was last (re)armed: anti-deadlock base

    @property
    def cc(self) -> CongestionController:
        """The congestion controller (replaced on a path change)."""
        return self._cc

    @cc.setter
    def cc(self, cc: CongestionController) -> None:
        self._cc = cc
        self._packet_cc = cc if cc.packet_aware else None

    @property
    def spurious_losses(self) -> int:
        """Packets declared lost that were acknowledged afterwards."""
        return self._spurious.spurious

    @property
    def spurious_undos(self) -> int:
        """Window reductions undone because all their losses were spurious."""
        return self._spurious.undone

    @property
    def packet_threshold(self) -> int:
        """Reordering (in packets) tolerated before loss: 3, more after spurious losses."""
        return self._spurious.packet_threshold

    @property
    def time_threshold(self) -> float:
        """Reordering (in RTTs) tolerated before loss: 9/8, more after spurious losses."""
        return self._spurious.time_threshold

    # ---- queries -------------------------------------------------------------------------
    def largest_acked(self, space: int) -> int | None:
        """Largest packet number the peer acknowledged in ``space``, or None."""
        largest = self._spaces[space].largest_acked
        return largest if largest >= 0 else None

    def largest_sent(self, space: int) -> int | None:
        largest = self._spaces[space].largest_sent
        return largest if largest >= 0 else None

    def skipped_packet_numbers(self, space: int) -> list[int]:
        """The most recent packet numbers skipped in ``space`` (never sent), ascending."""
        return list(self._spaces[space].skipped)

    def outstanding(self, space: int) -> list[SentPacket]:
        """Packets of ``space`` neither acknowledged nor declared lost, in sending order."""
        sp = self._spaces[space]
        return [sp.packets[pn] for pn in sp.order[sp.head :]]

    def ack_eliciting_in_flight(self, space: int | None = None) -> int:
        """Count of ack-eliciting packets in flight in ``space`` (None: all spaces)."""
        if space is not None:
            return self._spaces[space].ack_eliciting_in_flight
        initial, handshake, app = self._spaces  # (no generator: after every send)
        return (
            initial.ack_eliciting_in_flight
            + handshake.ack_eliciting_in_flight
            + app.ack_eliciting_in_flight
        )

    def _backoff(self) -> int:
        """The PTO multiplier: 2^pto_count, capped (lower before handshake confirmation)."""
        cap = _MAX_BACKOFF_EXPONENT if self.handshake_confirmed else _MAX_HANDSHAKE_BACKOFF_EXPONENT
        return 1 << min(self.pto_count, cap)

    def pto_interval(self, space: int = APPLICATION) -> float:
        """The probe timeout for ``space`` without backoff (RFC 9002 6.2.1); closing,
        draining and path validation are measured in it."""
        base = self.rtt.pto_base()
        if space == APPLICATION:
            base += self.max_ack_delay
        return base

    def pto_duration(self, space: int = APPLICATION) -> float:
        """The current probe timeout for ``space``, backoff included."""
        return self.pto_interval(space) * self._backoff()

    def metrics(self) -> dict[str, float]:
        """Values a qlog ``metrics_updated`` event carries."""
        rtt = self.rtt
        return {
            "min_rtt": rtt.min_rtt,
            "smoothed_rtt": rtt.smoothed_rtt,
            "latest_rtt": rtt.latest_rtt,
            "rtt_variance": rtt.rttvar,
            "pto_count": self.pto_count,
            "congestion_window": self.cc.cwnd,
            "bytes_in_flight": self.bytes_in_flight,
            "ssthresh": self.cc.ssthresh,
        }

    # ---- sending -----------------------------------------------------------------------------
    def on_packet_sent(self, pkt: SentPacket) -> None:
        """Record a sent packet (packet numbers must grow within a space).

        The connection also tells the congestion controller and the pacer about in-flight
        packets (``cc.on_packet_sent``); recovery does not forward it.
        """
        sp = self._spaces[pkt.space]
        pn = pkt.pn
        if pn <= sp.largest_sent:
            raise ValueError(f"packet number {pn} not above {sp.largest_sent}")
        sp.largest_sent = pn
        sp.packets[pn] = pkt
        sp.order.append(pn)
        if pkt.ack_eliciting:
            pkt.in_flight = True
            sp.last_ack_eliciting_time = pkt.sent_time
            sp.ack_eliciting_in_flight += 1
        if pkt.in_flight:
            self.bytes_in_flight += pkt.size
            self._anchor = pkt.sent_time
            if self._packet_cc is not None:
                self._packet_cc.on_sent_packet(pkt, self.bytes_in_flight)
        else:
            sp.not_in_flight += 1
            if sp.not_in_flight > self.max_not_in_flight:
                self._forget_not_in_flight(sp)

    def on_packets_sent(self, space: int, pkts: list[SentPacket]) -> None:
        """Record ack-eliciting in-flight packets of ``space`` sent back to back, numbers
        ascending (the bulk path's burst): as :meth:`on_packet_sent` for each, with one
        call for a packet-aware controller."""
        sp = self._spaces[space]
        if pkts[0].pn <= sp.largest_sent:
            raise ValueError(f"packet number {pkts[0].pn} not above {sp.largest_sent}")
        packets = sp.packets
        append = sp.order.append
        size = 0
        for pkt in pkts:
            pn = pkt.pn
            packets[pn] = pkt
            append(pn)
            size += pkt.size
        last = pkts[-1]
        sp.largest_sent = last.pn
        sp.last_ack_eliciting_time = self._anchor = last.sent_time
        sp.ack_eliciting_in_flight += len(pkts)
        before = self.bytes_in_flight
        self.bytes_in_flight = before + size
        if self._packet_cc is not None:
            self._packet_cc.on_sent_packets(pkts, before)

    def on_packet_number_skipped(self, space: int, pn: int) -> None:
        """``pn`` will never be sent (RFC 9000 21.4): an ACK covering it is optimistic."""
        sp = self._spaces[space]
        if pn <= sp.largest_sent:
            raise ValueError(f"packet number {pn} not above {sp.largest_sent}")
        skipped = sp.skipped
        skipped.append(pn)
        if len(skipped) > _SKIPS_KEPT:
            del skipped[0]
        if pn < sp.skip_watch:
            sp.skip_watch = pn

    # ---- acknowledgments -------------------------------------------------------------------------
    def on_ack_received(
        self,
        space: int,
        ranges_descending: Sequence[tuple[int, int]],
        ack_delay: float,
        now: float,
        ecn_ce: int | None = None,
    ) -> tuple[list[SentPacket], list[SentPacket]]:
        """Process one ACK frame: returns (newly acked, newly lost), both in packet number order.

        ``ranges_descending``: half-open ``[start, stop)`` ranges, highest first.
        ``ack_delay``: the decoded ACK Delay in seconds. ``ecn_ce``: the frame's ECN-CE count.
        Raises ProtocolError(PROTOCOL_VIOLATION) if it acknowledges a packet never sent.
        An ACK of the one packet outstanding takes :meth:`ack_one_packet`, which the caller
        tries first (``FrameHandlers.on_ack_fields``): the same outcome without this walk.
        """
        if not ranges_descending:
            return [], []
        sp = self._spaces[space]
        largest = ranges_descending[0][1] - 1
        if largest > sp.largest_sent:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                f"ACK for unsent packet {largest} (largest sent {sp.largest_sent})",
            )
        if largest >= sp.skip_watch:
            self._check_skipped(sp, ranges_descending, largest)
        if self._spurious.lost[space] and self._spurious.on_ack(space, ranges_descending):
            self._cc.undo_congestion_event()
        newest_largest = largest >= sp.largest_acked
        if newest_largest:
            sp.largest_acked = largest
        order = sp.order
        pop = sp.packets.pop
        lo = sp.head
        gaps: list[tuple[int, int]] = []
        if len(ranges_descending) == 1:  # the common case: one range
            start, stop = ranges_descending[0]
            i = bisect_left(order, start, lo)
            j = bisect_left(order, stop, i)
            if j == i:
                return [], []
            if i > lo:
                gaps.append((lo, i))
            acked = list(map(pop, order[i:j]))
            lo = j
        else:
            acked = []
            for start, stop in reversed(ranges_descending):
                i = bisect_left(order, start, lo)
                j = bisect_left(order, stop, i)
                if i > lo:
                    gaps.append((lo, i))
                if j > i:
                    acked.extend(map(pop, order[i:j]))
                lo = j
            if not acked:
                return [], []

        cc = self._cc
        recovery_start = cc.recovery_start_time
        in_flight_bytes = 0
        eliciting = 0
        not_in_flight = 0
        cc_bytes = 0  # in-flight bytes sent outside the recovery period: they grow the window
        cc_sent = -math.inf
        for pkt in acked:
            if pkt.in_flight:
                size = pkt.size
                in_flight_bytes += size
                if pkt.ack_eliciting:
                    eliciting += 1
                sent_time = pkt.sent_time
                if sent_time > recovery_start:
                    cc_bytes += size
                    if sent_time > cc_sent:
                        cc_sent = sent_time
            else:
                not_in_flight += 1
        prior_in_flight = self.bytes_in_flight
        self.bytes_in_flight -= in_flight_bytes
        sp.ack_eliciting_in_flight -= eliciting
        sp.not_in_flight -= not_in_flight

        newest = acked[-1]
        if newest.pn == largest:
            sp.largest_acked_sent_time = newest.sent_time
            if eliciting:
                if space == INITIAL:
                    ack_delay = 0.0
                elif self.handshake_confirmed and ack_delay > self.max_ack_delay:
                    ack_delay = self.max_ack_delay
                self.rtt.update(now - newest.sent_time, ack_delay, now)

        if ecn_ce is not None and ecn_ce > sp.ecn_ce:
            sp.ecn_ce = ecn_ce
            if cc.on_ecn_ce(sp.largest_acked_sent_time, now):
                self._spurious.forget_episode()  # a reduction no spurious loss can undo

        if newest_largest:
            end = lo  # nothing outstanding between the top range and the largest acked
        else:
            end = bisect_right(order, sp.largest_acked, lo)
            if end > lo:
                gaps.append((lo, end))
        if gaps:
            lost = self._detect_lost(sp, gaps, end, now)
            if lost:
                self._on_lost(sp, lost, now)
        else:
            # Fast path: everything at or below the largest acked is gone.
            lost = []
            sp.loss_time = None
            if end >= _COMPACT_MIN and 2 * end >= len(order):
                del order[:end]
                end = 0
            sp.head = end
        self._acked(acked, recovery_start, cc_bytes, cc_sent, prior_in_flight, now)
        return acked, lost

    def ack_one_packet(
        self, space: int, start: int, stop: int, ack_delay: float, now: float, ecn_ce: int | None
    ) -> SentPacket | None:
        """``on_ack_received`` of an ACK of the one range ``[start, stop)`` when it covers the
        one packet outstanding, the largest acknowledged yet (no skipped number near, no
        spurious loss to judge): that packet, acknowledged with the same steps without the
        range walk, the gaps and the loss detection (nothing is left below it); else None,
        nothing changed (``on_ack_received`` decides)."""
        sp = self._spaces[space]
        order, lo = sp.order, sp.head
        if not (
            lo == len(order) - 1
            and order[lo] == stop - 1 >= start
            and stop - 1 < sp.skip_watch
            and stop > sp.largest_acked
            and not self._spurious.lost[space]
            and self.ack_one
        ):
            return None
        pn = stop - 1
        pkt = sp.packets.pop(pn)
        sp.largest_acked = pn
        cc = self._cc
        recovery_start = cc.recovery_start_time
        prior_in_flight = self.bytes_in_flight
        cc_bytes = 0
        cc_sent = -math.inf
        sent_time = pkt.sent_time
        sp.largest_acked_sent_time = sent_time
        if pkt.in_flight:
            size = pkt.size
            self.bytes_in_flight = prior_in_flight - size
            if sent_time > recovery_start:
                cc_bytes, cc_sent = size, sent_time
            if pkt.ack_eliciting:
                sp.ack_eliciting_in_flight -= 1
                if space == INITIAL:
                    ack_delay = 0.0
                elif self.handshake_confirmed and ack_delay > self.max_ack_delay:
                    ack_delay = self.max_ack_delay
                self.rtt.update(now - sent_time, ack_delay, now)
        else:
            sp.not_in_flight -= 1
        if ecn_ce is not None and ecn_ce > sp.ecn_ce:
            sp.ecn_ce = ecn_ce
            if cc.on_ecn_ce(sent_time, now):
                self._spurious.forget_episode()  # a reduction no spurious loss can undo
        sp.loss_time = None  # (nothing is left at or below the largest acked)
        end = lo + 1
        if end >= _COMPACT_MIN and 2 * end >= len(order):
            del order[:end]
            end = 0
        sp.head = end
        if self._packet_cc is None and cc.recovery_start_time == recovery_start:
            cc.on_ack(cc_bytes, cc_sent, now, self.rtt, prior_in_flight)  # (_acked inlined)
            if self.peer_completed_address_validation:
                self.pto_count = 0
            self._anchor = now
            if self.on_metrics is not None:
                self.on_metrics(self, now)
        else:
            self._acked([pkt], recovery_start, cc_bytes, cc_sent, prior_in_flight, now)
        return pkt

    def _acked(
        self,
        acked: list[SentPacket],
        recovery_start: float,
        cc_bytes: int,
        cc_sent: float,
        prior_in_flight: int,
        now: float,
    ) -> None:
        """The steps after an ACK's packets are taken off: the controller, PTO count, metrics."""
        cc = self._cc
        if cc.recovery_start_time != recovery_start:
            # This ACK started a recovery period (ECN-CE or loss): count against the new one.
            cc_bytes, cc_sent = _outside_recovery(acked, cc.recovery_start_time)
        if self._packet_cc is None:
            cc.on_ack(cc_bytes, cc_sent, now, self.rtt, prior_in_flight)
        else:
            cc.on_packets_acked(acked, now, self.rtt, prior_in_flight, self.bytes_in_flight)
        if self.peer_completed_address_validation:
            self.pto_count = 0
        self._anchor = now
        if self.on_metrics is not None:
            self.on_metrics(self, now)

    # ---- timers --------------------------------------------------------------------------------
    def loss_detection_deadline(self) -> float | None:
        """Absolute time at which :meth:`on_timeout` must run, or None (RFC 9002 A.8)."""
        initial, handshake, app = self._spaces  # (no loss timer armed: the common case)
        if initial.loss_time is None and handshake.loss_time is None and app.loss_time is None:
            if (
                app.ack_eliciting_in_flight
                and not (initial.ack_eliciting_in_flight or handshake.ack_eliciting_in_flight)
                and self.handshake_confirmed
                and not self.amplification_limited
            ):  # (after every send of an open connection: _pto_deadline of the one space)
                return app.last_ack_eliciting_time + self.pto_duration()
            return self._pto_deadline()
        return self._earliest_loss_time()[0]

    def on_timeout(self, now: float) -> tuple[list[SentPacket], int | None]:
        """Run the loss detection timer: (packets declared lost, space needing a probe or None).

        A probe space means: send one or two ack-eliciting packets there now (new data,
        else data in flight, else a PING), even if the congestion window is full.
        Early or spurious calls do nothing.
        """
        loss_time, space = self._earliest_loss_time()
        if loss_time is not None:
            if now < loss_time:
                return [], None
            sp = self._spaces[space]
            end = bisect_right(sp.order, sp.largest_acked, sp.head)
            lost = self._detect_lost(sp, [(sp.head, end)], end, now)
            if lost:
                self._on_lost(sp, lost, now)
            if self.on_metrics is not None:
                self.on_metrics(self, now)
            return lost, None
        deadline = self._pto_deadline()
        if deadline is None or now < deadline:
            return [], None
        if not self.ack_eliciting_in_flight():
            # Client anti-deadlock probe: a Handshake packet proves address ownership,
            # a padded Initial earns the server more amplification credit.
            probe = HANDSHAKE if self.has_handshake_keys else INITIAL
        else:
            _, found = self._pto_time_and_space()
            probe = APPLICATION if found is None else found
        self.pto_count += 1
        self.pto_timeouts += 1
        self._anchor = now
        if self.on_metrics is not None:
            self.on_metrics(self, now)
        return [], probe

    # ---- key discard -----------------------------------------------------------------------------
    def discard_space(
        self, space: int, now: float | None = None, *, for_good: bool = False
    ) -> list[SentPacket]:
        """Forget a space's packets (keys discarded, or Retry): they leave bytes in flight
        without counting as acked or lost; returns them. Resets the PTO backoff.
        ``for_good``: the space's keys are gone (nothing is sent in it again): its tables
        give way to empty ones shared by every connection (an ACK frame read for it later,
        in the rest of the packet that discarded it, finds nothing in them and writes
        nothing to them)."""
        sp = self._spaces[space]
        dropped = sp.clear()
        if for_good:
            sp.packets, sp.order, sp.skipped = SPENT_PACKETS, SPENT_ORDER, SPENT_SKIPS
        self.bytes_in_flight -= sum(p.size for p in dropped if p.in_flight)
        self.pto_count = 0
        if now is not None:
            self._anchor = now
        return dropped

    # ---- internals ---------------------------------------------------------------------------
    def _earliest_loss_time(self) -> tuple[float | None, int]:
        best: float | None = None
        best_space = INITIAL
        for index, sp in enumerate(self._spaces):
            t = sp.loss_time
            if t is not None and (best is None or t < best):
                best, best_space = t, index
        return best, best_space

    def _pto_deadline(self) -> float | None:
        if self.amplification_limited:
            return None
        if not self.ack_eliciting_in_flight():
            if self.peer_completed_address_validation or self._anchor is None:
                return None
            # Anti-deadlock: the client arms the timer from the last arming event.
            factor = self._backoff()
            return self._anchor + self.rtt.pto_base() * factor
        return self._pto_time_and_space()[0]

    def _pto_time_and_space(self) -> tuple[float | None, int | None]:
        factor = self._backoff()
        duration = self.rtt.pto_base() * factor
        best: float | None = None
        best_space: int | None = None
        for index, sp in enumerate(self._spaces):
            if not sp.ack_eliciting_in_flight:
                continue
            if index == APPLICATION:
                if not self.handshake_confirmed:
                    break  # no application-data PTO before the handshake is confirmed
                duration += self.max_ack_delay * factor
            t = sp.last_ack_eliciting_time + duration
            if best is None or t < best:
                best, best_space = t, index
        return best, best_space

    def _detect_lost(
        self, sp: _Space, gaps: list[tuple[int, int]], end: int, now: float
    ) -> list[SentPacket]:
        """Declare lost the outstanding packets at the ``gaps`` index spans (all of them at
        or below the largest acked); then compact ``order[head:end]`` to the survivors."""
        rtt = self.rtt
        spurious = self._spurious
        loss_delay = spurious.time_threshold * max(rtt.latest_rtt, rtt.smoothed_rtt)
        if loss_delay < TIMER_GRANULARITY:
            loss_delay = TIMER_GRANULARITY
        pn_limit = sp.largest_acked - spurious.packet_threshold
        packets = sp.packets
        order = sp.order
        lost: list[SentPacket] = []
        pending: list[int] = []
        loss_time: float | None = None
        for a, b in gaps:
            for k in range(a, b):
                pn = order[k]
                pkt = packets[pn]
                due = pkt.sent_time + loss_delay
                if pn <= pn_limit or due <= now:
                    del packets[pn]
                    lost.append(pkt)
                else:
                    pending.append(pn)
                    if loss_time is None or due < loss_time:
                        loss_time = due
        sp.loss_time = loss_time
        head = end - len(pending)
        if pending:
            order[head:end] = pending
        if head >= _COMPACT_MIN and 2 * head >= len(order):
            del order[:head]
            head = 0
        sp.head = head
        return lost

    def _check_skipped(
        self, sp: _Space, ranges_descending: Sequence[tuple[int, int]], largest: int
    ) -> None:
        """Raise PROTOCOL_VIOLATION if the ACK covers a skipped packet number; the skips it
        reached without covering are checked (later ACKs are not checked against them)."""
        lowest = ranges_descending[-1][0]
        watch = _NO_SKIP
        for pn in sp.skipped:
            if pn > largest:
                if pn < watch:
                    watch = pn
                continue
            if pn < lowest:
                continue
            for start, stop in ranges_descending:
                if start <= pn < stop:
                    raise ProtocolError(
                        ErrorCode.PROTOCOL_VIOLATION, "ACK of a packet number never sent"
                    )
        sp.skip_watch = watch

    def _forget_not_in_flight(self, sp: _Space) -> None:
        """Stop tracking the oldest outstanding packets not in flight, down to half the cap
        (amortised O(1) per packet sent). An ACK of one of them later finds nothing; a newer
        ACK-only packet carries a higher largest acknowledged anyway."""
        drop = sp.not_in_flight - self.max_not_in_flight // 2
        packets = sp.packets
        kept: list[int] = []
        for pn in sp.order[sp.head :]:
            if drop and not packets[pn].in_flight:
                del packets[pn]
                drop -= 1
                sp.not_in_flight -= 1
                self.packets_forgotten += 1
            else:
                kept.append(pn)
        sp.order[sp.head :] = kept

    def _on_lost(self, sp: _Space, lost: list[SentPacket], now: float) -> None:
        mds = self._cc.max_datagram_size
        for pkt in lost:
            if pkt.size > mds:  # a path MTU probe (or a size given up): not congestion
                lost = self._drop_oversize(sp, lost, mds)
                if not lost:
                    return
                break
        in_flight_bytes = 0
        in_flight_count = 0
        eliciting = 0
        newest_sent = -math.inf
        for pkt in lost:
            if pkt.in_flight:
                in_flight_bytes += pkt.size
                in_flight_count += 1
                if pkt.ack_eliciting:
                    eliciting += 1
                if pkt.sent_time > newest_sent:
                    newest_sent = pkt.sent_time
        self.bytes_in_flight -= in_flight_bytes
        sp.ack_eliciting_in_flight -= eliciting
        sp.not_in_flight -= len(lost) - in_flight_count
        self.packets_lost += in_flight_count
        self.bytes_lost += in_flight_bytes
        reduced = False
        if self._packet_cc is not None:
            self._packet_cc.on_packets_lost(lost, now, self.bytes_in_flight)
        elif in_flight_count and (self._clusters is None or self._clustered(lost)):
            # One congestion event, for the newest lost packet in flight.
            reduced = self._cc.on_congestion_event(newest_sent, now)
        if in_flight_count:
            pns = [pkt.pn for pkt in lost if pkt.in_flight]
            self._spurious.on_lost(lost[0].space, pns, sp.largest_acked, reduced)
        if self._persistent_congestion(sp, lost):
            self._spurious.forget_episode()
            self.persistent_congestion_events += 1
            self.cc.on_persistent_congestion()
            self.rtt.reset_min_rtt()

    def _drop_oversize(self, sp: _Space, lost: list[SentPacket], mds: int) -> list[SentPacket]:
        """RFC 9000 14.4: lost packets larger than the datagram size (PMTU probes) leave
        flight and count as lost, without a congestion response; returns the others."""
        kept: list[SentPacket] = []
        for pkt in lost:
            if pkt.size <= mds:
                kept.append(pkt)
            elif pkt.in_flight:
                self.bytes_in_flight -= pkt.size
                sp.ack_eliciting_in_flight -= pkt.ack_eliciting
                self.packets_lost += 1
                self.bytes_lost += pkt.size
            else:
                sp.not_in_flight -= 1
        return kept

    def _clustered(self, lost: list[SentPacket]) -> bool:
        """Feed the loss filter; True if any of these losses is part of a cluster."""
        clusters = self._clusters
        assert clusters is not None
        clustered = False
        for pkt in lost:
            if pkt.in_flight and clusters.add(pkt.pn):
                clustered = True
        return clustered

    def _persistent_congestion(self, sp: _Space, lost: list[SentPacket]) -> bool:
        """RFC 9002 7.6.2 within the acknowledged space: two ack-eliciting packets sent
        after the first RTT sample, lost with no packet number between them acknowledged
        (a hole in the lost run ends it, unless it is a skipped number: never sent),
        sent further apart than the congestion period."""
        first_sample = self.rtt.first_rtt_sample
        if first_sample is None:
            return False
        rtt = self.rtt
        period = (
            rtt.smoothed_rtt + max(4 * rtt.rttvar, TIMER_GRANULARITY) + self.max_ack_delay
        ) * PERSISTENT_CONGESTION_THRESHOLD
        start: float | None = None
        prev_pn = -2
        for pkt in lost:
            if pkt.pn != prev_pn + 1 and not (pkt.pn == prev_pn + 2 and prev_pn + 1 in sp.skipped):
                start = None
            prev_pn = pkt.pn
            if not pkt.ack_eliciting or pkt.sent_time <= first_sample:
                continue
            if start is None:
                start = pkt.sent_time
            elif pkt.sent_time - start > period:
                return True
        return False


def _outside_recovery(acked: list[SentPacket], recovery_start: float) -> tuple[int, float]:
    """In-flight bytes of ``acked`` sent after ``recovery_start``, and the newest send time."""
    total = 0
    newest = -math.inf
    for pkt in acked:
        if pkt.in_flight and pkt.sent_time > recovery_start:
            total += pkt.size
            if pkt.sent_time > newest:
                newest = pkt.sent_time
    return total, newest

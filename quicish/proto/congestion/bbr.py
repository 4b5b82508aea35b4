"""BBR congestion control, version 3 (draft-ietf-ccwg-bbr).

BBR keeps a model of the path: the bottleneck bandwidth (``max_bw``, the windowed maximum
of delivery-rate samples over the last two ProbeBW cycles) and the propagation delay
(``min_rtt``, the minimum over 10 s). It paces at ``pacing_gain * bw`` and keeps at most
``cwnd_gain * bw * min_rtt`` (plus an allowance for ACK aggregation) in flight. Random loss
does not shrink the window by itself: only a loss rate above 2% in a round of probing sets
the upper bound ``inflight_hi``, and loss outside probing lowers the short-term bounds
``bw_lo``/``inflight_lo`` by at most 30% per round.

States: Startup (pacing gain 2.77 until the bandwidth stops growing by 25% for three
rounds, or loss is high), Drain (empty the queue Startup built), ProbeBW in four phases
(DOWN: pace below the estimate until the queue is gone; CRUISE; REFILL: one round at the
estimate; UP: probe for more with a growing ``inflight_hi``), and ProbeRTT (every 5 s
without a new minimum RTT: half the BDP in flight for 200 ms and a round).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from ..loss_clusters import NO_CLUSTERS, LossClusters
from . import bbr_params as P
from .bbr_sending import BbrSending
from .delivery_rate import DeliveryRateSampler, RateSample, WindowedMax

if TYPE_CHECKING:
    from ..rtt import RttEstimator
    from .delivery_rate import StampedPacket


class Bbr(BbrSending):
    """BBRv3 over plain byte counts; sans-IO, fed packets by loss recovery.

    ``seed``: the randomness of the wait between bandwidth probes (deterministic runs).
    ``loss_tolerant`` (default; False: the draft as written) tells the path's own random
    loss from congestion, where the draft takes any loss above 2% as congestion:

    - the path's own loss rate (``path_loss_rate``) is learnt from the rounds outside
      probes that had no queue, and the 2% threshold becomes that rate plus three standard
      deviations of it over the packets judged (``loss_thresh``), up to 15%;
    - losses in clusters (``loss_clusters.py``) are a full drop-tail queue's: about three
      within a few packets. A flight sets ``inflight_hi`` only if its loss is above the
      threshold, above two packets and clustered; a round outside probing lowers
      ``bw_lo``/``inflight_lo`` only if two rounds in a row were so;
    - a loss while the RTT shows a queue (1.5x ``min_rtt`` and 4 ms above it) in a state
      that builds none of its own (CRUISE, REFILL) is another flow's full queue: that round
      lowers the short-term bounds by 10% at once (not below half ``max_bw``) and
      (``competing`` this cycle or the last; then DOWN's losses count too) ``inflight_hi``
      by 40% once per episode, as a loss-based flow would give way; for two cycles after
      it, a sample below 1.2x ``min_rtt`` (a trough the other flow's cut left) does not go
      into ``max_bw``;
    - another flow that keeps a queue standing (the lowest RTT of calm rounds 1.2x
      ``min_rtt``, ``competing``): BBR competes as a loss-based flow (no CRUISE headroom,
      ``inflight_hi`` +1 packet a round), and its probes
      measure their own queue over the RTT before them (docs/congestion.md).
    """

    __slots__ = P.SLOTS
    name: ClassVar[str] = "bbr"
    packet_aware: ClassVar[bool] = True

    def __init__(
        self,
        max_datagram_size: int,
        *,
        seed: int | None = None,
        loss_tolerant: bool = True,
        round_median_bw: bool = True,
    ) -> None:
        super().__init__(max_datagram_size)
        self.loss_tolerant = loss_tolerant
        # From the first bandwidth probe on, max_bw takes one value per round, the median
        # of its samples (None: every sample, as the draft); see _end_rate_round.
        self._round_rates: list[float] | None = [] if round_median_bw else None
        self._medians_only = False  # (the first ProbeBW_UP has ended)
        self._best_median = 0.0  # the largest round median before that
        # The cycle in which a loss last came with another flow's queue (loss_tolerant).
        # Sharing a queue, BBR's samples measure its share, which its loss responses
        # hold down; round medians then followed the share down cycle after cycle (BBR
        # took 0.11-0.35 of a link shared with picoquic's CUBIC, 0.30-0.50 before): for
        # two cycles after such a loss every sample counts again.
        self._queued_cycle = -1
        # Losses of up to this many bytes in one flight are noise to the inflight_hi test
        # (with 40 packets in flight one random loss is already above 2%).
        self._loss_noise = P.loss_noise(max_datagram_size) if loss_tolerant else 0
        self.clusters = NO_CLUSTERS  # the cluster test (loss_tolerant); made at a loss
        # ``sampler.sent`` when the last clustered loss was seen
        self._cluster_index = -1 if loss_tolerant else 1 << 62
        self._round_clustered = not loss_tolerant
        self._round_queued = False  # a loss this round came with a queue built up
        self._latest_rtt = 0.0
        # The lowest RTT of the round in progress and of the last one; at a probe's start,
        # the RTT before it (loss_tolerant): see _start_probe_up.
        self._round_min_rtt = math.inf
        self._last_round_min_rtt = math.inf
        self.probe_base_rtt = 0.0
        # Another flow keeps a standing queue (loss_tolerant): the lowest RTT of the last
        # calm rounds (CRUISE, REFILL: BBR paces at its estimate, no queue of its own) stayed
        # above min_rtt. See _judge_floor.
        self.competing = False
        self._floor_rounds = 0
        self._competing_cycle = -1  # the cycle in which ``competing`` last held
        self._round_cwnd_limited = False  # an ACK of the round found the window full
        # ``sampler.sent`` at the last such cut: packets sent before it, with more in
        # flight, do not raise inflight_hi back (_adapt_upper_bounds)
        self._hi_cut_index = -1
        self._round_new_episode = False  # a queued loss this round was sent after it
        self._floor_skip = 0  # calm rounds not judged (after ProbeRTT)
        self._calm_since = 0  # ``sampler.sent`` when ProbeBW_DOWN, CRUISE or REFILL began
        self._last_round_high = False  # the last round's loss rate was too high
        # The loss rate of rounds without a queue (outside probes): the path's own, random
        # loss, which the loss threshold must stay above (loss_tolerant).
        self.path_loss_rate = 0.0
        self._path_lost = 0.0
        self._path_sent = 0.0
        # The share of what is sent outside probes that the path loses with no queue
        # (rounds of ProbeBW_DOWN and CRUISE; loss_tolerant): the pacing rate makes it up.
        self.send_loss_rate = 0.0
        self._send_lost = 0.0
        self._send_total = 0.0
        self.min_pipe_cwnd = self.minimum_window = P.packets(4, max_datagram_size)
        self.sampler = DeliveryRateSampler()
        self._random = P.SHARED_RANDOM if seed is None else random.Random(seed)
        self.state = P.STARTUP
        self.pacing_gain = P.STARTUP_PACING_GAIN
        self.cwnd_gain = P.STARTUP_CWND_GAIN
        self.pacing_rate: float | None = None
        # the model
        self.max_bw = 0.0
        self._max_bw_filter = WindowedMax(P.MAX_BW_FILTER_LEN)
        self.cycle_count = 0
        self.bw = 0.0  # min(max_bw, bw_lo)
        self.min_rtt = math.inf
        self.min_rtt_stamp = 0.0
        self.probe_rtt_min_delay = math.inf
        self.probe_rtt_min_stamp = 0.0
        self.extra_acked = 0.0
        self._extra_acked_filter = WindowedMax(P.EXTRA_ACKED_FILTER_LEN)
        self._extra_interval_start = 0.0
        self._extra_delivered = 0
        # bounds
        self.inflight_hi = math.inf
        self.inflight_lo = math.inf
        self.bw_lo = math.inf
        self.bw_latest = 0.0
        self.inflight_latest = 0
        # rounds
        self.round_count = 0
        self.round_start = False
        self._next_round_delivered = 0
        self._loss_round_delivered = 0
        self.loss_round_start = False
        self.loss_in_round = False
        self.lost_in_round = 0  # packets lost in the current loss round
        self._round_lost = 0  # bytes lost in the current loss round (outside probes)
        self._round_lost_all = 0  # bytes lost in the current loss round
        self._round_start_delivered = 0
        # ``delivered`` when the last probe (Startup, ProbeBW_UP) ended: packets sent before
        # are the probe's losses, answered by inflight_hi, not by the short-term bounds
        self._probe_end_delivered = 0
        # Startup exit
        self.full_bw = 0.0
        self.full_bw_count = 0
        self.full_bw_now = False
        self.filled_pipe = False
        # ProbeBW
        self.cycle_stamp = 0.0
        self.ack_phase = P.ACKS_INIT
        self.bw_probe_wait = P.PROBE_WAIT_BASE
        self.rounds_since_bw_probe = 0
        self.bw_probe_samples = False
        self.bw_probe_up_rounds = 0
        self.bw_probe_up_acks = 0
        self.probe_up_cnt = math.inf
        # ProbeRTT
        self.probe_rtt_done_stamp = 0.0
        self.probe_rtt_round_done = False
        self.probe_rtt_expired = False
        self.prior_cwnd = 0
        self.idle_restart = False
        self.cwnd_limited = False
        self.state_changes: list[tuple[float, str]] = P.NO_CHANGES  # (time, state), tests
        self._now = 0.0

    # ---- queries -------------------------------------------------------------------------
    @property
    def in_slow_start(self) -> bool:
        return self.state == P.STARTUP

    @property
    def state_name(self) -> str:
        return P.STATE_NAMES[self.state]

    def bdp(self, gain: float = 1.0, bw: float | None = None) -> float:
        """``gain`` x the estimated bandwidth-delay product (bytes); the initial window
        while no RTT is known."""
        if self.min_rtt == math.inf:
            return float(self.initial_window)
        return gain * (self.bw if bw is None else bw) * self.min_rtt

    def _inflight_with_headroom(self) -> float:
        hi = self.inflight_hi
        if hi == math.inf or self.competing:
            return hi
        # (max() and min() of two written out here and on the per-ACK path: the same
        # value, the same operand on ties, without a builtin call)
        headroom = P.HEADROOM * hi
        mds = self.max_datagram_size
        left = hi - (headroom if headroom > mds else mds)
        return left if self.min_pipe_cwnd <= left else self.min_pipe_cwnd

    def _set_state(self, state: int) -> None:
        self.state = state
        if (changes := self.state_changes) is P.NO_CHANGES:
            changes = self.state_changes = []
        changes.append((self._now, P.STATE_NAMES[state]))

    # ---- interface -------------------------------------------------------------------------
    def set_max_datagram_size(self, size: int) -> None:
        """Path MTU discovery changed the datagram size: the floors counted in packets
        follow it."""
        super().set_max_datagram_size(size)
        self.min_pipe_cwnd = self.minimum_window = 4 * size
        if self.loss_tolerant:
            self._loss_noise = P.LOSS_NOISE_PACKETS * size

    def on_packets_lost(
        self, lost: Sequence[StampedPacket], now: float, bytes_in_flight: int
    ) -> None:
        self._now = now
        sampler = self.sampler
        any_lost = False
        state = self.state
        queued = (
            self.loss_tolerant
            and (state in P.CALM_STATES or (state == P.PROBE_DOWN and self._competed()))
            and self._queue_built()
        )
        calm_since = self._calm_since
        for pkt in lost:
            if not pkt.in_flight:
                continue
            sampler.on_lost(pkt.size)
            self.lost_in_round += 1
            stamp = self.sampler.stamp_of(pkt)
            clustered = False
            queued_loss = False
            if stamp is not None and self.loss_tolerant:
                # (a packet sent before the calm began met our own queue)
                queued_loss = queued and stamp.sent_index >= calm_since
                clustered = self._cluster_test(stamp.sent_index) or queued_loss
                if queued_loss:
                    self._cluster_index = sampler.sent
            self._handle_lost_packet(pkt)
            self._round_lost_all += pkt.size
            if stamp is None or stamp.delivered >= self._probe_end_delivered:
                any_lost = True
                self._round_lost += pkt.size
                if clustered:
                    self._round_clustered = True
                if queued_loss:
                    self._round_queued = True
                    if stamp is not None and stamp.sent_index > self._hi_cut_index:
                        self._round_new_episode = True
        if any_lost:
            self.loss_in_round = True
            self.congestion_events += 1

    def on_packets_acked(
        self,
        acked: Sequence[StampedPacket],
        now: float,
        rtt: RttEstimator,
        prior_in_flight: int,
        bytes_in_flight: int,
    ) -> None:
        self._now = now
        self._latest_rtt = rtt.latest_rtt
        rs = self.sampler.on_acked(acked, now)
        if rs.prior_delivered < 0:
            return
        if rs.interval < self.min_rtt and rs.interval < rtt.min_rtt:
            rs.delivery_rate = 0.0  # shorter than a round trip: would overestimate
        self.cwnd_limited = limited = prior_in_flight + 3 * self.max_datagram_size >= self.cwnd
        if limited:
            self._round_cwnd_limited = True
        self._update_model_and_state(rs, now, bytes_in_flight)
        self._set_pacing_rate(rtt)
        self._set_cwnd(rs)
        if self.idle_restart and rs.newly_acked:
            self.idle_restart = False

    def on_ack(
        self,
        acked_bytes: int,
        largest_sent_time: float,
        now: float,
        rtt: RttEstimator,
        prior_in_flight: int | None = None,
    ) -> None:
        return None  # packet-aware: see on_packets_acked

    def _on_ack(
        self, acked_bytes: int, largest_sent: float, now: float, rtt: RttEstimator, limited: bool
    ) -> None:
        return None

    def _on_congestion(self, now: float) -> None:
        return None  # ECN-CE: BBRv3 as specified does not react (loss does, via the bounds)

    def _on_persistent_congestion(self) -> None:
        # RFC 9002 collapsed cwnd; the model rebuilds it through packet conservation.
        self.prior_cwnd = max(self.prior_cwnd, self.cwnd)
        self.inflight_lo = math.inf
        self.bw_lo = math.inf

    # ---- the model -------------------------------------------------------------------------
    def _update_model_and_state(self, rs: RateSample, now: float, inflight: int) -> None:
        # (the draft's steps in its order; a step that would return at once is not called)
        self._update_latest_delivery_signals(rs)
        self._update_congestion_signals(rs)
        self._update_ack_aggregation(rs, now)
        if self.round_start:
            self._check_full_bw_reached(rs)
        if self.state == P.STARTUP:
            self._check_startup_done(rs)
        if self.state == P.DRAIN and inflight <= self.bdp():  # (Startup may just have ended)
            self._start_probe_down(now)
        if self.filled_pipe and self.state in P.PROBE_BW_STATES:
            self._update_probe_bw_phase(rs, now, inflight)
        self._update_min_rtt(rs, now)
        if self.probe_rtt_expired or self.state == P.PROBE_RTT:
            self._check_probe_rtt(now, inflight)
        if self.loss_round_start:  # advance the latest delivery signals
            self.bw_latest = rs.delivery_rate
            self.inflight_latest = rs.delivered
        max_bw, bw_lo = self.max_bw, self.bw_lo
        self.bw = bw_lo if bw_lo < max_bw else max_bw

    def _update_latest_delivery_signals(self, rs: RateSample) -> None:
        self.loss_round_start = False
        if rs.delivery_rate > self.bw_latest:
            self.bw_latest = rs.delivery_rate
        if rs.delivered > self.inflight_latest:
            self.inflight_latest = rs.delivered
        if rs.prior_delivered >= self._loss_round_delivered:
            self._loss_round_delivered = self.sampler.delivered
            self.loss_round_start = True

    def _update_congestion_signals(self, rs: RateSample) -> None:
        # the round counter
        self.round_start = False
        if rs.prior_delivered >= self._next_round_delivered:
            self._next_round_delivered = self.sampler.delivered
            self.round_count += 1
            self.rounds_since_bw_probe += 1
            self.round_start = True
            self._last_round_min_rtt = self._round_min_rtt
            self._round_min_rtt = math.inf
            if self.loss_tolerant and self._medians_only:
                self._judge_floor()
            self._round_cwnd_limited = False
        if 0.0 <= rs.rtt < self._round_min_rtt:
            self._round_min_rtt = rs.rtt
        # max_bw
        rates = self._round_rates
        if rates is not None and self.round_start and rates:
            self._end_rate_round(rates)
        if rs.delivery_rate > 0.0 and (rs.delivery_rate >= self.max_bw or not rs.is_app_limited):
            # (a sample below the RTT floor is a trough another flow's cut left)
            if rates is not None and not (
                self._competing_cycle >= 0
                and rs.rtt < P.COMPETING_RTT_FACTOR * self.min_rtt
                and self._contended()
                and self._competed()
            ):
                rates.append(rs.delivery_rate)
            if not self._medians_only:
                self.max_bw = self._max_bw_filter.update(self.cycle_count, rs.delivery_rate)
        if not self.loss_round_start:
            return
        # Once per round: cut the short-term bounds if this round had (enough) loss.
        lossy, queued = self.loss_in_round, False
        delivered = self.sampler.delivered
        if self.loss_tolerant:
            lossy, queued = self._judge_round(lossy, delivered)
            if queued:
                self._queued_cycle = self.cycle_count
        self._round_start_delivered = delivered
        self._round_lost = 0
        new_episode, self._round_new_episode = self._round_new_episode, False
        if lossy and self.state not in (P.STARTUP, P.PROBE_REFILL, P.PROBE_UP):
            if self.bw_lo == math.inf:
                self.bw_lo = self.max_bw
            if self.inflight_lo == math.inf:
                self.inflight_lo = self.cwnd
            if queued:  # another flow's full queue: give way as a loss-based flow would
                latest_bw = self.bw_latest or self.bw_lo
                latest_inflight = self.inflight_latest or self.inflight_lo
                self.bw_lo = max(P.QUEUED_BETA * min(self.bw_lo, latest_bw), 0.5 * self.max_bw)
                self.inflight_lo = P.QUEUED_BETA * min(self.inflight_lo, latest_inflight)
                if new_episode and self.inflight_hi < math.inf and self._competed():
                    # as a loss-based flow: its cut too (its growth in CRUISE), also when
                    # ``competing`` has lapsed (the other flow's cut drained the queue)
                    self.inflight_hi = max(
                        P.COMPETING_BETA * self.inflight_hi, float(self.min_pipe_cwnd)
                    )
                    self._hi_cut_index = self.sampler.sent
            else:
                self.bw_lo = max(self.bw_latest, P.BETA * self.bw_lo)
                self.inflight_lo = max(self.inflight_latest, P.BETA * self.inflight_lo)
        self.loss_in_round = False

    def _end_rate_round(self, rates: list[float]) -> None:
        """A round ended: the median of its rate samples (the largest while contended)
        goes into the filter. One sample spans a round trip
        between two ACK arrivals, so a stall of the path or of either end (an ACK clump)
        cuts its interval and raises it by the stall's share of the round trip: the max of
        every sample over two cycles read 1-10% above the bottleneck through the relay,
        and ProbeBW_CRUISE kept a standing queue. The round's median does not take those
        outliers, but lags a rate that grows: Startup's doubles per round, and when Startup
        ends on loss the link has been full for less than a round, so its estimate is low.
        Until the first ProbeBW_UP ends every sample counts (the draft), then the medians
        only, the largest one so far first (unless contended)."""
        rates.sort()
        value = rates[-1] if self._contended() else rates[len(rates) // 2]
        rates.clear()
        if self._medians_only:
            self.max_bw = self._max_bw_filter.update(self.cycle_count, value)
        elif value > self._best_median and self.filled_pipe:
            self._best_median = value

    def _judge_floor(self) -> None:
        """A round ended: in a calm state, its lowest RTT tells whether another flow keeps
        a queue standing (a loss-based flow fills the queue until it loses, and a cut of
        30% need not empty it). While one does, BBR competes for its share as that flow
        does: no headroom in CRUISE, and ``inflight_hi`` grows by a packet a round there."""
        if self.state not in (P.PROBE_CRUISE, P.PROBE_REFILL):
            return
        if self._floor_skip:
            self._floor_skip -= 1  # (ProbeRTT drained BBR's own share of the queue)
            return
        queued = self._last_round_min_rtt - self.min_rtt
        if queued > P.QUEUED_RTT_FLOOR and queued > (P.COMPETING_RTT_FACTOR - 1.0) * self.min_rtt:
            # (to begin, the window must have held BBR back: a sender held by its pacing
            # rate can have a queue of its own)
            if self.competing or self._round_cwnd_limited:
                self._floor_rounds += 1
        else:
            self._floor_rounds = 0
        self.competing = self._floor_rounds >= P.COMPETING_ROUNDS
        if self.competing:
            self._competing_cycle = self.cycle_count
        if (
            self.competing
            and self.state == P.PROBE_CRUISE
            and self.cwnd_limited
            and self.inflight_hi < math.inf
        ):
            self.inflight_hi += self.max_datagram_size

    def _competed(self) -> bool:
        """``competing`` held in this cycle or the last (a cut that drains it lapses)."""
        return self.competing or (
            self._competing_cycle >= 0
            and self.cycle_count - self._competing_cycle < P.MAX_BW_FILTER_LEN
        )

    def _contended(self) -> bool:
        """A loss came with another flow's queue in this cycle or the last: every sample
        counts (see ``_queued_cycle``)."""
        return (
            self._queued_cycle >= 0 and self.cycle_count - self._queued_cycle < P.MAX_BW_FILTER_LEN
        )

    def _judge_round(self, lossy: bool, delivered: int) -> tuple[bool, bool]:
        """(loss_tolerant) Whether the round that ended was lossy, and whether its loss
        came with another flow's queue; the path's own loss rate learns from it."""
        lost = self._round_lost
        total = delivered - self._round_start_delivered + lost
        queued = self._round_queued
        if lossy:
            # Without a queue behind it, the loss rate must stay too high for two rounds.
            high = self._round_clustered and lost > self.loss_thresh(total) * total
            lossy = queued or (high and self._last_round_high)
            self._last_round_high = high
        else:
            self._last_round_high = False
        lost_all = self._round_lost_all
        self._round_lost_all = 0
        if total > 0 and not queued and self.state in P.QUIET_STATES:
            self._path_lost = self._path_lost * P.PATH_LOSS_DECAY + lost_all
            self._path_sent = self._path_sent * P.PATH_LOSS_DECAY + total - lost + lost_all
            self.path_loss_rate = self._path_lost / self._path_sent
            if self.state in (P.PROBE_DOWN, P.PROBE_CRUISE):
                self._send_lost = self._send_lost * P.PATH_LOSS_DECAY + lost
                self._send_total = self._send_total * P.PATH_LOSS_DECAY + total
                self.send_loss_rate = min(self._send_lost / self._send_total, P.MAX_LOSS_THRESH)
        self._round_clustered = self._round_queued = False
        return lossy, queued

    def _update_ack_aggregation(self, rs: RateSample, now: float) -> None:
        interval = now - self._extra_interval_start
        expected = self.bw * interval
        if self._extra_delivered <= expected:
            self._extra_delivered = 0
            self._extra_interval_start = now
            expected = 0.0
        self._extra_delivered += rs.newly_acked
        extra = self._extra_delivered - expected
        cwnd = float(self.cwnd)
        if cwnd < extra:
            extra = cwnd
        self.extra_acked = self._extra_acked_filter.update(
            self.round_count, extra if extra >= 0.0 else 0.0
        )

    def _update_min_rtt(self, rs: RateSample, now: float) -> None:
        # (no sample yet: nothing expires; the clock need not start at 0)
        expired = (
            self.probe_rtt_min_delay != math.inf
            and now > self.probe_rtt_min_stamp + P.PROBE_RTT_INTERVAL
        )
        self.probe_rtt_expired = expired  # (before the refresh below: ProbeRTT is due)
        if rs.rtt >= 0.0 and (rs.rtt < self.probe_rtt_min_delay or expired):
            self.probe_rtt_min_delay = rs.rtt
            self.probe_rtt_min_stamp = now
        min_rtt_expired = now > self.min_rtt_stamp + P.MIN_RTT_FILTER_LEN
        if self.probe_rtt_min_delay < self.min_rtt or min_rtt_expired:
            self.min_rtt = self.probe_rtt_min_delay
            self.min_rtt_stamp = self.probe_rtt_min_stamp

    # ---- Startup and Drain -----------------------------------------------------------------
    def _reset_full_bw(self) -> None:
        self.full_bw = 0.0
        self.full_bw_count = 0
        self.full_bw_now = False

    def _check_full_bw_reached(self, rs: RateSample) -> None:
        if self.full_bw_now or not self.round_start or rs.is_app_limited:
            return
        if rs.delivery_rate >= self.full_bw * P.FULL_BW_THRESH:
            self._reset_full_bw()
            self.full_bw = rs.delivery_rate
            return
        self.full_bw_count += 1
        self.full_bw_now = self.full_bw_count >= P.FULL_BW_COUNT
        if self.full_bw_now:
            self.filled_pipe = True

    def _check_startup_done(self, rs: RateSample) -> None:
        if self.state != P.STARTUP:
            return
        if self.loss_round_start:
            # Startup ends on heavy loss: enough lost packets in a round and a loss rate
            # above the threshold.
            if (
                self.lost_in_round >= P.STARTUP_FULL_LOSS_COUNT
                and rs.lost > P.LOSS_THRESH * rs.tx_in_flight
            ):
                self.filled_pipe = True
                self.inflight_hi = max(self.bdp(), float(self.inflight_latest))
            self.lost_in_round = 0
        if self.filled_pipe:
            self._probe_end_delivered = self.sampler.delivered
            self._set_state(P.DRAIN)
            self.pacing_gain = P.DRAIN_PACING_GAIN
            self.cwnd_gain = P.STARTUP_CWND_GAIN

    # ---- ProbeBW ------------------------------------------------------------------------------
    def _start_round(self) -> None:
        self._next_round_delivered = self.sampler.delivered

    def _start_probe_down(self, now: float) -> None:
        if self.state == P.PROBE_UP:
            self._probe_end_delivered = self.sampler.delivered
            if self._round_rates is not None and not self._medians_only:
                self._medians_only = True
                if not self._contended():  # (else the samples' maximum stands)
                    self._max_bw_filter.reset()
                    self._max_bw_filter.update(self.cycle_count, self._best_median or self.max_bw)
        self.bw_latest = 0.0  # reset congestion signals
        self.inflight_latest = 0
        self.loss_in_round = False
        self.probe_up_cnt = math.inf
        self.bw_probe_wait = P.PROBE_WAIT_BASE + self._random.random()
        self.rounds_since_bw_probe = 0
        self.cycle_stamp = now
        self.ack_phase = P.ACKS_PROBE_STOPPING
        self._start_round()
        self.cycle_count += 1  # advance the max_bw filter: one slot per cycle
        self._calm_since = self.sampler.sent  # (DOWN's losses can be a queue's: competed)
        self.max_bw = self._max_bw_filter.expire(self.cycle_count) or self.max_bw
        self._set_state(P.PROBE_DOWN)
        self.pacing_gain = P.PROBE_DOWN_PACING_GAIN
        self.cwnd_gain = P.DEFAULT_CWND_GAIN

    def _start_probe_cruise(self) -> None:
        self._calm_since = self.sampler.sent
        self._set_state(P.PROBE_CRUISE)
        self.pacing_gain = 1.0
        self.cwnd_gain = P.DEFAULT_CWND_GAIN

    def _start_probe_refill(self) -> None:
        self.bw_lo = math.inf  # reset the short-term bounds
        self.inflight_lo = math.inf
        self.bw_probe_up_rounds = 0
        self.bw_probe_up_acks = 0
        self.ack_phase = P.ACKS_REFILLING
        self._calm_since = self.sampler.sent
        self._start_round()
        self._set_state(P.PROBE_REFILL)
        self.pacing_gain = 1.0
        self.cwnd_gain = P.DEFAULT_CWND_GAIN

    def _start_probe_up(self, rs: RateSample, now: float) -> None:
        self.ack_phase = P.ACKS_PROBE_STARTING
        self._start_round()
        self._reset_full_bw()
        self.full_bw = rs.delivery_rate
        self.cycle_stamp = now
        self.probe_base_rtt = self.min_rtt
        if self.loss_tolerant and self._medians_only and self._last_round_min_rtt < math.inf:
            # The RTT of the round before (REFILL, at the estimate: no queue of BBR's own
            # once round medians rule) is the propagation delay plus the queue other flows
            # keep standing.
            self.probe_base_rtt = max(self.min_rtt, min(self._last_round_min_rtt, 2 * self.min_rtt))
        self._set_state(P.PROBE_UP)
        self.pacing_gain = P.PROBE_UP_PACING_GAIN
        self.cwnd_gain = P.PROBE_UP_CWND_GAIN
        self._raise_inflight_hi_slope()

    def _raise_inflight_hi_slope(self) -> None:
        growth = self.max_datagram_size << self.bw_probe_up_rounds
        self.bw_probe_up_rounds = min(self.bw_probe_up_rounds + 1, 30)
        self.probe_up_cnt = max(self.cwnd / growth, 1.0)

    def _probe_inflight_hi_upward(self, rs: RateSample) -> None:
        if not self.cwnd_limited or self.cwnd < self.inflight_hi:
            return
        self.bw_probe_up_acks += rs.newly_acked
        per = self.probe_up_cnt * self.max_datagram_size
        if self.bw_probe_up_acks >= per:
            delta = int(self.bw_probe_up_acks // per)
            self.bw_probe_up_acks -= int(delta * per)
            self.inflight_hi += delta * self.max_datagram_size
        if self.round_start:
            self._raise_inflight_hi_slope()

    def _update_probe_bw_phase(self, rs: RateSample, now: float, inflight: int) -> None:
        if not self.filled_pipe or self.state not in P.PROBE_BW_STATES:
            return
        self._adapt_upper_bounds(rs, now)
        state = self.state
        if state not in P.PROBE_BW_STATES:
            return
        if state == P.PROBE_DOWN:
            if self._time_to_probe_bw(now):
                return
            if inflight <= self._inflight_with_headroom() and inflight <= self._drained_bdp():
                self._start_probe_cruise()
        elif state == P.PROBE_CRUISE:
            self._time_to_probe_bw(now)
        elif state == P.PROBE_REFILL:
            if self.round_start:
                self.bw_probe_samples = True
                self._start_probe_up(rs, now)
        elif state == P.PROBE_UP and self._time_to_go_down(rs, now, inflight):
            self._start_probe_down(now)

    def _drained_bdp(self) -> float:
        """What is in flight once ProbeBW_DOWN has drained the probe's queue: the BDP, or
        (while contended) the BDP over the RTT before the probe, the queue other flows
        kept standing then being theirs."""
        if self.probe_base_rtt > self.min_rtt and (self.competing or self._contended()):
            return self.bdp() * (self.probe_base_rtt / self.min_rtt)
        return self.bdp()

    def _time_to_probe_bw(self, now: float) -> bool:
        if now - self.cycle_stamp <= self.bw_probe_wait:
            # (min(BDP in packets, MAX_RENO_ROUNDS), at least 1)
            reno_rounds = self.bdp() / self.max_datagram_size
            if reno_rounds > P.MAX_RENO_ROUNDS:
                reno_rounds = P.MAX_RENO_ROUNDS
            if self.rounds_since_bw_probe < (1 if reno_rounds < 1 else reno_rounds):
                return False
        self._start_probe_refill()
        return True

    def _time_to_go_down(self, rs: RateSample, now: float, inflight: int) -> bool:
        if self.cwnd_limited and self.cwnd >= self.inflight_hi:
            # Still growing inflight_hi: the bandwidth plateau check starts over.
            self._reset_full_bw()
            self.full_bw = rs.delivery_rate
        elif self.round_start:
            self._check_full_bw_reached(rs)
            if self.full_bw_now:
                return True
        # Queue built: a round trip at the probing gain and inflight beyond its BDP (over
        # the RTT before the probe: a queue other flows keep is not the probe's); while
        # competing, also the draft's allowance for sending in quanta (three, and two
        # packets). Without it an estimate of a few packets (Startup ended by another
        # flow's full queue) ended each probe after a round trip and took 20 s to reach
        # its share. (Alone, the longer probes' round medians read above the link.)
        base = self.bdp(P.PROBE_UP_PACING_GAIN) * (self.probe_base_rtt / self.min_rtt)
        if self.competing or self._contended():
            base += 3 * self._quantum() + 2 * self.max_datagram_size
        return now - self.cycle_stamp > self.min_rtt and inflight >= base

    def _adapt_upper_bounds(self, rs: RateSample, now: float) -> None:
        if self.ack_phase == P.ACKS_PROBE_STARTING and self.round_start:
            self.ack_phase = P.ACKS_PROBE_FEEDBACK
        if self.ack_phase == P.ACKS_PROBE_STOPPING and self.round_start:
            self.bw_probe_samples = False  # the probe's samples are all in
            self.ack_phase = P.ACKS_INIT
        if self._inflight_too_high(rs):
            if self.bw_probe_samples:
                self._handle_inflight_too_high(rs.is_app_limited, rs.tx_in_flight, now)
            return
        if self.inflight_hi == math.inf:
            return
        if rs.tx_in_flight > self.inflight_hi and rs.sent_index >= self._hi_cut_index:
            self.inflight_hi = float(rs.tx_in_flight)
        if self.state == P.PROBE_UP:
            self._probe_inflight_hi_upward(rs)

    # ---- loss ----------------------------------------------------------------------------------
    def _cluster_test(self, index: int) -> bool:
        """A loss of the ``index``-th packet sent; True if it is part of a cluster."""
        if (clusters := self.clusters) is NO_CLUSTERS:
            clusters = self.clusters = LossClusters()
        if found := clusters.add(index):
            self._cluster_index = self.sampler.sent  # packets sent by the time it was seen
        return found

    def _queue_built(self) -> bool:
        """The latest RTT sample shows a standing queue: losses now are a full queue's,
        not noise on the path."""
        queued = self._latest_rtt - self.min_rtt
        return queued > P.QUEUED_RTT_FLOOR and queued > (P.QUEUED_RTT_FACTOR - 1.0) * self.min_rtt

    def loss_thresh(self, size: float) -> float:
        """The loss rate above which ``size`` bytes sent (a flight, a round) are congestion:
        the draft's 2%, or (loss_tolerant) when higher, the path's own loss rate plus three
        standard deviations of what that rate gives over that many packets."""
        p = self.path_loss_rate
        if not self.loss_tolerant or p <= 0.0:
            return P.LOSS_THRESH
        packets = max(size / self.max_datagram_size, 1.0)
        return min(max(P.LOSS_THRESH, p + 3.0 * math.sqrt(p / packets)), P.MAX_LOSS_THRESH)

    def _inflight_too_high(self, rs: RateSample) -> bool:
        # (the cheap tests first: most ACKs have no loss since their packet left)
        return (
            rs.lost > self._loss_noise
            and self._cluster_index > rs.sent_index  # a cluster seen since it was sent
            and rs.lost > rs.tx_in_flight * self.loss_thresh(rs.tx_in_flight)
        )

    def _handle_lost_packet(self, pkt: StampedPacket) -> None:
        if not self.bw_probe_samples:
            return
        stamp = self.sampler.stamp_of(pkt)
        if stamp is None:
            return
        tx_in_flight = stamp.tx_in_flight
        lost = self.sampler.lost - stamp.lost
        thresh = self.loss_thresh(tx_in_flight)
        if lost <= tx_in_flight * thresh or lost <= self._loss_noise:
            return
        if self._cluster_index <= stamp.sent_index:
            return  # scattered loss only (loss_tolerant)
        # The inflight at which the loss rate crossed the threshold.
        size = pkt.size
        inflight_prev = tx_in_flight - size
        lost_prev = lost - size
        lost_prefix = (thresh * inflight_prev - lost_prev) / (1.0 - thresh)
        inflight = int(inflight_prev + lost_prefix)
        self._handle_inflight_too_high(stamp.app_limited, inflight, self._now)

    def _handle_inflight_too_high(self, app_limited: bool, tx_in_flight: int, now: float) -> None:
        self.bw_probe_samples = False
        if not app_limited:
            self.inflight_hi = max(float(tx_in_flight), self.bdp() * P.BETA)
        if self.state == P.PROBE_UP:
            self._start_probe_down(now)

    # ---- ProbeRTT ------------------------------------------------------------------------------
    def _probe_rtt_cwnd(self) -> float:
        return max(self.bdp(P.PROBE_RTT_CWND_GAIN), float(self.min_pipe_cwnd))

    def _check_probe_rtt(self, now: float, inflight: int) -> None:
        if self.state != P.PROBE_RTT and self.probe_rtt_expired and not self.idle_restart:
            self.prior_cwnd = self.cwnd
            self.probe_rtt_done_stamp = 0.0
            self.ack_phase = P.ACKS_PROBE_STOPPING
            self._start_round()
            self._set_state(P.PROBE_RTT)
            self.pacing_gain = 1.0
            self.cwnd_gain = P.PROBE_RTT_CWND_GAIN
        if self.state != P.PROBE_RTT:
            return
        self.sampler.mark_app_limited(inflight)
        if self.probe_rtt_done_stamp == 0.0 and inflight <= self._probe_rtt_cwnd():
            self.probe_rtt_done_stamp = now + P.PROBE_RTT_DURATION
            self.probe_rtt_round_done = False
            self._start_round()
        elif self.probe_rtt_done_stamp:
            if self.round_start:
                self.probe_rtt_round_done = True
            if self.probe_rtt_round_done and now > self.probe_rtt_done_stamp:
                self.probe_rtt_min_stamp = now
                self.cwnd = max(self.cwnd, self.prior_cwnd)
                self.bw_lo = math.inf
                self.inflight_lo = math.inf
                self._floor_skip = 2
                if self.filled_pipe:
                    self._start_probe_down(now)
                    self._start_probe_cruise()
                else:
                    self._set_state(P.STARTUP)
                    self.pacing_gain = P.STARTUP_PACING_GAIN
                    self.cwnd_gain = P.STARTUP_CWND_GAIN

    # ---- control parameters ------------------------------------------------------------------
    def _set_pacing_rate(self, rtt: RttEstimator) -> None:
        if self.bw > 0.0:
            rate = self.pacing_gain * self.bw * (1.0 - P.PACING_MARGIN)
            if self.send_loss_rate:
                # bw counts what arrived; of what is sent the path loses its own share
                rate /= 1.0 - self.send_loss_rate
        else:  # no sample yet: the initial window over the RTT, at the Startup gain
            srtt = rtt.smoothed_rtt if rtt.has_sample else 0.001
            rate = P.STARTUP_PACING_GAIN * self.initial_window / max(srtt, 0.001)
        current = self.pacing_rate
        if current is None or self.filled_pipe or rate > current:
            self.pacing_rate = rate

    def _quantum(self) -> float:
        """The send quantum: 1 ms at the pacing rate, two packets to 64 KB."""
        rate = self.pacing_rate or 0.0
        quantum = rate * 0.001
        two = 2.0 * self.max_datagram_size
        if two > quantum:
            quantum = two
        return 65536.0 if quantum > 65536.0 else quantum

    def _set_cwnd(self, rs: RateSample) -> None:
        quantum = self._quantum()
        state = self.state
        max_inflight = self.bdp(self.cwnd_gain) + self.extra_acked + 3 * quantum
        if state == P.STARTUP:
            max_inflight += 2 * quantum
        cwnd = float(self.cwnd)
        if self.filled_pipe:
            cwnd += rs.newly_acked
            if max_inflight < cwnd:
                cwnd = max_inflight
        elif cwnd < max_inflight or self.sampler.delivered < self.initial_window:
            cwnd += rs.newly_acked
        floor = float(self.min_pipe_cwnd)
        if floor > cwnd:
            cwnd = floor
        if state == P.PROBE_RTT:
            cwnd = min(cwnd, self._probe_rtt_cwnd())
        # the bounds of the model
        if state in (P.PROBE_DOWN, P.PROBE_REFILL, P.PROBE_UP):
            cap = self.inflight_hi
        elif state in (P.PROBE_RTT, P.PROBE_CRUISE):
            cap = self._inflight_with_headroom()
        else:
            cap = math.inf
        lo = self.inflight_lo
        if lo < cap:
            cap = lo
        if floor > cap:
            cap = floor
        self.cwnd = int(cap if cap < cwnd else cwnd)

    def __repr__(self) -> str:
        return (
            f"Bbr(state={self.state_name}, cwnd={self.cwnd}, bw={self.bw:.0f}, "
            f"min_rtt={self.min_rtt}, inflight_hi={self.inflight_hi})"
        )

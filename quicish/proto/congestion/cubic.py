"""CUBIC congestion control (RFC 9438) with optional HyStart++ slow start (RFC 9406).

Windows are in bytes; the RFC's formulas are in segments, so C is scaled by the maximum
datagram size: W_cubic(t) = C * mds * (t - K)^3 + W_max, K = cbrt((W_max - cwnd_epoch) / (C * mds)).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from .base import CongestionController

if TYPE_CHECKING:
    from ..rtt import RttEstimator

CUBIC_C = 0.4
CUBIC_BETA = 0.7
CUBIC_ALPHA = 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA)  # Reno-friendly additive factor

# HyStart++ constants (RFC 9406 section 4.3)
HS_MIN_RTT_THRESH = 0.004
HS_MAX_RTT_THRESH = 0.016
HS_MIN_RTT_DIVISOR = 8
HS_N_RTT_SAMPLE = 8
HS_CSS_GROWTH_DIVISOR = 4
HS_CSS_ROUNDS = 5


class Cubic(CongestionController):
    """CUBIC: concave/convex window growth around W_max, a Reno-friendly floor (W_est),
    fast convergence, multiplicative decrease by beta = 0.7.

    ``hystart``: use HyStart++ during the first slow start (leave it early when the RTT
    rises, through Conservative Slow Start) instead of growing until the first loss.
    """

    name: ClassVar[str] = "cubic"
    __slots__ = (
        "_hs_css_baseline", "_hs_css_rounds", "_hs_last_round_min", "_hs_round_min",
        "_hs_round_start", "_hs_samples", "_hs_seen_samples", "_last_ack_time", "_w",
        "cwnd_epoch", "cwnd_prior", "fast_convergence", "hystart", "in_css", "k", "t_epoch",
        "w_est", "w_max",
    )  # fmt: skip

    def __init__(
        self, max_datagram_size: int, *, hystart: bool = True, fast_convergence: bool = True
    ) -> None:
        super().__init__(max_datagram_size)
        self.fast_convergence = fast_convergence
        self._w = float(self.cwnd)  # the window with its fractional part
        self.w_max = 0.0  # bytes; 0 until the first congestion event or HyStart++ exit
        self.cwnd_prior = 0.0  # window just before the last reduction
        self.k = 0.0  # seconds
        self.t_epoch: float | None = None  # start of the current congestion avoidance stage
        self.cwnd_epoch = 0.0
        self.w_est = 0.0  # Reno-friendly estimate (bytes)
        self._last_ack_time: float | None = None
        # HyStart++ state
        self.hystart = hystart
        self.in_css = False  # Conservative Slow Start
        self._hs_round_start = -math.inf
        self._hs_last_round_min = math.inf
        self._hs_round_min = math.inf
        self._hs_samples = 0
        self._hs_seen_samples = -1
        self._hs_css_baseline = math.inf
        self._hs_css_rounds = 0

    # ---- formulas -------------------------------------------------------------------------
    def w_cubic(self, t: float) -> float:
        """W_cubic(t) in bytes, t seconds after the start of the current epoch."""
        d = t - self.k
        return CUBIC_C * self.max_datagram_size * d * d * d + self.w_max

    def _set_window(self, w: float) -> None:
        self._w = w
        self.cwnd = int(w)

    # ---- hooks ----------------------------------------------------------------------------
    def _on_ack(
        self, acked_bytes: int, largest_sent: float, now: float, rtt: RttEstimator, limited: bool
    ) -> None:
        last = self._last_ack_time
        self._last_ack_time = now
        slow_start = self._w < self.ssthresh
        if slow_start and self.hystart:
            self._hystart_sample(largest_sent, now, rtt)
            slow_start = self._w < self.ssthresh  # HyStart++ may just have ended it
        if not limited:
            # App-limited: no growth, and the cubic clock stops (RFC 9438 5.8).
            if self.t_epoch is not None and last is not None:
                self.t_epoch += now - last
            return
        if slow_start:
            inc = acked_bytes / HS_CSS_GROWTH_DIVISOR if self.in_css else acked_bytes
            self._set_window(self._w + inc)
            return
        self._congestion_avoidance(acked_bytes, now, rtt.smoothed_rtt)

    def _congestion_avoidance(self, acked_bytes: int, now: float, srtt: float) -> None:
        mds = self.max_datagram_size
        w = self._w
        if self.t_epoch is None:
            self.t_epoch = now
            self.cwnd_epoch = w
            self.w_est = w
            if self.w_max > w:
                self.k = ((self.w_max - w) / (CUBIC_C * mds)) ** (1.0 / 3.0)
            else:
                self.w_max = w
                self.k = 0.0
        t = now - self.t_epoch
        # Reno-friendly estimate: alpha_cubic until it reaches the pre-reduction window.
        alpha = 1.0 if self.w_est >= self.cwnd_prior else CUBIC_ALPHA
        self.w_est += alpha * mds * acked_bytes / w
        if self.w_cubic(t) < self.w_est:
            if self.w_est > w:
                self._set_window(self.w_est)
            return
        target = self.w_cubic(t + srtt)
        if target < w:
            target = w
        elif target > 1.5 * w:
            target = 1.5 * w
        self._set_window(w + (target - w) * acked_bytes / w)

    def _on_congestion(self, now: float) -> None:
        w = self._w
        if self.fast_convergence and w < self.w_max:
            self.w_max = w * (1.0 + CUBIC_BETA) / 2.0
        else:
            self.w_max = w
        self.cwnd_prior = w
        ssthresh = max(int(w * CUBIC_BETA), self.minimum_window)
        self.ssthresh = ssthresh
        self._set_window(float(ssthresh))
        self.t_epoch = None
        self._end_hystart()

    def _on_persistent_congestion(self) -> None:
        self._w = float(self.cwnd)
        self.t_epoch = None
        self._end_hystart()

    # ---- HyStart++ (RFC 9406) -------------------------------------------------------------
    def _end_hystart(self) -> None:
        self.hystart = False
        self.in_css = False

    def _hystart_sample(self, largest_sent: float, now: float, rtt: RttEstimator) -> None:
        if largest_sent >= self._hs_round_start:
            # A packet sent in the current round was acked: the next round begins.
            self._hs_round_start = now
            self._hs_last_round_min = self._hs_round_min
            self._hs_round_min = math.inf
            self._hs_samples = 0
            if self.in_css:
                self._hs_css_rounds += 1
                if self._hs_css_rounds >= HS_CSS_ROUNDS:
                    self._leave_slow_start()
                    return
        if rtt.samples != self._hs_seen_samples:
            self._hs_seen_samples = rtt.samples
            self._hs_samples += 1
            if rtt.latest_rtt < self._hs_round_min:
                self._hs_round_min = rtt.latest_rtt
        if self._hs_samples < HS_N_RTT_SAMPLE:
            return
        current, last = self._hs_round_min, self._hs_last_round_min
        if not self.in_css:
            if current == math.inf or last == math.inf:
                return
            thresh = min(max(last / HS_MIN_RTT_DIVISOR, HS_MIN_RTT_THRESH), HS_MAX_RTT_THRESH)
            if current >= last + thresh:
                self.in_css = True
                self._hs_css_baseline = current
                self._hs_css_rounds = 0
        elif current < self._hs_css_baseline:
            # The RTT rise was spurious: back to standard slow start.
            self.in_css = False
            self._hs_css_baseline = math.inf

    def _leave_slow_start(self) -> None:
        """End of Conservative Slow Start: congestion avoidance from the current window."""
        w = self._w
        self.ssthresh = int(w)
        self.w_max = w
        self.cwnd_prior = w
        self.t_epoch = None
        self._end_hystart()

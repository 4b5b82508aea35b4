"""NewReno congestion control as RFC 9002 section 7 and appendix B describe it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from .base import CongestionController

if TYPE_CHECKING:
    from ..rtt import RttEstimator

LOSS_REDUCTION_FACTOR = 0.5  # kLossReductionFactor (RFC 9002 7.3.2)


class NewReno(CongestionController):
    """Slow start (+acked bytes), congestion avoidance (+1 packet per window acked),
    halving once per recovery period."""

    name: ClassVar[str] = "newreno"
    __slots__ = ("_acked_in_ca",)

    def __init__(self, max_datagram_size: int) -> None:
        super().__init__(max_datagram_size)
        self._acked_in_ca = 0  # bytes acked in congestion avoidance not yet turned into growth

    def _on_ack(
        self, acked_bytes: int, largest_sent: float, now: float, rtt: RttEstimator, limited: bool
    ) -> None:
        if not limited:
            return
        if self.cwnd < self.ssthresh:
            room = self.ssthresh - self.cwnd
            if acked_bytes <= room:
                self.cwnd += acked_bytes
                return
            # Crossing ssthresh: the rest of this ACK counts as congestion avoidance.
            grow = int(room) if room != math.inf else acked_bytes
            self.cwnd += grow
            acked_bytes -= grow
        # Congestion avoidance: cwnd += mds * acked / cwnd, kept exact with a byte counter.
        acc = self._acked_in_ca + acked_bytes
        mds = self.max_datagram_size
        while acc >= self.cwnd:
            acc -= self.cwnd
            self.cwnd += mds
        self._acked_in_ca = acc

    def _on_congestion(self, now: float) -> None:
        self.ssthresh = int(self.cwnd * LOSS_REDUCTION_FACTOR)
        self.cwnd = max(int(self.ssthresh), self.minimum_window)
        self._acked_in_ca = 0

    def _on_persistent_congestion(self) -> None:
        self._acked_in_ca = 0

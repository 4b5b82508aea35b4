"""Telling a cluster of losses (a full drop-tail queue) from scattered random loss.

A moving drop rate over the packets sent: each loss moves it 1/16 of the way to 1, each
packet sent since the previous loss takes 1/16 of it off (at most 32 packets' worth, so a
long quiet spell does not make the next loss look new to a queue that is still full). A
loss that leaves the rate above 0.15 is part of a cluster: about three losses within a few
packets, or one in every five for a while. Random loss of a few percent stays below.

Used by BBR (``loss_tolerant``) and, as an option, by loss recovery for window-based
controllers (``LossRecovery(loss_filter=True)``: only clustered losses reduce the window).
"""

from __future__ import annotations

WEIGHT = 1 / 16
DECAY = 1 - WEIGHT
SCOPE = 32  # packets: a longer gap decays as this one
THRESHOLD = 0.15


class LossClusters:
    """The moving drop rate; ``add(index)`` per lost packet, ``index`` its place in the
    sending order (a packet number, or a count of packets sent)."""

    __slots__ = ("_last", "rate")

    def __init__(self) -> None:
        self.rate = 0.0
        self._last = -1

    def add(self, index: int) -> bool:
        """Count a loss of the ``index``-th packet sent; True if it is part of a cluster."""
        gap = index - self._last if self._last >= 0 else SCOPE
        if index > self._last:
            self._last = index
        rate = self.rate * DECAY ** min(max(gap, 0), SCOPE)
        self.rate = rate + (1.0 - rate) * WEIGHT
        return self.rate > THRESHOLD


#: What an owner holds until its first loss (BBR's: an idle connection has none of its own):
#: shared, never added to; the owner makes its own at the first loss.
NO_CLUSTERS = LossClusters()

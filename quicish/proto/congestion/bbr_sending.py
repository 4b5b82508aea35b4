"""BBR's sending side: what it does as packets leave (``Bbr`` inherits it).

Each in-flight packet is stamped with the delivery state (``delivery_rate.py``) and a
packet that leaves with nothing else in flight after an app-limited spell restarts the
ACK-aggregation interval. A burst of packets sent back to back (the bulk path's GSO burst)
is stamped in one call, with the same stamps as one call per packet would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import CongestionController

if TYPE_CHECKING:
    from .delivery_rate import DeliveryRateSampler, StampedPacket


class BbrSending(CongestionController):
    """The packet-sent hooks of :class:`~quicish.proto.congestion.bbr.Bbr`."""

    # (the rest of Bbr's attributes are Bbr's own slots: no instance dict)
    __slots__ = ("_extra_delivered", "_extra_interval_start", "idle_restart", "sampler")
    sampler: DeliveryRateSampler
    idle_restart: bool
    _extra_interval_start: float
    _extra_delivered: int

    def on_sent_packet(self, pkt: StampedPacket, bytes_in_flight: int) -> None:
        """An in-flight packet left; ``bytes_in_flight`` includes it."""
        sampler = self.sampler
        if bytes_in_flight == pkt.size and sampler.app_limited:
            self._restart_from_idle(pkt.sent_time)
        sampler.on_sent(pkt, bytes_in_flight)
        self.last_sent_time = pkt.sent_time

    def on_sent_packets(self, pkts: Sequence[StampedPacket], bytes_in_flight: int) -> None:
        """In-flight packets left back to back; ``bytes_in_flight`` is before the first
        (only the first can be the one that leaves alone after a quiet spell)."""
        sampler = self.sampler
        if not bytes_in_flight and sampler.app_limited:
            self._restart_from_idle(pkts[0].sent_time)
        sampler.on_sent_burst(pkts, bytes_in_flight)
        self.last_sent_time = pkts[-1].sent_time

    def on_app_limited(self, bytes_in_flight: int) -> None:
        """The sender stopped for want of data, not for the window or the pacer."""
        self.sampler.mark_app_limited(bytes_in_flight)

    def _restart_from_idle(self, now: float) -> None:
        self.idle_restart = True
        self._extra_interval_start = now
        self._extra_delivered = 0

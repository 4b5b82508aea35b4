"""The congestion controller interface and the parts all controllers share.

Shared parts (RFC 9002 section 7): initial and minimum windows, the recovery period (one
window reduction per period), persistent congestion, ECN-CE reactions and app-limited
detection. Subclasses supply window growth (``_on_ack``) and reduction (``_on_congestion``).

Controllers see plain values (bytes, send times, bytes in flight), never packets: loss
recovery sums up what an ACK or a loss means and calls :meth:`CongestionController.on_ack`
or :meth:`CongestionController.on_congestion_event`.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..rtt import RttEstimator
    from .delivery_rate import StampedPacket

# When not in slow start, the sender counts as cwnd-limited while this many full-size
# packets (or fewer) would fit in the window on top of what is in flight.
CWND_LIMITED_SLACK_PACKETS = 3


@functools.cache
def initial_window(max_datagram_size: int) -> int:
    """RFC 9002 7.2: min(10 * mds, max(14720, 2 * mds)). Cached: every connection's
    controller holds the same int object, not one of its own."""
    return min(10 * max_datagram_size, max(14720, 2 * max_datagram_size))


class CongestionController(ABC):
    """A window-based congestion controller (sans-IO: ``now`` is always passed in).

    Public state: ``cwnd`` (bytes, int), ``ssthresh`` (bytes, ``math.inf`` until the first
    congestion event), ``recovery_start_time`` (``-inf`` when never in recovery),
    ``congestion_events``, ``persistent_congestion_events``.
    """

    # (Slots: a controller per connection; a subclass without its own keeps a dict.)
    __slots__ = (
        "_before_reduction", "congestion_events", "cwnd", "initial_window", "last_sent_time",
        "max_datagram_size", "minimum_window", "persistent_congestion_events",
        "recovery_start_time", "ssthresh", "undone_events",
    )  # fmt: skip

    name: ClassVar[str] = "base"
    #: True for a controller that needs the packets themselves (delivery-rate sampling,
    #: BBR): loss recovery then calls :meth:`on_sent_packet`, :meth:`on_packets_acked` and
    #: :meth:`on_packets_lost` instead of :meth:`on_ack` and :meth:`on_congestion_event`.
    packet_aware: ClassVar[bool] = False
    #: bytes per second the pacer follows; None: the pacer derives it from cwnd / srtt
    pacing_rate: float | None = None

    def __init__(self, max_datagram_size: int) -> None:
        self.max_datagram_size = max_datagram_size
        self.initial_window = initial_window(max_datagram_size)
        self.minimum_window = 2 * max_datagram_size
        self.cwnd: int = self.initial_window
        self.ssthresh: float = math.inf
        self.recovery_start_time: float = -math.inf
        self.congestion_events = 0
        self.persistent_congestion_events = 0
        self.last_sent_time: float | None = None
        self.undone_events = 0  # reductions undone (their losses were spurious)
        self._before_reduction: dict[str, object] | None = None

    def set_max_datagram_size(self, size: int) -> None:
        """Path MTU discovery changed the datagram size: the window in bytes stays, what
        is counted in datagrams (the minimum window) follows the new size."""
        self.max_datagram_size = size
        self.minimum_window = 2 * size

    # ---- queries -------------------------------------------------------------------------
    @property
    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    def in_recovery(self, sent_time: float) -> bool:
        """True when a packet sent at ``sent_time`` belongs to the current recovery period."""
        return sent_time <= self.recovery_start_time

    def can_send(self, bytes_in_flight: int, size: int | None = None) -> bool:
        """Whether a packet of ``size`` bytes (default: a full-size one) fits in the window."""
        return bytes_in_flight + (self.max_datagram_size if size is None else size) <= self.cwnd

    def available(self, bytes_in_flight: int) -> int:
        """Bytes the window still allows in flight."""
        return max(0, self.cwnd - bytes_in_flight)

    def is_cwnd_limited(self, bytes_in_flight: int) -> bool:
        """Whether a sender with ``bytes_in_flight`` is using its window (RFC 9002 7.8).

        In slow start half the window in use is enough (it doubles per round trip anyway);
        afterwards the window must be full to within a few packets. A sender that is not
        cwnd-limited is app- or flow-control-limited and its window must not grow.
        """
        if self.cwnd < self.ssthresh:
            return 2 * bytes_in_flight >= self.cwnd
        slack = CWND_LIMITED_SLACK_PACKETS * self.max_datagram_size
        return bytes_in_flight + slack >= self.cwnd

    # ---- events ----------------------------------------------------------------------------
    def on_packet_sent(self, size: int, now: float) -> None:
        """An in-flight packet went out (bookkeeping only; calling it twice is harmless)."""
        self.last_sent_time = now

    def on_ack(
        self,
        acked_bytes: int,
        largest_sent_time: float,
        now: float,
        rtt: RttEstimator,
        prior_in_flight: int | None = None,
    ) -> None:
        """An ACK newly acknowledged ``acked_bytes`` in-flight bytes sent outside the
        recovery period (``not in_recovery(sent_time)``: packets sent during it do not grow
        the window), the newest of them sent at ``largest_sent_time``.

        ``prior_in_flight`` is bytes in flight before this ACK was processed; it decides
        whether the sender was cwnd-limited. None means "assume cwnd-limited".
        """
        if not acked_bytes:
            return
        limited = prior_in_flight is None or self.is_cwnd_limited(prior_in_flight)
        self._on_ack(acked_bytes, largest_sent_time, now, rtt, limited)

    def on_congestion_event(self, sent_time: float, now: float) -> bool:
        """Loss (or ECN-CE) of a packet sent at ``sent_time`` (for a batch of lost packets:
        the newest in-flight one): reduce the window unless that packet was sent during the
        current recovery period; returns True if it was reduced."""
        if sent_time <= self.recovery_start_time:
            return False
        self._before_reduction = None  # (not kept inside the copy)
        self._before_reduction = self.snapshot()  # for undo_congestion_event
        self.recovery_start_time = now
        self.congestion_events += 1
        self._on_congestion(now)
        return True

    def snapshot(self) -> dict[str, object]:
        """Every attribute of the controller (its slots' and any instance dict's)."""
        state = dict(getattr(self, "__dict__", ()))
        for cls in type(self).__mro__:
            for name in getattr(cls, "__slots__", ()):
                if name not in ("__dict__", "__weakref__") and hasattr(self, name):
                    state[name] = getattr(self, name)
        return state

    def undo_congestion_event(self) -> bool:
        """The losses that made the last reduction were spurious (the packets arrived):
        back to the state before it, recovery period included. Returns True if undone."""
        saved = self._before_reduction
        if saved is None:
            return False
        counts = (self.congestion_events, self.persistent_congestion_events, self.undone_events)
        for name, value in saved.items():
            setattr(self, name, value)
        self.congestion_events, self.persistent_congestion_events, self.undone_events = counts
        self.undone_events += 1
        self._before_reduction = None
        return True

    def on_ecn_ce(self, sent_time: float, now: float) -> bool:
        """The peer reported more ECN-CE marks; ``sent_time`` of the largest acked packet."""
        return self.on_congestion_event(sent_time, now)

    def on_persistent_congestion(self) -> None:
        """RFC 9002 7.6.2: collapse the window to the minimum and leave recovery."""
        self.persistent_congestion_events += 1
        self._before_reduction = None
        self.cwnd = self.minimum_window
        self.recovery_start_time = -math.inf
        self._on_persistent_congestion()

    # ---- packet-aware controllers (``packet_aware``) ------------------------------------------
    def on_sent_packet(self, pkt: StampedPacket, bytes_in_flight: int) -> None:
        """An in-flight packet left; ``bytes_in_flight`` includes it."""
        return None

    def on_sent_packets(self, pkts: Sequence[StampedPacket], bytes_in_flight: int) -> None:
        """In-flight packets left back to back; ``bytes_in_flight`` is before the first."""
        for pkt in pkts:
            bytes_in_flight += pkt.size
            self.on_sent_packet(pkt, bytes_in_flight)

    def on_packets_acked(
        self,
        acked: Sequence[StampedPacket],
        now: float,
        rtt: RttEstimator,
        prior_in_flight: int,
        bytes_in_flight: int,
    ) -> None:
        """One ACK newly acknowledged ``acked`` (packet number order)."""
        return None

    def on_packets_lost(
        self, lost: Sequence[StampedPacket], now: float, bytes_in_flight: int
    ) -> None:
        """Packets were declared lost (``bytes_in_flight`` already without them)."""
        return None

    def on_app_limited(self, bytes_in_flight: int) -> None:
        """The sender stopped for want of data, not for the window or the pacer."""
        return None

    # ---- subclass hooks ----------------------------------------------------------------------
    @abstractmethod
    def _on_ack(
        self, acked_bytes: int, largest_sent: float, now: float, rtt: RttEstimator, limited: bool
    ) -> None:
        """Grow the window for ``acked_bytes`` (in-flight bytes sent outside recovery)."""

    @abstractmethod
    def _on_congestion(self, now: float) -> None:
        """Reduce the window: a new recovery period started at ``now``."""

    def _on_persistent_congestion(self) -> None:
        """Reset algorithm state after ``cwnd`` was set to the minimum window."""
        return None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cwnd={self.cwnd}, ssthresh={self.ssthresh}, "
            f"recovery_start={self.recovery_start_time})"
        )

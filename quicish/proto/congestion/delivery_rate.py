"""Delivery-rate samples (draft-cheng-iccrg-delivery-rate-estimation) and a windowed max.

Each in-flight packet is stamped at send time with the connection's delivery state: bytes
delivered so far and when, the start of the current send flight, whether the sender was
app-limited, bytes lost so far (a :class:`RateSegment`, shared by every packet sent while
that state stays the same: between two ACKs, a bulk sender's whole burst), and its own
place in the sending order and bytes in flight (one int, ``rate_index``). When ACKs arrive,
the newest acknowledged packet's stamp and the connection's state now give one
:class:`RateSample`: bytes delivered over the longer of the send and the ACK interval.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple, Protocol

# ``rate_index``: the packet's place in the sending order above these bits, the bytes in
# flight once it was sent (it included) below.
_INFLIGHT_BITS = 40
_INFLIGHT_MASK = (1 << _INFLIGHT_BITS) - 1
_OWNERS = itertools.count(1)  # one number per sampler made


class RateSegment:
    """The delivery state the packets sent since it last changed were stamped with."""

    __slots__ = ("app_limited", "delivered", "delivered_time", "first_sent_time", "lost", "owner")

    def __init__(self, sampler: DeliveryRateSampler) -> None:
        self.delivered = sampler.delivered
        self.delivered_time = sampler.delivered_time
        self.first_sent_time = sampler.first_sent_time
        self.app_limited = sampler.app_limited != 0
        self.lost = sampler.lost
        # whose counters these are (a new path has a new sampler); a number, not the
        # sampler itself, which refers to its segment: no reference cycle per connection
        self.owner = sampler.owner


class RateStamp(NamedTuple):
    """The connection's delivery state when a packet left (one packet's view of it)."""

    delivered: int
    delivered_time: float
    first_sent_time: float
    app_limited: bool
    tx_in_flight: int  # bytes in flight once this packet was sent, it included
    lost: int  # bytes declared lost before it was sent
    sent_index: int  # in-flight packets sent before it
    sampler: DeliveryRateSampler  # whose counters these are (a new path has a new one)


class StampedPacket(Protocol):
    """What the sampler needs of a sent packet (``SentPacket`` has it)."""

    size: int
    sent_time: float
    in_flight: bool
    rate_stamp: RateSegment | None
    rate_index: int


class RateSample:
    """One delivery-rate sample, taken on an ACK."""

    __slots__ = (
        "delivered",
        "delivery_rate",
        "interval",
        "is_app_limited",
        "lost",
        "newly_acked",
        "prior_delivered",
        "rtt",
        "sent_index",
        "tx_in_flight",
    )

    def __init__(self) -> None:
        self.delivery_rate = 0.0  # bytes per second; 0 when the sample is not valid
        self.delivered = 0  # bytes delivered over the interval
        self.interval = 0.0
        self.is_app_limited = False
        self.prior_delivered = -1  # delivered count stamped on the newest acked packet
        self.tx_in_flight = 0  # bytes in flight when that packet was sent
        self.lost = 0  # bytes declared lost since that packet was sent
        self.newly_acked = 0
        self.rtt = -1.0  # RTT of the newest acked packet, -1 if none
        self.sent_index = -1  # its RateStamp.index


class DeliveryRateSampler:
    """The connection-wide delivery counters, packet stamping and sample generation."""

    __slots__ = (
        "app_limited", "delivered", "delivered_time", "first_sent_time", "lost", "owner", "segment",
        "sent",
    )  # fmt: skip

    def __init__(self) -> None:
        self.delivered = 0  # bytes acknowledged so far (in-flight packets only)
        self.delivered_time = 0.0  # when ``delivered`` last grew
        self.first_sent_time = 0.0  # send time of the packet that opened the current flight
        self.lost = 0  # bytes declared lost so far
        self.app_limited = 0  # ``delivered`` at which the app-limited phase ends; 0: none
        self.sent = 0  # in-flight packets stamped so far
        self.owner = next(_OWNERS)  # what its segments name it by
        # the state packets are stamped with; None: it changed since the last one was
        self.segment: RateSegment | None = None

    def on_sent(self, pkt: StampedPacket, bytes_in_flight: int) -> None:
        """Stamp ``pkt`` (already counted in ``bytes_in_flight``)."""
        if bytes_in_flight == pkt.size:  # the first packet after a quiet spell
            self.first_sent_time = self.delivered_time = pkt.sent_time
            self.segment = None
        segment = self.segment
        if segment is None:
            segment = self.segment = RateSegment(self)
        pkt.rate_stamp = segment
        pkt.rate_index = self.sent << _INFLIGHT_BITS | bytes_in_flight
        self.sent += 1

    def on_sent_burst(self, pkts: Sequence[StampedPacket], bytes_in_flight: int) -> None:
        """Stamp ``pkts``, sent back to back, as :meth:`on_sent` one by one would;
        ``bytes_in_flight`` is before the first."""
        sent = self.sent
        first = pkts[0]
        if not bytes_in_flight:  # the first packet after a quiet spell
            self.first_sent_time = self.delivered_time = first.sent_time
            self.segment = None
        segment = self.segment
        if segment is None:
            segment = self.segment = RateSegment(self)
        for pkt in pkts:
            bytes_in_flight += pkt.size
            pkt.rate_stamp = segment
            pkt.rate_index = sent << _INFLIGHT_BITS | bytes_in_flight
            sent += 1
        self.sent = sent

    def stamp_of(self, pkt: StampedPacket) -> RateStamp | None:
        """``pkt``'s stamp if this sampler made it (None: sent before it, e.g. on another
        path's controller, or by a controller that does not sample)."""
        segment = getattr(pkt, "rate_stamp", None)
        if segment is None or segment.owner != self.owner:
            return None
        index = pkt.rate_index
        return RateStamp(
            segment.delivered,
            segment.delivered_time,
            segment.first_sent_time,
            segment.app_limited,
            index & _INFLIGHT_MASK,
            segment.lost,
            index >> _INFLIGHT_BITS,
            self,
        )

    def mark_app_limited(self, bytes_in_flight: int) -> None:
        """The sender had nothing to send: samples until what is in flight is delivered
        say less than the path could do."""
        self.app_limited = max(self.delivered + bytes_in_flight, 1)
        self.segment = None

    def on_lost(self, size: int) -> None:
        self.lost += size
        self.segment = None

    def on_acked(self, acked: Sequence[StampedPacket], now: float) -> RateSample:
        """Account for newly acknowledged packets (in packet number order) and make the
        sample of this ACK."""
        rs = RateSample()
        newest: StampedPacket | None = None
        newest_segment: RateSegment | None = None
        newly_acked = 0
        for pkt in acked:
            segment = getattr(pkt, "rate_stamp", None)
            if segment is None or segment.owner != self.owner or not pkt.in_flight:
                continue
            pkt.rate_stamp = None
            newly_acked += pkt.size
            if newest_segment is None or segment.delivered >= newest_segment.delivered:
                newest, newest_segment = pkt, segment
        self.delivered += newly_acked
        rs.newly_acked = newly_acked
        self.delivered_time = now
        self.segment = None
        if newest is None or newest_segment is None:
            return rs
        self.first_sent_time = newest.sent_time
        if self.app_limited and self.delivered > self.app_limited:
            self.app_limited = 0
        index = newest.rate_index
        rs.prior_delivered = newest_segment.delivered
        rs.is_app_limited = newest_segment.app_limited
        rs.tx_in_flight = index & _INFLIGHT_MASK
        rs.sent_index = index >> _INFLIGHT_BITS
        rs.lost = self.lost - newest_segment.lost
        rs.rtt = now - newest.sent_time
        send_elapsed = newest.sent_time - newest_segment.first_sent_time
        ack_elapsed = now - newest_segment.delivered_time
        rs.interval = send_elapsed if send_elapsed > ack_elapsed else ack_elapsed
        rs.delivered = self.delivered - newest_segment.delivered
        if rs.interval > 0.0:
            rs.delivery_rate = rs.delivered / rs.interval
        return rs


class WindowedMax:
    """Sliding-window maximum over a monotonic clock (rounds, cycles or seconds): the
    largest value seen at times within ``window`` of the latest update."""

    __slots__ = ("_entries", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._entries: list[tuple[float, float]] = []  # a handful: no deque block

    def update(self, t: float, value: float) -> float:
        """Add ``value`` observed at ``t``; returns the current maximum."""
        entries = self._entries
        if entries:
            last_t, last_value = entries[-1]
            if last_t == t and last_value >= value:
                # (a value no larger at the same time leaves the same entries, less a
                # dominated one: it would expire with the last; nothing expires either)
                return entries[0][1]
        while entries and entries[-1][1] <= value:
            entries.pop()
        entries.append((t, value))
        limit = t - self.window
        while entries[0][0] <= limit:
            del entries[0]
        return entries[0][1]

    def expire(self, t: float) -> float:
        """Drop what is older than the window at ``t``; returns the maximum (0 if empty)."""
        entries = self._entries
        limit = t - self.window
        while entries and entries[0][0] <= limit:
            del entries[0]
        return entries[0][1] if entries else 0.0

    @property
    def value(self) -> float:
        return self._entries[0][1] if self._entries else 0.0

    def reset(self) -> None:
        self._entries.clear()

"""Pacing (RFC 9002 section 7.7): a token bucket filled at N * cwnd / smoothed_rtt.

The bucket holds a small burst: ``burst_packets`` full-size packets, or more at high rates
(what ``burst_interval`` seconds of the rate allows, capped at ``max_burst_packets``), so a
timer-driven sender does not need a wake-up per packet. The default burst interval is two
ticks of a millisecond-granular event loop timer (uvloop's), so a wake-up that comes a tick
late still finds a full millisecond of tokens. Following a controller's own rate (BBR), the
bucket keeps 8 ms of the rate (at most ``max_burst_packets``), and 4 ms at any rate; a
waiting sender wakes for a millisecond of tokens, at most one burst.
"""

from __future__ import annotations

from typing import Protocol

PACING_GAIN = 1.25  # N in congestion avoidance
SLOW_START_PACING_GAIN = 2.0  # N while the window still doubles every round trip
# A controller's own rate (BBR) has no slack above the path's: a wake-up that comes late
# must still find the time it missed in the bucket, so its burst covers more time.
FOLLOW_BURST_INTERVAL = 0.008
# Following a rate, a sender that must wait sleeps until this much of the rate's tokens is
# in the bucket (not one packet's), at most one burst: the bucket keeps the time it slept,
# so the rate is the same and a fast sender wakes once per millisecond (or once per full
# GSO burst) rather than once per packet.
FOLLOW_WAKE_INTERVAL = 0.001
# A rate above ``max_burst_packets`` per burst interval (a loopback's) still keeps this
# much time in the bucket: a wake-up a tick or two late (a busy loop) does not lose the time
# it missed, while each wake-up waits only for one burst (at most ``max_burst_packets``).
FOLLOW_CREDIT_INTERVAL = 0.004


class _RateSource(Protocol):
    """What :meth:`Pacer.follow` reads of a congestion controller."""

    @property
    def pacing_rate(self) -> float | None: ...
    @property
    def cwnd(self) -> int: ...
    @property
    def in_slow_start(self) -> bool: ...


class Pacer:
    """Decides when the next in-flight packet may leave.

    ``update(cwnd, srtt)`` after the window or RTT changed, ``next_send_time(now)`` before
    sending (None: go ahead now; else the absolute time to try again), ``on_packet_sent``
    after each in-flight packet. Without a rate (no update yet, or srtt 0) nothing is paced.
    """

    __slots__ = (
        "burst_interval",
        "burst_packets",
        "capacity",
        "gain",
        "max_burst_packets",
        "max_datagram_size",
        "rate",
        "tokens",
        "updated_at",
        "wake_tokens",
    )

    def __init__(
        self,
        max_datagram_size: int,
        burst_packets: int = 10,
        gain: float = PACING_GAIN,
        burst_interval: float = 0.002,
        max_burst_packets: int = 64,
    ) -> None:
        self.max_datagram_size = max_datagram_size
        self.burst_packets = burst_packets
        self.max_burst_packets = max(max_burst_packets, burst_packets)
        self.gain = gain
        self.burst_interval = burst_interval
        self.rate = 0.0  # bytes per second; 0 means "not pacing"
        self.capacity = float(burst_packets * max_datagram_size)
        self.tokens = self.capacity
        self.updated_at: float | None = None
        self.wake_tokens = 0.0  # a waiting sender wakes when this many are in (following)

    def update(self, cwnd: int, srtt: float, slow_start: bool = False) -> None:
        """Set the rate from the congestion window and smoothed RTT."""
        if srtt <= 0.0 or cwnd <= 0:
            self.rate = 0.0
            return
        gain = max(self.gain, SLOW_START_PACING_GAIN) if slow_start else self.gain
        self.rate = gain * cwnd / srtt
        self.wake_tokens = 0.0
        mds = self.max_datagram_size  # (once per ACK: inlined)
        burst = self.rate * self.burst_interval
        low = self.burst_packets * mds
        high = self.max_burst_packets * mds
        self.capacity = float(min(max(burst, low), high))
        if self.tokens > self.capacity:
            self.tokens = self.capacity

    def follow(self, cc: _RateSource, srtt: float) -> None:
        """Pace at the controller's own rate if it has one, else from its window."""
        rate = cc.pacing_rate
        if rate is None:
            self.update(cc.cwnd, srtt, cc.in_slow_start)
        else:
            self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        """Pace at ``rate`` bytes per second (0: not at all); the burst follows the rate."""
        self.rate = rate
        if rate <= 0.0:
            return
        mds = self.max_datagram_size
        high = float(self.max_burst_packets * mds)
        capacity = rate * max(FOLLOW_BURST_INTERVAL, self.burst_interval)
        capacity = min(max(capacity, float(self.burst_packets * mds)), high)
        credit = rate * FOLLOW_CREDIT_INTERVAL
        self.capacity = capacity = credit if credit > capacity else capacity
        if self.tokens > capacity:
            self.tokens = capacity
        wake = rate * FOLLOW_WAKE_INTERVAL
        self.wake_tokens = wake if wake < high else high

    def _refill(self, now: float) -> None:
        last = self.updated_at
        self.updated_at = now
        if last is None:
            self.tokens = self.capacity
        elif now > last:
            tokens = self.tokens + (now - last) * self.rate
            self.tokens = tokens if tokens < self.capacity else self.capacity

    def next_send_time(self, now: float, size: int | None = None) -> float | None:
        """None if a packet of ``size`` (default: full-size) may go now, else when it may."""
        if self.rate <= 0.0:
            return None
        if now != self.updated_at:  # (a burst of packets shares one ``now``: no call)
            self._refill(now)
        need = float(self.max_datagram_size if size is None else size)
        if need > self.capacity:
            need = self.capacity
        missing = need - self.tokens
        if missing <= 0.5:  # within half a byte: rounding, not a reason to wait
            return None
        if self.wake_tokens > need:
            missing = self.wake_tokens - self.tokens
        deadline = now + missing / self.rate
        # Never hand out a deadline that is not in the future (a caller would spin).
        return deadline if deadline > now else None

    def on_packet_sent(self, size: int, now: float) -> None:
        """Spend tokens for an in-flight packet that just left."""
        if self.rate <= 0.0:
            self.updated_at = now
            return
        if now != self.updated_at:  # (usually refilled by next_send_time already)
            self._refill(now)
        tokens = self.tokens - size
        # Packets sent against the pacer's advice (probes) borrow at most one burst.
        self.tokens = tokens if tokens > -self.capacity else -self.capacity

"""Round-trip time estimation (RFC 9002 section 5)."""

from __future__ import annotations

TIMER_GRANULARITY = 0.001  # seconds: timer granularity (kGranularity)
INITIAL_RTT = 0.333  # seconds: RTT assumed before the first sample (kInitialRtt)


class RttEstimator:
    """latest_rtt, min_rtt, smoothed_rtt and rttvar, updated from RTT samples.

    ``update()`` takes the ack delay already adjusted by the caller (zero for Initial
    packets, clamped to max_ack_delay once the handshake is confirmed); the estimator
    applies the "never below min_rtt" rule itself.
    """

    __slots__ = (
        "first_rtt_sample",
        "initial_rtt",
        "latest_rtt",
        "min_rtt",
        "rttvar",
        "samples",
        "smoothed_rtt",
    )

    def __init__(self, initial_rtt: float = INITIAL_RTT) -> None:
        self.initial_rtt = initial_rtt
        self.latest_rtt = 0.0
        self.min_rtt = 0.0  # meaningful once ``has_sample``
        self.smoothed_rtt = initial_rtt
        self.rttvar = initial_rtt / 2
        self.first_rtt_sample: float | None = None  # time of the first sample
        self.samples = 0  # number of samples taken (lets observers spot fresh ones)

    @property
    def has_sample(self) -> bool:
        """True once at least one RTT sample was taken."""
        return self.first_rtt_sample is not None

    def update(self, latest_rtt: float, ack_delay: float, now: float) -> None:
        """Take one RTT sample (RFC 9002 5.3); ``ack_delay`` in seconds, pre-adjusted."""
        if latest_rtt < 0.0:
            latest_rtt = 0.0
        self.latest_rtt = latest_rtt
        self.samples += 1
        if self.first_rtt_sample is None:
            self.first_rtt_sample = now
            self.min_rtt = latest_rtt
            self.smoothed_rtt = latest_rtt
            self.rttvar = latest_rtt / 2
            return
        if latest_rtt < self.min_rtt:
            self.min_rtt = latest_rtt
        adjusted = latest_rtt
        if ack_delay > 0.0 and latest_rtt >= self.min_rtt + ack_delay:
            adjusted = latest_rtt - ack_delay
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.smoothed_rtt - adjusted)
        self.smoothed_rtt = 0.875 * self.smoothed_rtt + 0.125 * adjusted

    def pto_base(self) -> float:
        """smoothed_rtt + max(4 * rttvar, kGranularity): the PTO before max_ack_delay/backoff."""
        return self.smoothed_rtt + max(4.0 * self.rttvar, TIMER_GRANULARITY)

    def reset_min_rtt(self) -> None:
        """Set min_rtt to the newest sample (after persistent congestion, RFC 9002 5.2)."""
        if self.first_rtt_sample is not None:
            self.min_rtt = self.latest_rtt

    def __repr__(self) -> str:
        return (
            f"RttEstimator(latest={self.latest_rtt:.6f}, min={self.min_rtt:.6f}, "
            f"smoothed={self.smoothed_rtt:.6f}, var={self.rttvar:.6f})"
        )

"""Idle timeout and keep-alive (RFC 9000 10.1), and the handshake's own deadline."""

from __future__ import annotations

# Handshake progress moves the handshake deadline, but never past this many times
# Config.handshake_timeout from the start: a peer that drips progress cannot keep a
# half-open connection for long.
HANDSHAKE_PROGRESS_CAP = 3


class IdleTimer:
    """When the connection goes idle, and when a keep-alive PING is due."""

    __slots__ = ("keep_alive", "keep_alive_sent", "last_activity", "restart_pending", "timeout")

    def __init__(self, timeout: float, keep_alive: float | None) -> None:
        self.timeout = timeout  # 0: no idle timeout
        self.keep_alive = keep_alive  # seconds of quiet before a PING (None/0: never)
        self.last_activity = 0.0
        # The next ack-eliciting packet sent restarts the timer (RFC 9000 10.1: the first
        # one after a packet was received, not every one).
        self.restart_pending = True
        self.keep_alive_sent = 0.0  # when the last keep-alive PING was queued

    def negotiate(self, peer_timeout: float) -> None:
        """The peer's max_idle_timeout (seconds, 0: none): the smaller of the two counts."""
        if peer_timeout:
            self.timeout = min(self.timeout, peer_timeout) if self.timeout else peer_timeout

    def on_packet_received(self, now: float) -> None:
        self.last_activity = now
        self.restart_pending = True

    def on_eliciting_sent(self, now: float) -> None:
        if self.restart_pending:
            self.last_activity = now
            self.restart_pending = False

    def deadline(self, pto: float) -> float | None:
        """When the connection is idle; never sooner than three probe timeouts ``pto``."""
        if not self.timeout:
            return None
        return self.last_activity + max(self.timeout, 3 * pto)

    def keep_alive_deadline(self) -> float | None:
        """When to queue a keep-alive PING, or None without keep-alive."""
        interval = self.keep_alive
        if not interval:
            return None
        return max(self.last_activity, self.keep_alive_sent) + interval

    def on_keep_alive(self, now: float) -> None:
        self.keep_alive_sent = now


class HandshakeTimer:
    """The handshake must progress within ``timeout`` (new CRYPTO data from the peer, or
    ours acknowledged) and complete within HANDSHAKE_PROGRESS_CAP times it."""

    __slots__ = ("cap", "deadline", "timeout")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.deadline: float | None = None  # None: not started, no timeout, or complete
        self.cap = 0.0  # the latest the deadline can move to

    def start(self, now: float) -> None:
        timeout = self.timeout
        if timeout is not None:
            self.deadline = now + timeout
            self.cap = now + HANDSHAKE_PROGRESS_CAP * timeout

    def progress(self, now: float) -> None:
        """The handshake moved on: its deadline is again ``timeout`` away, up to the cap.
        An older moment never moves it back."""
        deadline, timeout = self.deadline, self.timeout
        if deadline is not None and timeout is not None and now + timeout > deadline:
            self.deadline = min(now + timeout, self.cap)

    def complete(self) -> None:
        self.deadline = None
        self.cap = 0.0  # (a shared constant: the connection's own float goes)

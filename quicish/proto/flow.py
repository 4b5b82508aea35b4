"""Flow-control credit (RFC 9000 section 4).

``SendCredit`` tracks a limit the peer gave us (MAX_DATA, or MAX_STREAM_DATA for one
stream); ``ReceiveWindow`` tracks a limit we gave the peer, grows it automatically when
the application keeps up, and says when to advertise a new one.

Frames that carry these limits are sent once per value: the ``*_sent`` / ``*_lost``
methods let the connection re-send a frame only while its value is still current.
"""

from __future__ import annotations

from ..errors import ErrorCode, ProtocolError

__all__ = ["ReceiveWindow", "SendCredit"]


class SendCredit:
    """Connection-level credit the peer granted us (its MAX_DATA).

    ``consume(n)`` charges new bytes sent (``SendStream.last_new_bytes``); ``available`` is
    what may still be sent. When a sender had data but no credit it calls ``note_blocked()``;
    ``blocked_at`` then names the limit for one DATA_BLOCKED frame.
    """

    __slots__ = ("_blocked_sent", "_wanted", "limit", "used")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.used = 0
        self._wanted = False
        self._blocked_sent = -1

    @property
    def available(self) -> int:
        return self.limit - self.used

    def consume(self, n: int) -> None:
        """Charge ``n`` new bytes. Charging past the limit is a caller bug (AssertionError)."""
        self.used += n
        assert self.used <= self.limit, "sent past the peer's MAX_DATA"

    def on_max_data(self, limit: int) -> bool:
        """A MAX_DATA frame (or the transport parameter): returns True when credit grew."""
        if limit <= self.limit:
            return False
        self.limit = limit
        self._wanted = False
        return True

    def reset(self, limit: int) -> None:
        """Start over with ``limit`` and nothing used (rejected 0-RTT: may lower it)."""
        self.limit = limit
        self.used = 0
        self._wanted = False
        self._blocked_sent = -1

    def note_blocked(self) -> None:
        """Record that data was waiting for connection credit."""
        if self.used >= self.limit:
            self._wanted = True

    @property
    def blocked_at(self) -> int | None:
        """The limit to put in a DATA_BLOCKED frame, or None (once per limit)."""
        if self._wanted and self.used >= self.limit and self._blocked_sent != self.limit:
            return self.limit
        return None

    def on_blocked_sent(self, limit: int) -> None:
        self._blocked_sent = limit

    def on_blocked_lost(self, limit: int) -> None:
        """The DATA_BLOCKED frame was lost: re-send only if still blocked at that limit."""
        if self._blocked_sent == limit:
            self._blocked_sent = -1


class ReceiveWindow:
    """A limit we advertise (our MAX_DATA, or one stream's MAX_STREAM_DATA).

    ``limit`` is the highest offset the peer may send; ``received`` the bytes the peer has
    used (sum of highest offsets); ``consumed`` the bytes the application took. When more
    than half the window is consumed, ``update_due`` turns true and ``update(now, rtt)``
    returns the new limit to send. If the previous half window was consumed within two
    round trips the window doubles (up to ``max_window``), so a fast reader on a long fat
    path is not held back by a small initial window; a slow reader keeps a small one.
    """

    __slots__ = (
        "_last_update",
        "_resend",
        "consumed",
        "limit",
        "max_window",
        "received",
        "window",
    )

    def __init__(self, window: int, max_window: int | None = None) -> None:
        self.window = window
        self.max_window = max(window, max_window if max_window is not None else window)
        self.limit = window
        self.received = 0
        self.consumed = 0
        self._last_update: float | None = None
        self._resend = False

    def on_data(self, growth: int) -> None:
        """The peer used ``growth`` more bytes of credit; FLOW_CONTROL_ERROR past the limit."""
        self.received += growth
        if self.received > self.limit:
            raise ProtocolError(
                ErrorCode.FLOW_CONTROL_ERROR,
                f"peer sent {self.received} bytes, limit {self.limit}",
            )

    def on_consumed(self, n: int) -> None:
        """The application consumed (or the stack released) ``n`` bytes."""
        self.consumed += n

    @property
    def update_due(self) -> bool:
        """True when a new limit should be advertised (more than half the window consumed)."""
        return self._resend or 2 * (self.limit - self.consumed) < self.window

    def update(self, now: float, rtt: float) -> int | None:
        """The new limit to advertise now (the caller sends it), or None if not due.

        ``rtt`` is the smoothed RTT (0 when unknown: no growth).
        """
        if not self.update_due:
            return None
        last = self._last_update
        if last is not None and now - last < 2 * rtt and self.window < self.max_window:
            self.window = min(2 * self.window, self.max_window)
        self._last_update = now
        self._resend = False
        new = self.consumed + self.window
        if new > self.limit:
            self.limit = new
        return self.limit

    def on_update_lost(self, limit: int) -> None:
        """The frame advertising ``limit`` was lost: re-send if it is still the current one."""
        if limit == self.limit:
            self._resend = True

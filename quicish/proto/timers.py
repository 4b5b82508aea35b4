"""A connection's timers as one table: named deadlines, the earliest, the expired ones."""

from __future__ import annotations

from enum import IntEnum


class Timer(IntEnum):
    """A connection timer; :meth:`TimerTable.expired` lists them in this (handling) order."""

    IDLE = 0  # idle timeout (RFC 9000 10.1)
    HANDSHAKE = 1  # the handshake's own deadline (Config.handshake_timeout)
    LOSS = 2  # loss detection or probe timeout (RFC 9002)
    KEEP_ALIVE = 3  # a PING after Config.keep_alive seconds of quiet
    PATH_VALIDATION = 4  # a PATH_CHALLENGE to repeat or give up (RFC 9000 8.2.4)
    PACING = 5  # the pacer releases the next packet
    ZERO_RTT_KEY = 6  # a server discards its 0-RTT read key (RFC 9001 4.9.3)
    ACK = 7  # a delayed ACK is due (sent by the next datagrams_to_send)


_TIMERS = tuple(Timer)  # (indexing this is cheaper than calling Timer(index))


class TimerTable:
    """One optional absolute deadline per :class:`Timer`."""

    __slots__ = ("_deadlines",)

    def __init__(self) -> None:
        self._deadlines: list[float | None] = [None] * len(_TIMERS)

    def set(self, timer: Timer, deadline: float | None) -> None:
        """Arm ``timer`` at ``deadline`` (None stops it)."""
        self._deadlines[timer] = deadline

    def set_all(self, deadlines: list[float | None]) -> None:
        """Every timer at once, in :class:`Timer` order (cheaper than one set() each)."""
        assert len(deadlines) == len(_TIMERS)
        self._deadlines = deadlines

    def stop(self, timer: Timer) -> None:
        self._deadlines[timer] = None

    def get(self, timer: Timer) -> float | None:
        return self._deadlines[timer]

    def next(self) -> float | None:
        """The earliest armed deadline, or None when no timer is armed."""
        earliest: float | None = None
        for deadline in self._deadlines:
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    def expired(self, now: float) -> list[Timer]:
        """The timers due at ``now``, in :class:`Timer` order."""
        return [
            _TIMERS[index]
            for index, deadline in enumerate(self._deadlines)
            if deadline is not None and now >= deadline
        ]

"""What a connection reports to its driver, in order: events, with received DATAGRAM
payloads held in a bounded queue (the oldest dropped beyond ``Config.datagram_receive_buffer``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from . import events as ev
from .stats import ConnectionStats

DATAGRAM_OVERHEAD = 64  # what a queued datagram is charged beyond its payload (bytes)

# In the event queue, the place of a received DATAGRAM whose payload waits in the bounded
# datagram queue (next() makes the DatagramReceived).
_DATAGRAM_SLOT = ev.Event()


class EventQueue:
    """Events in the order they happened; a received DATAGRAM takes its place among them."""

    __slots__ = ("_datagrams", "_events", "_head", "_limit", "_size", "_stale", "_stats", "append")

    def __init__(self, limit: int, stats: ConnectionStats) -> None:
        # A list read from _head on, emptied once read through: an empty one is 56 bytes
        # where a deque keeps a 64-slot block (760 bytes) for the connection's lifetime.
        self._events: list[ev.Event] = []
        self._head = 0
        #: ``append(event)``: queue an event (the list's own method: no call in between).
        self.append: Callable[[ev.Event], None] = self._events.append
        # Received DATAGRAM payloads not yet handed out; each has a slot in _events, and
        # _stale counts the leading slots whose payload was dropped.
        self._datagrams: deque[bytes] | None = None  # (made for the first: most get none)
        self._size = 0
        self._stale = 0
        self._limit = limit
        self._stats = stats

    def __len__(self) -> int:
        return len(self._events) - self._head

    def next(self) -> ev.Event | None:
        """The oldest undelivered event, or None."""
        events = self._events
        while True:
            head = self._head
            if head == len(events):
                if head:
                    events.clear()  # (in place: ``append`` is bound to this list)
                    self._head = 0
                return None
            event = events[head]
            head += 1
            if head > 64 and 2 * head > len(events):  # a driver that never reads to the end
                del events[:head]
                head = 0
            self._head = head
            if event is not _DATAGRAM_SLOT:
                return event
            if self._stale:  # its datagram was dropped
                self._stale -= 1
                continue
            assert self._datagrams is not None  # (a slot means a datagram was queued)
            data = self._datagrams.popleft()
            self._size -= len(data) + DATAGRAM_OVERHEAD
            return ev.DatagramReceived(data)

    def append_datagram(self, data: bytes) -> None:
        """Queue a received DATAGRAM; the oldest are dropped beyond the bound."""
        queue = self._datagrams
        if queue is None:
            queue = self._datagrams = deque()
        queue.append(data)
        self._events.append(_DATAGRAM_SLOT)
        self._size += len(data) + DATAGRAM_OVERHEAD
        while self._size > self._limit and queue:
            self._size -= len(queue.popleft()) + DATAGRAM_OVERHEAD
            self._stale += 1
            self._stats.datagrams_dropped += 1
        if self._stale > 64 and self._stale > len(queue):
            # Drop the slots of dropped datagrams (the oldest ones) from the event queue:
            # O(events) once per as many drops, so O(1) per drop.
            stale = self._stale
            kept: list[ev.Event] = []
            for event in self._events[self._head :]:
                if event is _DATAGRAM_SLOT and stale:
                    stale -= 1
                else:
                    kept.append(event)
            self._events[:] = kept  # (in place: ``append`` is bound to this list)
            self._head = 0
            self._stale = 0

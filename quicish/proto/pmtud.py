"""Datagram packetization layer path MTU discovery (RFC 9000 14.3, RFC 8899): the search
for the largest datagram the current path carries, as a state machine with no I/O.

A connection starts at ``BASE_PLPMTU`` (1200, the size every QUIC path must carry). Once
the handshake is confirmed, the packet builder asks :meth:`Pmtud.next_probe` for a size to
probe: a 1-RTT packet of PING and PADDING that big, one at a time. The first probe of a
search tries the ceiling (the smaller of ``Config.max_datagram_size`` and the peer's
max_udp_payload_size); after that the search halves the range between the largest size
acknowledged and the smallest size given up on. A size is given up after ``MAX_PROBES``
lost probes of it; the search ends when the range left is under ``MIN_STEP`` bytes, and
starts again ``RAISE_INTERVAL`` seconds later (RFC 8899 PMTU_RAISE_TIMER) unless it reached
the ceiling. An acknowledged probe raises the datagram size at once.

Black holes (RFC 8899 4.3): ``BLACK_HOLE_PTOS`` probe timeouts in a row while sending above
``BASE_PLPMTU`` (no acknowledgement at all: full-size packets vanish) drop the size back to
``BASE_PLPMTU`` and search again. A new path starts over at ``BASE_PLPMTU`` too.

Losses of probes are not congestion (RFC 9000 14.4): loss recovery leaves out of its
congestion response every lost packet larger than the controller's datagram size.
"""

from __future__ import annotations

import math

BASE_PLPMTU = 1200  # RFC 9000 14: every path carries 1200-byte UDP payloads
MAX_PROBES = 3  # RFC 8899 MAX_PROBES: lost probes of one size before it is too big
MIN_STEP = 20  # bytes: a search ends when the unknown range is narrower than this
RAISE_INTERVAL = 600.0  # seconds between searches (RFC 8899 PMTU_RAISE_TIMER)
BLACK_HOLE_PTOS = 3  # probe timeouts in a row above BASE_PLPMTU: back to BASE_PLPMTU


class Pmtud:
    """The search state of one connection's current path.

    ``size`` is the confirmed datagram size (what the builder sends); ``low`` the largest
    size acknowledged in this search, ``high`` the largest size not yet given up on.
    The caller sends the probes and reports their fate with :meth:`on_probe_sent`,
    :meth:`on_probe_acked` and :meth:`on_probe_lost`; a new size comes back from the last
    two and from :meth:`on_pto` (black hole).
    """

    __slots__ = (
        "candidate",
        "ceiling",
        "failures",
        "high",
        "low",
        "next_search",
        "probing",
        "searching",
        "sent_at",
        "size",
    )

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(BASE_PLPMTU, ceiling)
        self.size = BASE_PLPMTU
        self.sent_at = 0.0  # when the last probe left
        self._search()

    def _search(self) -> None:
        """Start a search from the current size: the ceiling first."""
        self.low = self.size
        self.high = self.ceiling
        self.candidate = self.ceiling
        self.failures = 0
        self.probing: int | None = None  # the size of the probe in flight
        self.searching = self.high > self.low
        self.next_search = math.inf

    def restart(self) -> None:
        """A new path (or a black hole): back to BASE_PLPMTU, search again."""
        self.size = BASE_PLPMTU
        self._search()

    @property
    def done(self) -> bool:
        """True between searches."""
        return not self.searching

    def next_probe(self, now: float) -> int | None:
        """The size to probe now, or None (a probe in flight, or no search due)."""
        if self.probing is not None:
            return None
        if not self.searching:
            if now < self.next_search:
                return None
            self._search()  # PMTU_RAISE_TIMER: look again for a larger size
            if not self.searching:
                return None
        return self.candidate

    def on_probe_sent(self, size: int, now: float) -> None:
        self.probing = size
        self.sent_at = now

    def on_probe_acked(self, size: int) -> int | None:
        """A probe of ``size`` was acknowledged: the new datagram size, or None."""
        if size == self.probing:
            self.probing = None
        if not self.searching or size != self.candidate or size <= self.size:
            return None  # a late acknowledgement of an older search's probe
        self.size = self.low = size
        self.failures = 0
        self._next_candidate()
        return size

    def on_probe_lost(self, size: int) -> None:
        """A probe of ``size`` was declared lost."""
        if size != self.probing:
            return
        self.probing = None
        self.failures += 1
        if self.failures >= MAX_PROBES:
            self.failures = 0
            self.high = size - 1
            self._next_candidate()

    def on_pto(self, pto_count: int) -> bool:
        """A probe timeout (``pto_count`` in a row): True if it is taken for a black hole
        and the size dropped back to BASE_PLPMTU."""
        if pto_count < BLACK_HOLE_PTOS or self.size <= BASE_PLPMTU:
            return False
        self.restart()
        return True

    def _next_candidate(self) -> None:
        low, high = self.low, self.high
        if high - low < MIN_STEP:
            self.searching = False
            self.probing = None
            self.next_search = math.inf if low >= self.ceiling else self.sent_at + RAISE_INTERVAL
        else:
            self.candidate = (low + high + 1) // 2

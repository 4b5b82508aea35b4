"""A deterministic in-memory network for two sans-IO connections, on a virtual clock.

Each direction is a :class:`LinkSpec`: delay, bandwidth (serialisation with a drop-tail
queue), random or bursty loss, reordering, duplication and corruption, all drawn from one
seeded RNG, so a run is exactly repeatable. Used by the test suite and the in-memory
benchmark; nothing here touches sockets or the wall clock.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .proto.connection import Connection

CLIENT_ADDR = ("10.0.0.1", 50000)  # labels only: no packet ever leaves the process
SERVER_ADDR = ("10.0.0.2", 4433)


@dataclass
class LinkSpec:
    """Impairments of one direction."""

    delay: float = 0.010  # one-way, seconds
    bandwidth: float | None = None  # bits per second; None means infinite
    queue: int = 1000  # packets waiting for the wire before drop-tail
    loss: float = 0.0  # probability a loss event starts at a packet
    burst: int = 1  # packets dropped per loss event
    reorder: float = 0.0  # probability a packet is delayed by reorder_delay
    reorder_delay: float = 0.005
    duplicate: float = 0.0
    corrupt: float = 0.0
    blackout: tuple[float, float] | None = None  # (start, end) in virtual time: drop all
    ecn: int = 0  # IP ECN codepoint datagrams arrive with (2: ECT(0)); 0: not reported
    congestion_marks: float = 0.0  # probability a datagram arrives marked CE instead


@dataclass
class LinkCounters:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    queue_drops: int = 0
    reordered: int = 0
    duplicated: int = 0
    corrupted: int = 0
    blackout_drops: int = 0
    ce_marked: int = 0
    bytes_delivered: int = 0


@dataclass
class _Direction:
    spec: LinkSpec
    counters: LinkCounters = field(default_factory=LinkCounters)
    wire_free_at: float = 0.0
    burst_left: int = 0
    in_queue: list[float] = field(default_factory=list)  # departure times of queued packets


class SimNetwork:
    """Connects a client and a server ``Connection`` through two impaired links."""

    def __init__(
        self,
        client: Connection,
        server: Connection,
        *,
        to_server: LinkSpec | None = None,
        to_client: LinkSpec | None = None,
        seed: int = 1,
        start: float = 0.0,
    ) -> None:
        self.client = client
        self.server = server
        self.now = start
        self.rng = random.Random(seed)
        self.up = _Direction(to_server or LinkSpec())
        self.down = _Direction(to_client or LinkSpec())
        self._heap: list[tuple[float, int, Connection, bytes, tuple[str, int], int]] = []
        self._seq = 0
        self.client_addr = CLIENT_ADDR

    def start(self) -> None:
        self.client.connect(SERVER_ADDR, self.now)

    # ---- the wire --------------------------------------------------------------------------
    def _transmit(
        self, direction: _Direction, dst: Connection, data: bytes, src: tuple[str, int]
    ) -> None:
        spec, c, rng, now = direction.spec, direction.counters, self.rng, self.now
        c.sent += 1
        if spec.blackout is not None and spec.blackout[0] <= now < spec.blackout[1]:
            c.blackout_drops += 1
            return
        if direction.burst_left > 0:
            direction.burst_left -= 1
            c.lost += 1
            return
        if spec.loss and rng.random() < spec.loss:
            direction.burst_left = spec.burst - 1
            c.lost += 1
            return
        depart = now
        if spec.bandwidth:
            q = direction.in_queue
            while q and q[0] <= now:
                q.pop(0)
            if len(q) >= spec.queue:
                c.queue_drops += 1
                return
            start = max(now, direction.wire_free_at)
            depart = start + len(data) * 8 / spec.bandwidth
            direction.wire_free_at = depart
            q.append(depart)
        arrive = depart + spec.delay
        if spec.reorder and rng.random() < spec.reorder:
            arrive += spec.reorder_delay
            c.reordered += 1
        if spec.corrupt and rng.random() < spec.corrupt:
            pos = rng.randrange(1, len(data)) if len(data) > 1 else 0
            data = data[:pos] + bytes([data[pos] ^ (1 + rng.randrange(255))]) + data[pos + 1 :]
            c.corrupted += 1
        ecn = spec.ecn
        if spec.congestion_marks and rng.random() < spec.congestion_marks:
            ecn = 0x03
            c.ce_marked += 1
        self._schedule(arrive, dst, data, src, ecn)
        if spec.duplicate and rng.random() < spec.duplicate:
            c.duplicated += 1
            self._schedule(arrive + 0.001, dst, data, src, ecn)

    def _schedule(
        self, at: float, dst: Connection, data: bytes, src: tuple[str, int], ecn: int = 0
    ) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, dst, data, src, ecn))

    # ---- the event loop ---------------------------------------------------------------------
    def _flush(self) -> None:
        for conn, direction, dst, src in (
            (self.client, self.up, self.server, self.client_addr),
            (self.server, self.down, self.client, SERVER_ADDR),
        ):
            for data, _addr in conn.datagrams_to_send(self.now):
                self._transmit(direction, dst, data, src)

    def step(self) -> bool:
        """Advance to the next event; False when nothing is left to happen."""
        self._flush()
        candidates = []
        if self._heap:
            candidates.append(self._heap[0][0])
        for conn in (self.client, self.server):
            t = conn.next_timer()
            if t is not None:
                candidates.append(t)
        if not candidates:
            return False
        self.now = max(self.now, min(candidates))
        while self._heap and self._heap[0][0] <= self.now:
            _, seq, dst, data, src, ecn = heapq.heappop(self._heap)
            self._deliver(seq, dst, data, src, ecn)
        for conn in (self.client, self.server):
            t = conn.next_timer()
            if t is not None and t <= self.now:
                conn.handle_timer(self.now)
        return True

    def _deliver(
        self, seq: int, dst: Connection, data: bytes, src: tuple[str, int], ecn: int
    ) -> None:
        """Hand one datagram to its receiver (subclasses may route it differently)."""
        direction = self.up if dst is self.server else self.down
        direction.counters.delivered += 1
        direction.counters.bytes_delivered += len(data)
        dst.receive_datagram(data, src, self.now, 0, ecn)

    def run(self, until: Callable[[], bool], timeout: float = 60.0) -> bool:
        """Step until ``until()`` is true (returns True) or ``timeout`` virtual seconds pass."""
        end = self.now + timeout
        while not until():
            if self.now > end or not self.step():
                return until()
        return True

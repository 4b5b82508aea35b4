"""Pure, seeded impairment decisions for one direction of the link.

No sockets, no clock: callers pass ``now`` (monotonic seconds). Each random decision
(loss, corruption, duplication, reordering, jitter) draws from its own stream seeded by
``"{seed}:{direction}:{what}"``, so enabling one impairment never changes another's picks.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Generic, TypeVar

from .config import (
    DEFAULT_BURST,
    DEFAULT_QUEUE,
    DEFAULT_REORDER_GAP,
    DEFAULT_REORDER_HOLD_MS,
    LinkConfig,
)
from .counters import DirectionCounters

T = TypeVar("T")

#: A scheduled send: (due time, datagram, caller's tag).
Send = tuple[float, bytes, T]


def stream(seed: int, direction: str, what: str) -> random.Random:
    """The random stream of one decision of one direction."""
    return random.Random(f"{seed}:{direction}:{what}")


class Burst:
    """Events that hit ``burst`` consecutive packets; long-run hit fraction ``pct``/100.

    A new event starts on a packet not already in an event with probability
    q = p / (burst * (1 - p) + p), which makes the fraction of packets hit exactly p
    (a run of hits is one event of ``burst`` packets, or several back to back).
    """

    __slots__ = ("_burst", "_left", "_p_event", "_rng")

    def __init__(self, pct: float, burst: int, rng: random.Random) -> None:
        p = pct / 100.0
        self._p_event = 1.0 if p >= 1.0 else p / (burst * (1.0 - p) + p)
        self._burst = burst
        self._left = 0
        self._rng = rng

    def hit(self) -> bool:
        if self._left:
            self._left -= 1
            return True
        if self._p_event > 0.0 and self._rng.random() < self._p_event:
            self._left = self._burst - 1
            return True
        return False


def link_on(blackhole: tuple[float, float], elapsed: float) -> bool:
    """Whether an on/off link is on ``elapsed`` seconds after its start."""
    on_s, off_s = blackhole
    if off_s <= 0.0:
        return True
    return elapsed % (on_s + off_s) < on_s


def corrupt(data: bytes, rng: random.Random) -> bytes:
    """Flip bits of one byte chosen uniformly after the first byte (never a no-op).

    The first byte (QUIC's header form and type bits) stays intact, so a QUIC receiver
    parses the packet and its AEAD (or header checks) must reject it.
    """
    if len(data) < 2:
        return data
    out = bytearray(data)
    out[rng.randrange(1, len(out))] ^= rng.randrange(1, 256)
    return bytes(out)


class Serializer:
    """Link serialisation at ``rate_mbit`` with a drop-tail queue of ``limit`` packets.

    Each packet occupies the link for size*8/rate seconds; it waits behind the packets
    before it. ``limit`` counts packets waiting, not the one on the wire.
    """

    __slots__ = ("_busy_until", "_bytes_per_s", "_limit", "_waiting", "last_wait")

    def __init__(self, rate_mbit: float, limit: int) -> None:
        self._bytes_per_s = rate_mbit * 1e6 / 8.0
        self._limit = limit
        self._busy_until = 0.0
        self._waiting: deque[float] = deque()  # start times of packets not yet on the wire
        self.last_wait = 0.0  # seconds the last admitted packet waits before its turn

    def admit(self, size: int, now: float) -> float | None:
        """Time at which the packet has left the link, or None when the queue is full."""
        waiting = self._waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        start = self._busy_until if self._busy_until > now else now
        if start > now:
            if len(waiting) >= self._limit:
                return None
            waiting.append(start)
        self._busy_until = start + size / self._bytes_per_s
        self.last_wait = start - now
        return self._busy_until

    def queued(self, now: float) -> int:
        """Packets waiting at ``now``."""
        return sum(1 for start in self._waiting if start > now)


class RebindSchedule:
    """Rebinding times: ``start + first``, then every ``every`` seconds."""

    __slots__ = ("_every", "next_at")

    def __init__(self, first: float, every: float, start: float) -> None:
        self.next_at = start + first
        self._every = every

    def due(self, now: float) -> bool:
        """True (and advance) when a rebinding is due at ``now``."""
        if now < self.next_at:
            return False
        while self.next_at <= now:
            self.next_at += self._every
        return True


class _Held(Generic[T]):
    __slots__ = ("copies", "data", "left", "overtaken", "release_at", "tag")

    def __init__(self, data: bytes, tag: T, copies: int, left: int, release_at: float) -> None:
        self.data = data
        self.tag = tag
        self.copies = copies
        self.left = left
        self.release_at = release_at
        self.overtaken = 0


class LinkModel(Generic[T]):
    """One direction: decides per packet and schedules the sends.

    Order of decisions for each arriving packet: blackhole, mtu, drop list, loss, corruption,
    duplication, reordering; then the rate limiter (queue drops), delay and jitter.
    Sends never overtake each other except by reordering.
    """

    def __init__(
        self,
        config: LinkConfig,
        *,
        seed: int,
        direction: str,
        start: float,
        counters: DirectionCounters | None = None,
    ) -> None:
        config.validate()
        self.counters = counters if counters is not None else DirectionCounters()
        self._start = start
        self._index = 0
        self._delay = (config.delay_ms or 0.0) / 1000.0
        self._jitter = (config.jitter_ms or 0.0) / 1000.0
        self._jitter_rng = stream(seed, direction, "jitter")
        self._blackhole = config.blackhole
        self._mtu = config.mtu
        self._drop_list = frozenset(config.drop_list or ())
        burst = config.burst or DEFAULT_BURST
        self._loss = (
            Burst(config.loss_pct, burst, stream(seed, direction, "loss"))
            if config.loss_pct
            else None
        )
        self._corrupt = (
            Burst(config.corrupt_pct, burst, stream(seed, direction, "corrupt"))
            if config.corrupt_pct
            else None
        )
        self._corrupt_rng = stream(seed, direction, "corrupt-bytes")
        self._dup_p = (config.duplicate_pct or 0.0) / 100.0
        self._dup_rng = stream(seed, direction, "duplicate")
        self._reorder_p = (config.reorder_pct or 0.0) / 100.0
        self._reorder_rng = stream(seed, direction, "reorder")
        self._reorder_gap = config.reorder_gap or DEFAULT_REORDER_GAP
        hold_ms = config.reorder_hold_ms
        self._reorder_hold = (DEFAULT_REORDER_HOLD_MS if hold_ms is None else hold_ms) / 1000.0
        self._serializer = (
            Serializer(config.rate_mbit, config.queue or DEFAULT_QUEUE)
            if config.rate_mbit
            else None
        )
        self._held: list[_Held[T]] = []
        self._last_due = 0.0

    @property
    def index(self) -> int:
        """Packets seen so far (the 1-based index of the last one)."""
        return self._index

    def packet(self, data: bytes, tag: T, now: float) -> list[Send[T]]:
        """Decide the fate of one arriving packet; return the sends it causes."""
        c = self.counters
        c.received += 1
        c.received_bytes += len(data)
        self._index += 1
        if self._blackhole is not None and not link_on(self._blackhole, now - self._start):
            c.dropped_blackhole += 1
            return []
        if self._mtu is not None and len(data) > self._mtu:
            c.dropped_mtu += 1
            return []
        if self._index in self._drop_list:
            c.dropped_drop_list += 1
            return []
        if self._loss is not None and self._loss.hit():
            c.dropped_loss += 1
            return []
        if self._corrupt is not None and self._corrupt.hit() and len(data) > 1:
            data = corrupt(data, self._corrupt_rng)
            c.corrupted += 1
        copies = 1
        if self._dup_p and self._dup_rng.random() < self._dup_p:
            copies = 2
            c.duplicated += 1
        if self._reorder_p and self._reorder_rng.random() < self._reorder_p:
            release_at = now + self._reorder_hold
            self._held.append(_Held(data, tag, copies, self._reorder_gap, release_at))
            return []
        out: list[Send[T]] = []
        for _ in range(copies):
            self._enter(data, tag, now, out)
        if self._held:
            self._overtake(now, out)
        return out

    def next_deadline(self) -> float | None:
        """When `expire` next has work (a held packet's hold limit), or None."""
        if not self._held:
            return None
        return min(h.release_at for h in self._held)

    def expire(self, now: float) -> list[Send[T]]:
        """Release held packets whose hold limit has passed."""
        out: list[Send[T]] = []
        if not self._held:
            return out
        keep: list[_Held[T]] = []
        for held in self._held:
            if held.release_at <= now:
                self._release(held, now, out)
            else:
                keep.append(held)
        self._held = keep
        return out

    def _overtake(self, now: float, out: list[Send[T]]) -> None:
        keep: list[_Held[T]] = []
        for held in self._held:
            held.left -= 1
            held.overtaken += 1
            if held.left <= 0:
                self._release(held, now, out)
            else:
                keep.append(held)
        self._held = keep

    def _release(self, held: _Held[T], now: float, out: list[Send[T]]) -> None:
        if held.overtaken:
            self.counters.reordered += 1
        for _ in range(held.copies):
            self._enter(held.data, held.tag, now, out)

    def _enter(self, data: bytes, tag: T, now: float, out: list[Send[T]]) -> None:
        due = now
        if self._serializer is not None:
            finished = self._serializer.admit(len(data), now)
            if finished is None:
                self.counters.dropped_queue += 1
                return
            self.counters.queue_delay.add(self._serializer.last_wait)
            due = finished
        due += self._delay
        if self._jitter:
            due += self._jitter_rng.uniform(-self._jitter, self._jitter)
            due = max(due, now)
        if due < self._last_due:
            due = self._last_due
        self._last_due = due
        out.append((due, data, tag))

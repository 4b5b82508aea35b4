"""One UDP socket serving many connections, with a single timer handle.

The endpoint reads datagrams (GRO batches), has the sans-IO router
(:class:`quicish.proto.endpoint.Endpoint`: CID routing, Version Negotiation, Initial
admission, stateless answers) pick each one's connection, feeds them to it, and sends what
the connections produce in GSO batches. Timers of all connections share one
``loop.call_later``.

Time is ``time.monotonic()`` (the clock of asyncio's default loop), not ``loop.time()``:
uvloop's clock ticks in whole milliseconds, which would quantize every RTT sample on a fast
path. uvloop also rounds a timer's delay to the nearest millisecond, so timers are armed
half a millisecond late there; otherwise they fire early and re-arm in a busy loop.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from ..log import ENDPOINT, AdmissionLog, address
from ..proto.admission import Admission
from ..proto.endpoint import Endpoint as Router
from ..proto.endpoint import Routable
from ..proto.stateless import InitialVerdict, StatelessResponder
from ..udp import Address, UdpSocket

logger = logging.getLogger(ENDPOINT)

RECEIVE_READS = 16  # socket reads (each up to a whole GRO batch) per round
RECEIVE_ROUNDS = 2  # rounds of reads before connections answer
# While wakes bring one ack-eliciting datagram each (request/response traffic), only one wake
# in this many goes on to the read that finds the socket empty (the others stop after one).
LONE_PROBE_EVERY = 4
LONE_MAX_SIZE = 1200  # (a full-sized datagram, bulk data, is never lone)

clock = time.monotonic  # the clock of the whole asyncio layer (see the module docstring)


def _lone(batch: list[tuple[bytes, Address, int]], conn: Driven | None) -> bool:
    """``batch`` is one small ack-eliciting datagram of an established connection: a request
    or a response, which nothing follows before the answer. (A bulk transfer's datagrams
    are full-sized, at least 1200 bytes: they keep the reads until the socket is empty. A
    datagram that opens with a long header, such as the client's Finished, is never lone:
    its first request may be right behind it, and one answer covers both.)"""
    if len(batch) != 1 or conn is None:
        return False
    data = batch[0][0]
    return len(data) < LONE_MAX_SIZE and not data[0] & 0x80 and conn.answer_owed


def timer_slack(loop: asyncio.AbstractEventLoop) -> float:
    """Seconds to add to a timer's delay so that ``loop`` never runs it early."""
    return 0.0005 if type(loop).__module__.startswith("uvloop") else 0.0


class Driven(Routable, Protocol):
    """What the endpoint needs of a connection it drives (``QuicConnection``)."""

    #: This connection's timer deadline (the endpoint's to set and clear; its entry in the
    #: endpoint's heap may be earlier, and is then pushed again when it comes up).
    timer_deadline: float | None

    def feed_datagram(
        self, data: bytes, addr: Address, now: float, local: int = 0, ecn: int = 0
    ) -> None:
        """Process one datagram (its sans-IO connection's ``receive_datagram``)."""

    @property
    def flight_pending(self) -> bool:
        """A first flight is half sent: it has nothing to read before its answer goes."""
        ...

    @property
    def answer_owed(self) -> bool:
        """Its handshake is complete and an ack-eliciting packet awaits its ACK: a lone
        datagram that makes it so (a request, a response) needs no second read."""
        ...

    def after_io(self, now: float) -> None:
        """Datagrams were fed to it: process their events, ask for a flush."""

    def transmit(self, now: float) -> None:
        """Send what is ready now and re-arm its timer."""

    def on_timer(self, now: float) -> None:
        """Its timer deadline has passed."""

    def on_handshake_over(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once its handshake completed or failed."""


D = TypeVar("D", bound=Driven)


class Endpoint(Generic[D]):
    """Owns a UDP socket and the timers of its connections; the routing, Version
    Negotiation and admission are the sans-IO :class:`~quicish.proto.endpoint.Endpoint`'s
    (:attr:`router`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        udp: UdpSocket,
        *,
        accept: Callable[[bytes, Address, float, InitialVerdict | None], D | None] | None = None,
        cid_length: int = 8,
        stateless: StatelessResponder | None = None,
        admission: Admission | None = None,
        local_id: int = 0,
    ) -> None:
        self._loop = loop
        self.udp = udp
        # Server: builds a connection for a new client's Initial and feeds it that datagram;
        # returns None when the datagram did not hold a valid packet.
        self._accept = accept
        self.router: Router[D] = Router(
            accept=None if accept is None else self._accept_new,
            cid_length=cid_length,
            stateless=stateless,
            admission=admission,
            local_id=local_id,
        )
        # One live entry per connection (its deadline in _queued), at or before the deadline
        # it has now (timer_deadline); other entries are superseded, dropped when popped.
        self._timers: list[tuple[float, int, D]] = []
        self._queued: dict[D, float] = {}
        self._timer_seq = 0
        self._timer_handle: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._timer_slack = timer_slack(loop)
        self._dirty: set[D] = set()
        self._flush_scheduled = False
        self._backlog: list[tuple[list[bytes], Address]] = []
        self._closed = False
        self.last_receive = 0.0  # clock() when the last receive round ended
        self._lone_wakes = 0  # wakes in a row that found one datagram, then an empty socket
        self._after_flush: Callable[[], None] | None = None
        self._succeeded: asyncio.Future[None] | None = None
        # Server: admission pressure, logged once per episode (checked once per round).
        self._admission_log = (
            None if admission is None else AdmissionLog(admission, address(udp.address))
        )
        loop.add_reader(udp.fileno(), self._on_readable)

    @property
    def address(self) -> Address:
        return self.udp.address

    @property
    def local_id(self) -> int:
        """The path id connections know this socket by (migration)."""
        return self.router.local_id

    @property
    def stateless(self) -> StatelessResponder | None:
        """Server: Retry, INVALID_TOKEN closes and stateless resets (RFC 9000 8.1, 10.3)."""
        return self.router.stateless

    @property
    def admission(self) -> Admission | None:
        """Server: the half-open count and the decisions on new clients."""
        return self.router.admission

    @property
    def datagrams_dropped(self) -> int:
        return self.router.datagrams_dropped

    # ---- routing ---------------------------------------------------------------------------
    def register(self, cid: bytes, conn: D) -> None:
        self.router.register(cid, conn)

    def unregister(self, cid: bytes) -> None:
        self.router.unregister(cid)

    def forget(self, conn: D) -> None:
        """``conn`` has ended: drop its CIDs and any pending flush."""
        self.router.forget(conn)
        self._dirty.discard(conn)
        self._queued.pop(conn, None)  # (its heap entries are dropped as superseded)

    @property
    def connections(self) -> set[D]:
        return self.router.connections

    def _accept_new(
        self, data: bytes, addr: Address, now: float, verdict: InitialVerdict | None
    ) -> D | None:
        assert self._accept is not None
        conn = self._accept(data, addr, now, verdict)
        if conn is not None and self.router.admission is not None:
            # Half-open (counted by the router) until its handshake completes or fails.
            router = self.router
            conn.on_handshake_over(lambda: router.settled(conn))
        return conn

    # ---- receiving -------------------------------------------------------------------------
    def _on_readable(self) -> None:
        now = clock()
        touched: set[D] = set()
        try:
            if self._lone_wakes % LONE_PROBE_EVERY:
                # The last wakes each found one ack-eliciting datagram of an established
                # connection, then an empty socket (request/response traffic; not the ACKs
                # a bulk sender reads): read one and stop (no read that finds nothing). If
                # more waits, the loop's poll reports the socket again at once; every
                # LONE_PROBE_EVERY-th wake reads on until the socket is empty, as below.
                batch = self.udp.receive(1)
                conn = self._feed(batch, now, touched)
                if _lone(batch, conn):
                    self._lone_wakes += 1
                    self._answer(clock(), touched)
                    return
                self._lone_wakes = 0
            # A second round picks up what arrived while the first was processed (the rest
            # of a handshake flight, a request behind a Finished), so one answer covers both;
            # not when the round held only new clients' complete hellos (a read that would
            # find nothing would hold up the ServerHello).
            for round_ in range(RECEIVE_ROUNDS):
                first = round_ == 0
                batch = self.udp.receive(RECEIVE_READS)
                if not batch:
                    break
                conn = self._feed(batch, now, touched)
                now = clock()
                if _lone(batch, conn):
                    # One ack-eliciting datagram of an established connection (a request,
                    # a response): a second read would find nothing and cost a system call.
                    if first:
                        self._lone_wakes += 1
                    break
                if first:
                    self._lone_wakes = 0
                if all(conn.flight_pending for conn in touched):
                    break  # new clients' hellos, answered: they send nothing before our answer
        except OSError as exc:
            logger.warning("[%s] UDP receive failed: %s", address(self.udp.address), exc)
        self._answer(now, touched)

    def _feed(
        self, batch: list[tuple[bytes, Address, int]], now: float, touched: set[D]
    ) -> D | None:
        """Route each datagram to its connection and feed it; returns the last one's."""
        router = self.router
        route = router.route
        local = router.local_id
        conn = None
        for data, addr, ecn in batch:
            conn = route(data, addr, now)
            if conn is not None:
                if conn is router.accepted:
                    router.accepted = None  # accept() already fed it this datagram
                else:
                    conn.feed_datagram(data, addr, now, local, ecn)
                touched.add(conn)
        if router.outbox:
            for datagram, to in router.take_outbox():
                self._send_raw([datagram], to)
        return conn

    def _answer(self, now: float, touched: set[D]) -> None:
        self.last_receive = now
        if self._admission_log is not None:
            self._admission_log.check()
        # Each touched connection is flushed by a callback queued behind the tasks its data
        # woke, so a handler's immediate reply leaves in the same datagram as the ACK.
        for conn in touched:
            conn.after_io(now)

    # ---- sending ---------------------------------------------------------------------------
    def mark_dirty(self, conn: D) -> None:
        """Ask for ``conn``'s output to be sent soon (coalesces many writes into one flush)."""
        self._dirty.add(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def flush(self) -> None:
        """Send what the connections have ready now."""
        self._flush()

    def after_next_flush(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, right after the next flush has sent its datagrams: work
        that is due soon but must not hold up an answer (a server's spare connection)."""
        self._after_flush = callback

    def _flush(self) -> None:
        self._flush_scheduled = False
        now = clock()
        while self._dirty:
            conn = self._dirty.pop()
            conn.transmit(now)
        if self._after_flush is not None:
            callback, self._after_flush = self._after_flush, None
            callback()

    def send(self, datagrams: list[bytes], addr: Address) -> None:
        if self._backlog:
            self._backlog.append((datagrams, addr))
            return
        self._send_raw(datagrams, addr)

    def _send_raw(self, datagrams: list[bytes], addr: Address) -> None:
        if self._closed:
            return
        left = self.udp.send(datagrams, addr)
        if left:
            self._backlog.append((left, addr))
            self._loop.add_writer(self.udp.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        while self._backlog:
            datagrams, addr = self._backlog[0]
            left = self.udp.send(datagrams, addr)
            if left:
                self._backlog[0] = (left, addr)
                return
            self._backlog.pop(0)
        self._loop.remove_writer(self.udp.fileno())
        now = clock()
        for conn in self.connections:
            conn.transmit(now)

    def succeeded(self) -> asyncio.Future[None]:
        """A future done with result None, one for all the endpoint's connections (what a
        connection's handshake futures become once both succeeded)."""
        future = self._succeeded
        if future is None:
            future = self._succeeded = self._loop.create_future()
            future.set_result(None)
        return future

    @property
    def congested(self) -> bool:
        """True while the socket buffer is full and datagrams wait in the backlog."""
        return bool(self._backlog)

    # ---- timers ----------------------------------------------------------------------------
    def set_timer(self, conn: D, deadline: float | None) -> None:
        conn.timer_deadline = deadline
        if deadline is None:
            return
        queued = self._queued.get(conn)
        if queued is not None and queued <= deadline:
            # Its entry in the heap comes first (a deadline that moves later, as the probe
            # timeout does with every packet sent): looked at then, pushed again if needed.
            return
        self._push(conn, deadline)
        if self._timer_at is None or deadline < self._timer_at:
            self._arm(deadline)

    def _push(self, conn: D, deadline: float) -> None:
        """Give ``conn`` its (one live) entry in the heap, at ``deadline``."""
        self._queued[conn] = deadline
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, conn))

    def _arm(self, deadline: float) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
        self._timer_at = deadline
        delay = deadline - clock() + self._timer_slack
        self._timer_handle = self._loop.call_later(max(delay, 0.0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer_handle = None
        self._timer_at = None
        if self._dirty:
            # Answers already made (say, to a datagram read in this loop iteration) go out
            # before any timer work: a loop runs due timers ahead of queued callbacks.
            self._flush()
        now = clock()
        due: list[D] = []
        timers = self._timers
        queued = self._queued
        while timers and timers[0][0] <= now:
            deadline, _, conn = heapq.heappop(timers)
            if queued.get(conn) != deadline:
                continue  # superseded by an earlier entry of the same connection
            del queued[conn]
            actual = conn.timer_deadline
            if actual is None:
                continue
            if actual <= now:
                conn.timer_deadline = None
                due.append(conn)
            else:  # the deadline moved later since this entry went in
                self._push(conn, actual)
        for conn in due:
            conn.on_timer(now)
        # Drop superseded entries at the top so the next arm is accurate.
        while timers and queued.get(timers[0][2]) != timers[0][0]:
            heapq.heappop(timers)
        if timers:
            self._arm(timers[0][0])
        self._flush()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer_handle is not None:
            self._timer_handle.cancel()
        try:
            self._loop.remove_reader(self.udp.fileno())
            if self._backlog:
                self._loop.remove_writer(self.udp.fileno())
        except (ValueError, OSError):
            pass
        self.udp.close()

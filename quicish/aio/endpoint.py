"""One UDP socket serving many connections, with a single timer handle.

The endpoint reads datagrams (GRO batches), routes them by destination connection ID, feeds
them to each sans-IO :class:`~quicish.proto.connection.Connection`, and sends what the
connections produce in GSO batches. Timers of all connections share one ``loop.call_later``.

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
from typing import TYPE_CHECKING

from ..errors import DecodeError
from ..proto.admission import Admission
from ..udp import Address, UdpSocket
from ..wire.packet import PacketType, encode_version_negotiation, parse_header
from .stateless import InitialVerdict, StatelessResponder

if TYPE_CHECKING:
    from .connection import QuicConnection

Accept = Callable[[bytes, Address, float, InitialVerdict | None], "QuicConnection | None"]

logger = logging.getLogger("quicish")

SUPPORTED = (0x00000001, 0x6B3343CF)
MIN_INITIAL_DCID = 8  # RFC 9000 7.2: a client's first Initial DCID is at least 8 bytes
MIN_FIRST_DATAGRAM = 1200  # RFC 9000 14.1: a client's first datagram is at least this big
RECEIVE_READS = 16  # socket reads (each up to a whole GRO batch) per round
RECEIVE_ROUNDS = 2  # rounds of reads before connections answer

clock = time.monotonic  # the clock of the whole asyncio layer (see the module docstring)


def timer_slack(loop: asyncio.AbstractEventLoop) -> float:
    """Seconds to add to a timer's delay so that ``loop`` never runs it early."""
    return 0.0005 if type(loop).__module__.startswith("uvloop") else 0.0


class Endpoint:
    """Owns a UDP socket; demultiplexes datagrams to connections by connection ID."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        udp: UdpSocket,
        *,
        accept: Accept | None = None,
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
        self._accepted: QuicConnection | None = None
        # Server: Retry, INVALID_TOKEN closes and stateless resets (RFC 9000 8.1, 10.3).
        self.stateless = stateless
        # Server: counts half-open connections (the decisions are the stateless layer's).
        self.admission = admission
        self.local_id = local_id  # the path id connections know this socket by (migration)
        self._cid_length = cid_length
        self._by_cid: dict[bytes, QuicConnection] = {}
        self._cids_of: dict[QuicConnection, set[bytes]] = {}  # the reverse, for forget()
        self._timers: list[tuple[float, int, QuicConnection]] = []
        self._timer_seq = 0
        self._timer_handle: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._timer_slack = timer_slack(loop)
        self._dirty: set[QuicConnection] = set()
        self._flush_scheduled = False
        self._backlog: list[tuple[list[bytes], Address]] = []
        self._closed = False
        self.datagrams_dropped = 0
        self.last_receive = 0.0  # clock() when the last receive round ended
        loop.add_reader(udp.fileno(), self._on_readable)

    @property
    def address(self) -> Address:
        return self.udp.address

    # ---- routing ---------------------------------------------------------------------------
    def register(self, cid: bytes, conn: QuicConnection) -> None:
        old = self._by_cid.get(cid)
        if old is not None and old is not conn:
            self._cids_of[old].discard(cid)
        self._by_cid[cid] = conn
        cids = self._cids_of.get(conn)
        if cids is None:
            self._cids_of[conn] = {cid}
        else:
            cids.add(cid)

    def unregister(self, cid: bytes) -> None:
        conn = self._by_cid.pop(cid, None)
        if conn is not None:
            self._cids_of[conn].discard(cid)

    def forget(self, conn: QuicConnection) -> None:
        """``conn`` has ended: drop its CIDs (its own only: no scan of the table)."""
        by_cid = self._by_cid
        for cid in self._cids_of.pop(conn, ()):
            if by_cid.get(cid) is conn:
                del by_cid[cid]
        self._dirty.discard(conn)
        if self.admission is not None:
            self.admission.settled(conn)

    @property
    def connections(self) -> set[QuicConnection]:
        return set(self._cids_of)

    # ---- receiving -------------------------------------------------------------------------
    def _on_readable(self) -> None:
        now = clock()
        touched: set[QuicConnection] = set()
        try:
            # A second round picks up what arrived while the first was processed (the rest
            # of a handshake flight, a request behind a Finished), so one answer covers both;
            # not when the round held only new clients' complete hellos (a read that would
            # find nothing would hold up the ServerHello).
            for _ in range(RECEIVE_ROUNDS):
                batch = self.udp.receive(RECEIVE_READS)
                if not batch:
                    break
                for data, addr, ecn in batch:
                    try:
                        conn = self._route(data, addr, now)
                    except Exception:  # e.g. MemoryError making a connection: drop this one
                        logger.exception("dropped a datagram: internal error")
                        self.datagrams_dropped += 1
                        continue
                    if conn is not None:
                        if conn is self._accepted:
                            self._accepted = None  # accept() already fed it this datagram
                        else:
                            conn._proto.receive_datagram(data, addr, now, self.local_id, ecn)
                        touched.add(conn)
                now = clock()
                if all(conn._proto.flight_pending for conn in touched):
                    break  # new clients' hellos, answered: they send nothing before our answer
        except OSError as exc:
            logger.warning("UDP receive failed: %s", exc)
        self.last_receive = now
        # Each touched connection is flushed by a callback queued behind the tasks its data
        # woke, so a handler's immediate reply leaves in the same datagram as the ACK.
        for conn in touched:
            conn._after_io(now)

    def _route(self, data: bytes, addr: Address, now: float) -> QuicConnection | None:
        if not data:
            return None
        first = data[0]
        if first & 0x80:
            try:
                header = parse_header(data, 0, short_dcid_len=self._cid_length)
            except DecodeError:
                self.datagrams_dropped += 1
                return None
            conn = self._by_cid.get(header.dcid)
            if conn is not None:
                return conn
            if self._accept is None:
                self.datagrams_dropped += 1
                return None
            if header.version not in SUPPORTED:
                # RFC 9000 6.1: never answer a Version Negotiation packet (version 0), and
                # answer other versions only in a datagram big enough to be a first one.
                if header.version and len(data) >= MIN_FIRST_DATAGRAM:
                    vn = encode_version_negotiation(header.scid, header.dcid, list(SUPPORTED))
                    self._send_raw([vn], addr)
                else:
                    self.datagrams_dropped += 1
                return None
            if (
                header.packet_type != PacketType.INITIAL
                or len(data) < MIN_FIRST_DATAGRAM
                or len(header.dcid) < MIN_INITIAL_DCID
            ):
                self.datagrams_dropped += 1
                return None
            verdict = None
            if self.stateless is not None:
                verdict = self.stateless.check_initial(header, addr, now)
                if verdict.reply is not None:
                    self._send_raw([verdict.reply], addr)
                if not verdict.accept:
                    return None
            new = self._accept(data, addr, now, verdict)
            if new is None:  # e.g. an Initial that does not decrypt: no connection state
                self.datagrams_dropped += 1
                return None
            self.register(header.dcid, new)
            self.register(new._proto.host_cid, new)
            self._accepted = new
            if self.admission is not None:
                self._half_open(new, self.admission)
            return new
        conn = self._by_cid.get(bytes(data[1 : 1 + self._cid_length]))
        if conn is None:
            if self._accept is None and self._by_cid:
                # A client's socket: perhaps a stateless reset, which the connection checks.
                return next(iter(self._by_cid.values()))
            self.datagrams_dropped += 1
            if self.stateless is not None:
                reset = self.stateless.stateless_reset(data)
                if reset is not None:
                    self._send_raw([reset], addr)
        return conn

    def _half_open(self, conn: QuicConnection, admission: Admission) -> None:
        """Count ``conn`` as half-open until its handshake completes or fails (or it ends)."""
        admission.opened(conn)
        conn._handshake_done.add_done_callback(lambda _: admission.settled(conn))

    # ---- sending ---------------------------------------------------------------------------
    def mark_dirty(self, conn: QuicConnection) -> None:
        """Ask for ``conn``'s output to be sent soon (coalesces many writes into one flush)."""
        self._dirty.add(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def flush(self) -> None:
        """Send what the connections have ready now."""
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        now = clock()
        while self._dirty:
            conn = self._dirty.pop()
            conn._transmit(now)

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
            conn._transmit(now)

    @property
    def congested(self) -> bool:
        """True while the socket buffer is full and datagrams wait in the backlog."""
        return bool(self._backlog)

    # ---- timers ----------------------------------------------------------------------------
    def set_timer(self, conn: QuicConnection, deadline: float | None) -> None:
        conn._timer_deadline = deadline
        if deadline is None:
            return
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, conn))
        if self._timer_at is None or deadline < self._timer_at:
            self._arm(deadline)

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
        due: list[QuicConnection] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, conn = heapq.heappop(timers)
            if conn._timer_deadline == deadline:
                conn._timer_deadline = None
                due.append(conn)
        for conn in due:
            conn._on_timer(now)
        # Drop stale entries at the top so the next arm is accurate.
        while timers and timers[0][2]._timer_deadline != timers[0][0]:
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

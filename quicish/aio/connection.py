"""The asyncio face of one QUIC connection: streams as reader/writer pairs, close, stats."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .. import log
from ..errors import (
    CertificateError,
    ConnectionClosedError,
    ErrorCode,
    QuicError,
    StreamResetError,
)
from ..proto import events as ev
from ..proto.connection import DATAGRAM_OVERHEAD, Connection
from ..proto.stats import Stats
from ..proto.stream_manager import StreamLimitReached
from ..qlog.sinks import Tracer
from ..tls.alerts import Alert
from ..udp import Address
from .early_data import deliver_early
from .endpoint import Endpoint, clock
from .migration import LocalPaths
from .streams import QuicStreamReader, QuicStreamWriter

logger = logging.getLogger("quicish")
lifecycle_log = logging.getLogger(log.CONNECTION)  # INFO: handshake, paths, close
_SUITE_NAMES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
}
T = TypeVar("T")

StreamHandler = Callable[[QuicStreamReader, QuicStreamWriter], Awaitable[None] | None]


class QuicConnection:
    """A QUIC connection driven by an :class:`Endpoint`.

    Users get one from :func:`quicish.connect` or from a server's ``on_connection`` callback.
    """

    __slots__ = (
        "_cids", "_closed", "_confirmed", "_datagram_waiter", "_datagrams", "_datagrams_size",
        "_early_check", "_ended", "_endpoint", "_handshake_done", "_incoming", "_linger_task",
        "_local_paths", "_loop", "_on_stream", "_owns_endpoint", "_path", "_preparing", "_proto",
        "_readers", "_released", "_send_buffer_limit", "_started", "_stream_credit_waiters",
        "_tasks", "_terminated", "_ticket_waiters", "_writers", "close_error", "feed_datagram",
        "session_ticket", "timer_deadline", "validated_paths",
    )  # fmt: skip

    def __init__(
        self,
        proto: Connection,
        endpoint: Endpoint[QuicConnection],
        *,
        on_stream: StreamHandler | None = None,
        owns_endpoint: bool = False,
    ) -> None:
        self._proto = proto
        self._endpoint = endpoint
        self._loop = asyncio.get_running_loop() if _has_loop() else asyncio.get_event_loop()
        self._on_stream = on_stream
        self._owns_endpoint = owns_endpoint
        # A server's check of streams opened in 0-RTT (Config.early_data callable), or None.
        check = proto.config.early_data
        self._early_check = check if callable(check) and not proto.is_client else None
        # The streams' readers and writers by id (the shared empty tables while none).
        self._readers: dict[int, QuicStreamReader] = _NO_READERS
        self._writers: dict[int, QuicStreamWriter] = _NO_WRITERS
        # The peer's streams for accept_stream() (made on first use: ~3 KB of deques that a
        # server with on_stream never needs).
        self._incoming: asyncio.Queue[tuple[QuicStreamReader, QuicStreamWriter]] | None = None
        self._handshake_done: asyncio.Future[None] = self._loop.create_future()
        self._confirmed: asyncio.Future[None] = self._loop.create_future()
        # The connection's end for the application (closing begins) and its release: flags,
        # and futures made for the first waiter (most connections never have one).
        self._ended = self._released = False
        self._terminated: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        # Waiters for the peer's stream credit and for a session ticket (None: none yet).
        self._stream_credit_waiters: list[asyncio.Future[None]] | None = None
        # Received datagrams not yet read: at most config.datagram_receive_buffer bytes (each
        # charged DATAGRAM_OVERHEAD more), the oldest dropped beyond it.
        self._datagrams: deque[bytes] | None = None  # (made for the first: most get none)
        self._datagrams_size = 0
        #: The endpoint's: this connection's deadline in its timer heap.
        self.timer_deadline: float | None = None
        #: The endpoint feeds datagrams straight to the sans-IO connection.
        self.feed_datagram = proto.receive_datagram
        self._preparing = False  # a call to _prepare is scheduled
        # The running handler tasks (held: the loop keeps only weak references), None
        # while there is none (an empty set is 216 bytes, and most connections are idle).
        self._tasks: set[asyncio.Task[Any]] | None = None
        self._send_buffer_limit = proto.config.send_buffer_size
        self.session_ticket: bytes | None = None
        self._ticket_waiters: list[asyncio.Future[None]] | None = None
        self.close_error: ConnectionClosedError | None = None
        # A client's CIDs, for the sockets of new paths (a server never migrates actively).
        self._cids: list[bytes] | None = [proto.host_cid] if proto.is_client else None
        #: Peer addresses (server) or local paths (client) validated after a migration.
        self.validated_paths: list[tuple[Address, int]] = []
        self._started = clock()  # for the lifecycle log lines
        self._path: tuple[Any, Any] | None = None  # (local, peer) last logged
        self._datagram_waiter: asyncio.Future[None] | None = None
        self._linger_task: asyncio.Task[None] | None = None  # the closing period, after close()
        self._local_paths: LocalPaths[QuicConnection] | None = None  # after migrate() (client)

    # ---- public API --------------------------------------------------------------------------
    @property
    def remote_address(self) -> Address | None:
        return self._proto.peer_addr

    @property
    def local_address(self) -> Address:
        return self._endpoint.address

    @property
    def alpn(self) -> str | None:
        return self._proto.alpn

    @property
    def original_dcid(self) -> bytes:
        """The DCID of the client's first Initial: both ends know it, log lines start with
        it in hex and qlog files are named by it."""
        return self._proto.original_dcid

    @property
    def early_data_accepted(self) -> bool:
        return self._proto.early_data_accepted

    @property
    def session_resumed(self) -> bool:
        return self._proto.session_resumed

    async def wait_connected(self) -> None:
        """Wait for the handshake; raises the close error if it fails."""
        await asyncio.shield(self._handshake_done)

    async def wait_confirmed(self) -> None:
        """Wait for the handshake to be confirmed (RFC 9001 4.1.2: a client hears
        HANDSHAKE_DONE); raises the close error if the connection ends first."""
        await asyncio.shield(self._confirmed)

    async def open_stream(
        self, unidirectional: bool = False
    ) -> tuple[QuicStreamReader, QuicStreamWriter]:
        """Open a stream; waits while the peer's stream limit is reached."""
        while True:
            self._raise_if_closed()
            try:
                sid = self._proto.open_stream(bidirectional=not unidirectional)
                break
            except StreamLimitReached:
                waiter = self._loop.create_future()
                if self._stream_credit_waiters is None:
                    self._stream_credit_waiters = []
                self._stream_credit_waiters.append(waiter)
                self._endpoint.mark_dirty(self)  # lets STREAMS_BLOCKED go out
                await waiter
        reader = QuicStreamReader(self, sid)
        writer = QuicStreamWriter(self, sid, reader)
        if not unidirectional:
            self._add_reader(reader)
        self._add_writer(writer)
        return reader, writer

    def _add_reader(self, reader: QuicStreamReader) -> None:
        if self._readers is _NO_READERS:
            self._readers = {}
        self._readers[reader.stream_id] = reader

    def _add_writer(self, writer: QuicStreamWriter) -> None:
        if self._writers is _NO_WRITERS:
            self._writers = {}
        self._writers[writer.stream_id] = writer

    async def accept_stream(self) -> tuple[QuicStreamReader, QuicStreamWriter]:
        """The next stream the peer opened (the writer of a unidirectional one is closed)."""
        return await self._get_or_raise(self._incoming_streams())

    def _incoming_streams(self) -> asyncio.Queue[tuple[QuicStreamReader, QuicStreamWriter]]:
        queue = self._incoming
        if queue is None:
            queue = self._incoming = asyncio.Queue()
        return queue

    async def _get_or_raise(self, queue: asyncio.Queue[T]) -> T:
        """The next item of ``queue``; ConnectionClosedError once it is empty and the
        connection has ended."""
        if not queue.empty():
            return queue.get_nowait()
        self._raise_if_closed()
        getter = asyncio.ensure_future(queue.get())
        waiting: set[asyncio.Future[Any]] = {getter, self._end_future()}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        raise self.close_error or ConnectionClosedError(0, "connection closed")

    def send_datagram(self, data: bytes) -> None:
        """Send an unreliable datagram (RFC 9221; needs ``max_datagram_frame_size`` on both)."""
        self._proto.send_datagram(data)
        self._endpoint.mark_dirty(self)

    async def receive_datagram(self) -> bytes:
        """The next DATAGRAM frame's payload; ConnectionClosedError once the connection ends.

        Unread datagrams beyond ``Config.datagram_receive_buffer`` bytes are dropped, the
        oldest first (``stats().datagrams_dropped`` counts them)."""
        while not self._datagrams:
            self._raise_if_closed()
            waiter = self._datagram_waiter
            if waiter is None or waiter.done():
                waiter = self._datagram_waiter = self._loop.create_future()
            ended = self._end_future()
            await asyncio.wait({waiter, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not self._datagrams and self._ended:
                raise self.close_error or ConnectionClosedError(0, "connection closed")
        assert self._datagrams is not None
        data = self._datagrams.popleft()
        self._datagrams_size -= len(data) + DATAGRAM_OVERHEAD
        return data

    def _queue_datagram(self, data: bytes) -> None:
        queue = self._datagrams
        if queue is None:
            queue = self._datagrams = deque()
        queue.append(data)
        self._datagrams_size += len(data) + DATAGRAM_OVERHEAD
        limit = self._proto.config.datagram_receive_buffer
        while self._datagrams_size > limit and queue:
            self._datagrams_size -= len(queue.popleft()) + DATAGRAM_OVERHEAD
            self._proto.stats_counters.datagrams_dropped += 1
        waiter = self._datagram_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_session_ticket(self) -> bytes | None:
        """The session ticket for resumption / 0-RTT once the server sent one (None if the
        connection closes first)."""
        while self.session_ticket is None and not self._released:
            waiter = self._loop.create_future()
            if self._ticket_waiters is None:
                self._ticket_waiters = []
            self._ticket_waiters.append(waiter)
            released = self._release_future()
            await asyncio.wait([waiter, released], return_when=asyncio.FIRST_COMPLETED)
        return self.session_ticket

    def stats(self) -> Stats:
        """A snapshot of RTT, congestion window, bytes and packets sent/received/lost and
        more (:class:`quicish.Stats` documents every field)."""
        return self._proto.stats()

    @property
    def tracer(self) -> Tracer | None:
        """``tracer(name, data)`` called with every qlog event of this connection from now
        on (``name`` without the ``quic:`` namespace, e.g. ``packet_lost``; ``data`` the
        draft's dict, docs/qlog.md); None: none. Settable at any time."""
        return self._proto.tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        self._proto.tracer = tracer

    @property
    def qlog_path(self) -> str | None:
        """The qlog file of this connection (``Config.qlog_dir`` or ``QLOGDIR``), if any."""
        return self._proto.qlog_path

    @property
    def version(self) -> int:
        """The QUIC version in use (0x1, or 0x6b3343cf for v2 after negotiation)."""
        return self._proto.version

    @property
    def handshake_confirmed(self) -> bool:
        """True once the handshake is confirmed (RFC 9001 4.1.2): migration and key updates
        are allowed from then on."""
        return self._proto.handshake_confirmed

    @property
    def new_token(self) -> bytes | None:
        """Client: the server's NEW_TOKEN, for ``connect(token=...)`` to skip a Retry."""
        return self._proto.new_token

    async def migrate(self, local_host: str | None = None) -> None:
        """Client: move to a new local UDP socket (active migration, RFC 9000 9.2).

        The new path is probed with PATH_CHALLENGE while traffic continues on the old one;
        returns once the server answered and the connection sends from the new socket.
        Waits for the handshake to be confirmed first. Raises ``ConnectionStateError`` when
        migration is not possible (the server sent ``disable_active_migration``, no spare
        connection ID) and ``QuicError`` when the new path does not answer."""
        if self._proto.is_client:
            await self.wait_confirmed()
        if self._local_paths is None:
            self._local_paths = LocalPaths(
                self, self._proto, self._endpoint, self._cids or (), self._loop
            )
        await self._local_paths.migrate(local_host)

    def request_key_update(self) -> None:
        """Start a 1-RTT key update (RFC 9001 section 6)."""
        self._proto.request_key_update()
        self._endpoint.mark_dirty(self)

    def close(self, error_code: int = 0, reason: str = "") -> None:
        """Close the connection: CONNECTION_CLOSE (with an application error code) goes out
        now. The closing period (RFC 9000 10.2: answering late packets, then releasing the
        connection IDs and, for a client, the socket) runs in the background."""
        if self._proto.is_terminated:
            return
        self._proto.close(error_code, reason, now=clock())
        self._endpoint.mark_dirty(self)
        self._endpoint.flush()  # the close goes out now; events (termination) processed

    async def wait_closed(self) -> None:
        """Wait until the connection has ended for the application (closed by either side,
        timed out, or aborted). It does not wait for the closing period."""
        await asyncio.shield(self._end_future())

    async def wait_released(self) -> None:
        """Wait until the connection's closing or draining period is over and it holds no
        connection IDs (nor, for a client, a socket) any more."""
        await asyncio.shield(self._release_future())

    async def __aenter__(self) -> QuicConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    # ---- driver interface (the endpoint's, local paths', and connect()'s) --------------------
    @property
    def host_cid(self) -> bytes:
        """Our first connection ID."""
        return self._proto.host_cid

    @property
    def flight_pending(self) -> bool:
        """The ServerHello went out alone; the rest of the first flight is still to build."""
        return self._proto.flight_pending

    @property
    def answer_owed(self) -> bool:
        """The handshake is complete and an ack-eliciting packet received awaits its ACK
        (a request or a response just read: the answer will carry it)."""
        return self._proto.answer_owed

    @property
    def handshake_done(self) -> asyncio.Future[None]:
        """The handshake's outcome, unshielded (for ``connect()``: nobody else awaits it yet;
        applications use :meth:`wait_connected`)."""
        return self._handshake_done

    def on_handshake_over(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the loop) once the handshake completed or failed."""
        self._handshake_done.add_done_callback(lambda _: callback())

    def on_terminated(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the loop) once the connection has ended for the
        application."""
        self._end_future().add_done_callback(lambda _: callback())

    def rebind(self, endpoint: Endpoint[QuicConnection]) -> None:
        """Send from ``endpoint`` from now on (a validated new local path)."""
        self._endpoint = endpoint

    def after_io(self, now: float) -> None:
        """Datagrams were fed in: process their events and ask for a flush."""
        waiting = not self._handshake_done.done()
        self._process_events()
        if waiting and self._handshake_done.done() and self._proto.is_client:
            # The client's Finished leaves now, ahead of the application its handshake
            # wakes: the server works on it while the first request is written.
            self.transmit(clock())
            return
        self._endpoint.mark_dirty(self)

    def on_timer(self, now: float) -> None:
        """The timer deadline passed."""
        self._proto.handle_timer(now)
        self._process_events()
        self.transmit(now)

    def transmit(self, now: float) -> None:
        """Send what is ready now and re-arm the timer."""
        if self._endpoint.congested:
            self._endpoint.set_timer(self, self._proto.next_timer())
            return
        datagrams = self._proto.datagrams_to_send(now)
        if datagrams:
            self._send_datagrams(datagrams)
            if len(datagrams) >= 64:
                self._endpoint.mark_dirty(self)  # more may be ready: continue next iteration
        if self._proto.flight_pending:
            # The ServerHello is out on its own; the client works on it while we sign.
            self._send_datagrams(self._proto.datagrams_to_send(clock()))
        if self._local_paths is not None:
            self._local_paths.send_probes(now)
        if self._proto.wants_preparation and not self._preparing:
            # While the peer works on its answer: make what the handshake's end needs.
            self._preparing = True
            self._loop.call_soon(self._prepare)
        self._process_events()
        self._wake_writers()
        if self._proto.is_closed:
            self._finish()
            return
        self._endpoint.set_timer(self, self._proto.next_timer())

    def _send_datagrams(self, datagrams: list[tuple[bytes, Address]]) -> None:
        if len(datagrams) == 1:  # (a reply, an ACK)
            self._endpoint.send([datagrams[0][0]], datagrams[0][1])
            return
        if not datagrams:
            return
        addr = datagrams[0][1]
        self._endpoint.send([d for d, a in datagrams if a == addr], addr)
        for d, a in datagrams:
            if a != addr:
                self._endpoint.send([d], a)

    def _prepare(self) -> None:
        self._preparing = False
        if self._proto.wants_preparation:
            self._proto.prepare(clock())

    def _wake_writers(self) -> None:
        for writer in list(self._writers.values()):
            writer.wake()
            if self._proto.stream_send_done(writer.stream_id):
                writer.set_finished()
                del self._writers[writer.stream_id]
                if not self._writers:
                    self._writers = _NO_WRITERS  # (an emptied dict keeps its table)

    def _process_events(self) -> None:
        proto = self._proto
        while (event := proto.next_event()) is not None:
            if isinstance(event, ev.StreamDataAvailable):
                self._on_stream_data(event.stream_id)
            elif isinstance(event, ev.HandshakeCompleted):
                if not self._handshake_done.done():
                    self._handshake_done.set_result(None)
                self._path = (self.local_address, self.remote_address)
                self._log_handshake(event)
                self._wake_stream_credit_waiters()  # the peer's real stream limits are known
                self._one_handshake_future()
            elif isinstance(event, ev.HandshakeConfirmed):
                if not self._confirmed.done():
                    self._confirmed.set_result(None)
                self._one_handshake_future()
            elif isinstance(event, ev.StreamReset):
                reader = self._reader_for(event.stream_id)
                reader.set_exception(StreamResetError(event.stream_id, event.error_code))
            elif isinstance(event, ev.StopSendingReceived):
                writer = self._writers.get(event.stream_id)
                if writer is not None:
                    writer.set_exception(
                        StreamResetError(event.stream_id, event.error_code, "stopped by peer")
                    )
            elif isinstance(event, ev.StreamsAvailable):
                self._wake_stream_credit_waiters()
            elif isinstance(event, ev.DatagramReceived):
                self._queue_datagram(event.data)
            elif isinstance(event, ev.SessionTicketReceived):
                self.session_ticket = event.ticket
                self._wake_ticket_waiters()
            elif isinstance(event, ev.ConnectionIdIssued):
                if self._cids is not None and event.cid not in self._cids:
                    self._cids.append(event.cid)
                self._endpoint.register(event.cid, self)
                if self._local_paths is not None:
                    self._local_paths.register(event.cid)
            elif isinstance(event, ev.ConnectionIdRetired):
                if self._cids is not None and event.cid in self._cids:
                    self._cids.remove(event.cid)
                self._endpoint.unregister(event.cid)
                if self._local_paths is not None:
                    self._local_paths.unregister(event.cid)
            elif isinstance(event, (ev.PathValidated, ev.PathValidationFailed)):
                if isinstance(event, ev.PathValidated):
                    self.validated_paths.append((event.addr, event.local))
                if self._local_paths is not None:
                    self._local_paths.on_path_event(event)
                self._log_path(event)
            elif isinstance(event, ev.ConnectionTerminated):
                self._on_terminated(event)

    def _one_handshake_future(self) -> None:
        """Once the handshake is both done and confirmed, the endpoint's done future serves
        both waits (the connection's own two, 144 bytes each, go)."""
        done, confirmed = self._handshake_done, self._confirmed
        if done is confirmed or not (done.done() and confirmed.done()):
            return
        if done.cancelled() or confirmed.cancelled():
            return
        if done.exception() is None and confirmed.exception() is None:
            self._handshake_done = self._confirmed = self._endpoint.succeeded()

    def _wake_ticket_waiters(self) -> None:
        waiters, self._ticket_waiters = self._ticket_waiters or (), None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _wake_stream_credit_waiters(self) -> None:
        waiters, self._stream_credit_waiters = self._stream_credit_waiters or (), None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _reader_for(self, stream_id: int) -> QuicStreamReader:
        reader = self._readers.get(stream_id)
        if reader is None:
            reader = self._accept_peer_stream(stream_id)
        return reader

    def _on_stream_data(self, stream_id: int) -> None:
        self._reader_for(stream_id).wake()

    def _accept_peer_stream(self, stream_id: int) -> QuicStreamReader:
        # A server sees a client's stream before its handshake completed only in 0-RTT.
        early = not self._handshake_done.done() and not self._proto.is_client
        reader = QuicStreamReader(self, stream_id, early_data=early)
        self._add_reader(reader)
        bidi = (stream_id & 0x2) == 0
        writer = QuicStreamWriter(self, stream_id, reader)
        if bidi:
            self._add_writer(writer)
        else:
            writer.set_finished(closing=True)  # nothing to send: wait_closed() returns at once
        if early and self._early_check is not None:
            deliver_early(
                self._early_check,
                reader,
                self._handshake_done,
                lambda: self._deliver_stream(reader, writer),
            )
        else:
            self._deliver_stream(reader, writer)
        return reader

    def _deliver_stream(self, reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        """The application gets a peer's stream: ``on_stream`` or ``accept_stream()``."""
        if self._on_stream is not None:
            result = self._on_stream(reader, writer)
            if asyncio.iscoroutine(result):
                self.spawn(self._run_handler(result, writer))
        else:
            self._incoming_streams().put_nowait((reader, writer))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task of this connection (its failure is logged)."""
        task = self._loop.create_task(coro)
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = set()
        tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        tasks = self._tasks
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                self._tasks = None
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, QuicError):
            self._log(logger).debug("connection callback ended: %s", exc)
        elif exc is not None:
            self._log(logger).error("connection callback failed", exc_info=exc)

    async def _run_handler(self, coro: Awaitable[None], writer: QuicStreamWriter) -> None:
        try:
            await coro
        except QuicError as exc:
            self._log(logger).debug("stream handler ended: %s", exc)
        except Exception:
            self._log(logger).exception("stream handler failed")
            if not writer.is_closing():
                writer.reset(0x1)

    # ---- lifecycle log lines (quicish.connection, INFO) ----------------------------------------
    def _log(self, base: logging.Logger = lifecycle_log) -> log.ConnectionLogger:
        """``base`` (the lifecycle logger by default), its lines prefixed with our ID."""
        proto = self._proto
        role = "client" if proto.is_client else "server"
        return log.ConnectionLogger(base, proto.original_dcid, role)

    def _log_handshake(self, event: ev.HandshakeCompleted) -> None:
        if not lifecycle_log.isEnabledFor(logging.INFO):
            return
        proto = self._proto
        suite = proto.cipher_suite
        stats = proto.stats()
        self._log().info(
            "%s handshake done with %s in %.1f ms: version %#x, cipher %s, ALPN %s, "
            "RTT %.1f ms%s%s%s",
            "client" if proto.is_client else "server",
            log.address(self.remote_address),
            (clock() - self._started) * 1e3,
            proto.version,
            _SUITE_NAMES.get(suite or 0, f"{suite}"),
            event.alpn,
            stats.smoothed_rtt * 1e3,
            ", resumed" if event.session_resumed else "",
            ", 0-RTT accepted" if event.early_data_accepted else "",
            ", after a Retry" if stats.retries_received else "",
        )

    def _log_path(self, event: ev.PathValidated | ev.PathValidationFailed) -> None:
        """The validation's outcome and, when the connection moved, the old and new path."""
        old, new = self._path, (self.local_address, self.remote_address)
        self._path = new
        if not lifecycle_log.isEnabledFor(logging.INFO):
            return
        out = self._log()
        ok = isinstance(event, ev.PathValidated)
        out.info("path to %s %s", log.address(event.addr), "validated" if ok else "failed")
        if old is not None and new != old:
            moves = [
                f"{side} {log.address(a)} -> {log.address(b)}"
                for side, a, b in (("local", old[0], new[0]), ("peer", old[1], new[1]))
                if a != b
            ]
            out.info("path changed: %s", ", ".join(moves))

    def _log_close(self, event: ev.ConnectionTerminated) -> None:
        if not lifecycle_log.isEnabledFor(logging.INFO):
            return
        s = self._proto.stats()
        self._log().info(
            "%s closed by %s: code %s%s after %.3f s; packets sent %d, received %d, lost %d; "
            "bytes sent %d, received %d, lost %d, stream bytes retransmitted %d; RTT %.1f ms",
            "client" if self._proto.is_client else "server",
            "peer" if event.by_peer else "us",
            log.close_code(event.error_code, event.application),
            f", reason {event.reason!r}" if event.reason else "",
            clock() - self._started,
            s.packets_sent,
            s.packets_received,
            s.packets_lost,
            s.bytes_sent,
            s.bytes_received,
            s.bytes_lost,
            s.stream_bytes_retransmitted,
            s.smoothed_rtt * 1e3,
        )

    def _on_terminated(self, event: ev.ConnectionTerminated) -> None:
        self._log_close(event)
        err = ConnectionClosedError(event.error_code, event.reason, event.by_peer)
        self.close_error = err
        if not self._ended:
            self._end()
            if self._owns_endpoint and self._linger_task is None:
                self._linger()  # the closing or draining period, in the background
        if not self._handshake_done.done():
            self._handshake_done.set_exception(_certificate_error(event) or err)
            self._handshake_done.exception()  # mark retrieved
        if not self._confirmed.done():
            self._confirmed.set_exception(err)
            self._confirmed.exception()  # mark retrieved
        for reader in self._readers.values():
            reader.set_exception(err)
        for writer in self._writers.values():
            writer.set_exception(err)
        for waiter in self._stream_credit_waiters or ():
            if not waiter.done():
                waiter.set_exception(err)

    def abort(self) -> None:
        """End now, without a closing or draining period (the endpoint is going away)."""
        self._process_events()
        self._finish()

    def _finish(self) -> None:
        if self._released:
            return
        if not self._ended:
            self._end()
        self._released = True
        if self._closed is not None:
            self._closed.set_result(None)
        self._proto.end_trace()  # (the qlog file is complete now, also after abort())
        self._endpoint.forget(self)
        # Readers and writers refer to this connection; they need no lookup from here on.
        self._readers, self._writers = _NO_READERS, _NO_WRITERS
        if self._local_paths is not None:
            self._local_paths.close_all()
        if self._owns_endpoint:
            self._endpoint.close()

    def _end(self) -> None:
        self._ended = True
        if self._terminated is not None:
            self._terminated.set_result(None)

    def _end_future(self) -> asyncio.Future[None]:
        """Done once the connection has ended for the application (made at first need)."""
        self._terminated = _made(self._loop, self._terminated, self._ended)
        return self._terminated

    def _release_future(self) -> asyncio.Future[None]:
        """Done once the connection is released (made at first need)."""
        self._closed = _made(self._loop, self._closed, self._released)
        return self._closed

    def _raise_if_closed(self) -> None:
        if self._proto.is_terminated:
            raise self.close_error or ConnectionClosedError(0, "connection closed")

    def _linger(self) -> None:
        """Keep a client's socket through its closing or draining period in a background
        task (the application's wait_closed() has returned already); if the loop shuts down
        first (asyncio.run cancels the task, maybe before it ran), release it at once. The
        connection holds the task."""

        async def released() -> None:
            await asyncio.shield(self._release_future())

        def done(task: asyncio.Task[None]) -> None:
            if task.cancelled():
                self.abort()

        self._linger_task = task = self._loop.create_task(released())
        task.add_done_callback(done)

    # ---- stream plumbing used by readers and writers (streams.StreamOwner) -------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def send_buffer_limit(self) -> int:
        """Bytes a stream may buffer before ``drain()`` waits."""
        return self._send_buffer_limit

    def stream_send_progress(self, stream_id: int) -> tuple[int, int] | None:
        return self._proto.stream_send_progress(stream_id)

    def stream_read(self, stream_id: int, max_bytes: int) -> tuple[bytes, bool]:
        data, fin = self._proto.read_stream(stream_id, max_bytes)
        if data:
            self._endpoint.mark_dirty(self)  # may release flow-control credit
        if fin:
            # The reader has the end of its stream: no event names the stream again (a
            # later RESET_STREAM keeps the clean end), so it needs no routing.
            self._readers.pop(stream_id, None)
            if not self._readers:
                self._readers = _NO_READERS  # (an emptied dict keeps its table)
        return data, fin

    def stream_read_after_close(self, stream_id: int, max_bytes: int = -1) -> tuple[bytes, bool]:
        """What is left to read of a stream of a closed connection (never raises)."""
        try:
            return self._proto.read_stream(stream_id, max_bytes)
        except QuicError:
            return b"", False

    def stream_send(self, stream_id: int, data: bytes, fin: bool) -> None:
        self._raise_if_closed()
        self._proto.send_stream_data(stream_id, data, fin)
        self._endpoint.mark_dirty(self)

    def stream_send_buffered(self, stream_id: int) -> int:
        self._raise_if_closed()
        return self._proto.stream_send_buffered(stream_id)

    def stream_reset(self, stream_id: int, code: int) -> None:
        self._proto.reset_stream(stream_id, code)
        self._endpoint.mark_dirty(self)

    def stream_stop_sending(self, stream_id: int, code: int) -> None:
        self._proto.stop_sending(stream_id, code)
        self._endpoint.mark_dirty(self)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


# Shared, never written: a connection makes its own table for its first stream.
_NO_READERS: dict[int, QuicStreamReader] = {}
_NO_WRITERS: dict[int, QuicStreamWriter] = {}

_CERTIFICATE_ALERTS = frozenset(
    {
        Alert.BAD_CERTIFICATE,
        Alert.UNSUPPORTED_CERTIFICATE,
        Alert.CERTIFICATE_REVOKED,
        Alert.CERTIFICATE_EXPIRED,
        Alert.CERTIFICATE_UNKNOWN,
        Alert.UNKNOWN_CA,
    }
)


def _certificate_error(event: ev.ConnectionTerminated) -> CertificateError | None:
    """The CertificateError of a handshake we ended because the peer's certificate failed
    our checks; None for any other close."""
    alert = event.error_code - ErrorCode.CRYPTO_ERROR
    if event.by_peer or alert not in _CERTIFICATE_ALERTS:
        return None
    return CertificateError(alert, event.reason)


def _made(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[None] | None, done: bool
) -> asyncio.Future[None]:
    """``future``, or a new one for its first waiter, already done if ``done`` (the flag
    that stood in for it while nobody waited)."""
    if future is None:
        future = loop.create_future()
        if done:
            future.set_result(None)
    return future

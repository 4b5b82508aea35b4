"""The sans-IO QUIC connection: datagrams and time in, datagrams, deadlines and events out.

No sockets, no asyncio, no clock: every entry point takes ``now`` (monotonic seconds).
The driver loop (see ``quicish.aio``) is::

    conn.receive_datagram(data, addr, now)
    for data, addr in conn.datagrams_to_send(now): sock.sendto(data, addr)
    conn.handle_timer(now) when now >= conn.next_timer()
    while (event := conn.next_event()) is not None: ...
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from ..config import Config
from ..errors import (
    ConfigError,
    ConnectionClosedError,
    ConnectionStateError,
    DecodeError,
    DecryptionError,
    ErrorCode,
    ProtocolError,
)
from ..qlog.sinks import Tracer, TraceSink
from ..wire import frames as F
from ..wire.frames import PROBING_FRAMES
from ..wire.packet import (
    QUIC_V1,
    SHORT_RESERVED_BITS,
    PacketHeader,
    PacketType,
    check_reserved_bits,
    parse_header,
)
from . import events as ev
from .cid import LocalCids, PeerCids
from .congestion import create as create_congestion_controller
from .event_queue import DATAGRAM_OVERHEAD as DATAGRAM_OVERHEAD
from .event_queue import EventQueue
from .frame_handlers import FrameHandlers
from .handshake import Handshake
from .handshake_stock import HandshakeStock
from .idle import HandshakeTimer, IdleTimer
from .keys import KeyState
from .lean_receive import LeanReceiver
from .lifecycle import Closing, Lifecycle
from .migration import Migration
from .pacing import Pacer
from .packet_builder import RECORD_HANDLERS as BUILDER_RECORDS
from .packet_builder import PacketBuilder, next_skip
from .packet_space import (
    APPLICATION,
    CRYPTO_BUFFER_LIMIT,
    HANDSHAKE,
    INITIAL,
    LOCAL_MAX_ACK_DELAY,
    PacketSpace,
    register_space_records,
)
from .path import Path, PathManager
from .records import OwnerHandlers, PingRecord, RecordTable
from .recovery import LossRecovery
from .server_context import ServerContext
from .stats import ConnectionStats, Stats
from .stream_manager import StreamManager
from .stream_records import RECORD_HANDLERS as STREAM_RECORDS
from .timers import ConnectionTimers
from .trace import Trace

logger = logging.getLogger("quicish")

CID_LENGTH = 8

_PING_RECORDS: OwnerHandlers = {PingRecord: (None, None)}  # (nothing to do either way)
_ECN_COUNTER = {0x02: 0, 0x01: 1, 0x03: 2}  # ECT(0), ECT(1), CE -> index in the ACK counts
_ONE_RTT = PacketType.ONE_RTT  # (an IntEnum member read once, not per packet)

_TYPE_SPACE = {
    PacketType.INITIAL: INITIAL,
    PacketType.HANDSHAKE: HANDSHAKE,
    PacketType.ZERO_RTT: APPLICATION,
    PacketType.ONE_RTT: APPLICATION,
}


def _name_culprit(exc: ProtocolError, frame: Any) -> None:
    """Name the frame that caused ``exc`` in its CONNECTION_CLOSE, unless it names one."""
    if exc.frame_type is None:
        exc.frame_type = F.frame_type_of(frame)


class Connection:
    """One QUIC connection, client or server, with no I/O of its own."""

    __slots__ = (
        "__weakref__", "_builder", "_events", "_first_datagram", "_frames", "_handshake",
        "_handshake_timer", "_hello_sent_alone", "_idle", "_keys", "_lean", "_lifecycle",
        "_local_cids", "_migration", "_on_stream", "_pacer", "_paths", "_peer_cids", "_records",
        "_recovery", "_rx_ecn", "_rx_non_probing", "_spaces", "_streams", "_timers", "_trace",
        "config", "host_cid", "is_client", "stats_counters",
    )  # fmt: skip

    def __init__(
        self,
        config: Config,
        *,
        is_client: bool,
        server_context: ServerContext | None = None,
        original_dcid: bytes | None = None,
        retry_source_cid: bytes | None = None,
        session_ticket: bytes | None = None,
        early_data: bool = False,
        token: bytes = b"",
        version: int = QUIC_V1,
        random_bytes: Callable[[int], bytes] = os.urandom,
        address_validated: bool = False,
        versions: Sequence[int] | None = None,
        server_name: str | None = None,
        handshake_stock: HandshakeStock | None = None,
    ) -> None:
        """``server_name`` (client): the name to check the server's certificate against,
        instead of ``config.server_name``. ``handshake_stock``: the driver's key pairs and
        Initial keys made ahead of need, which :meth:`prepare` and :meth:`await_hello`
        fill (without one, everything is made when needed)."""
        if not is_client and server_context is None:
            raise ValueError("a server connection needs a ServerContext")
        self.config = config
        self.is_client = is_client
        self._trace: Trace | None = None  # (proto/trace.py) only while something listens
        self.stats_counters = ConnectionStats()
        self._events = EventQueue(config.datagram_receive_buffer, self.stats_counters)

        # A server's CIDs follow its QUIC-LB format when it has one (config.cid_format).
        fmt = None if is_client else config.cid_format  # (spent: no NEW_CONNECTION_ID)
        self.host_cid = random_bytes(CID_LENGTH) if fmt is None else fmt.new_cid()
        # Stateless reset tokens of our CIDs are HMAC(reset key, CID) (RFC 9000 10.3.2).
        reset_key = server_context.reset_mac() if server_context is not None else random_bytes(32)
        more = None if fmt is None else fmt.next_cid
        self._local_cids = LocalCids(self.host_cid, reset_key, random_bytes, more)
        self._peer_cids = PeerCids(
            max(2, config.active_connection_id_limit), config.max_unacked_cid_retirements
        )
        # start_hello(): the first datagram, sealed ahead, and its packets, which connect()
        # records as sent at its own time.
        self._first_datagram: bytes | None = None

        frags = config.max_crypto_fragments
        self._spaces = (
            PacketSpace(INITIAL, config.initial_crypto_buffer, frags),
            PacketSpace(HANDSHAKE, CRYPTO_BUFFER_LIMIT, frags),
            PacketSpace(APPLICATION, CRYPTO_BUFFER_LIMIT, frags),
        )
        self._spaces[APPLICATION].skip_pn = next_skip(0, config.pn_skip_interval, random_bytes)

        # Paths (RFC 9000 section 9), each with its anti-amplification budget (section 8):
        # until a path is validated, at most 3x the bytes received on it are sent on it.
        self._paths = PathManager(Path(None, validated=is_client), random_bytes)
        self._rx_non_probing = False
        self._rx_ecn = 0  # ECN codepoint of the datagram being processed

        cc = create_congestion_controller(config.congestion_control, config.initial_datagram_size)
        self._recovery = LossRecovery(
            cc, max_ack_delay=0.025, max_not_in_flight=config.max_ack_only_packets
        )
        # A server never needs anti-deadlock probes: the client drives address validation.
        self._recovery.peer_completed_address_validation = not is_client
        self._pacer = Pacer(config.initial_datagram_size)
        self._keys = KeyState(self._spaces, self._recovery, self.stats_counters)
        self._idle = IdleTimer(config.idle_timeout, config.keep_alive)

        self._streams = StreamManager(
            is_client=is_client,
            local_max_streams_bidi=config.max_streams_bidi,
            local_max_streams_uni=config.max_streams_uni,
            local_max_stream_data=config.max_stream_data,
            max_stream_data_limit=config.max_stream_data_limit,
            send_buffer_size=config.send_buffer_size,
            local_max_data=config.max_data,
            max_data_limit=config.max_data_limit,
            max_stream_fragments=config.max_stream_fragments,
            max_connection_fragments=config.max_connection_fragments,
        )
        # What acknowledgement and loss of each kind of sent-frame record do, by its owner.
        self._records = RecordTable()
        register_space_records(self._records, self._spaces)
        self._records.register_owner(self._streams, STREAM_RECORDS)
        self._local_cids.register_records(self._records)
        self._peer_cids.register_records(self._records)
        self._records.register_owner(None, _PING_RECORDS)
        # The streams' wake-ups refer back to the stream manager and the record handlers
        # to their owners: unhooked when the connection closes for good.
        self._lifecycle = Lifecycle(
            self._events, self._recovery, self._idle, (self._streams, self._records)
        )
        self._handshake_timer = HandshakeTimer(config.handshake_timeout)
        self._builder = PacketBuilder(
            config,
            is_client=is_client,
            version=version,
            host_cid=self.host_cid,
            token=token,
            spaces=self._spaces,
            streams=self._streams,
            paths=self._paths,
            recovery=self._recovery,
            pacer=self._pacer,
            keys=self._keys,
            local_cids=self._local_cids,
            peer_cids=self._peer_cids,
            idle=self._idle,
            stats=self.stats_counters,
            random_bytes=random_bytes,
        )
        self._migration = Migration(
            config,
            self._paths,
            self._peer_cids,
            self._recovery,
            self._pacer,
            self._builder,
            self.stats_counters,
            self._events,
            is_client=is_client,
        )
        self._records.register_owner(self._builder, BUILDER_RECORDS)
        self._handshake = Handshake(
            config,
            is_client=is_client,
            server_name=server_name,
            server_context=server_context,
            session_ticket=session_ticket,
            early_data=early_data,
            version=version,
            versions=versions,
            random_bytes=random_bytes,
            stock=handshake_stock,
            spaces=self._spaces,
            keys=self._keys,
            recovery=self._recovery,
            streams=self._streams,
            builder=self._builder,
            paths=self._paths,
            local_cids=self._local_cids,
            peer_cids=self._peer_cids,
            idle=self._idle,
            timer=self._handshake_timer,
            events=self._events,
            stats=self.stats_counters,
            host_cid=self.host_cid,
            lifecycle=self._lifecycle,
        )
        self._frames = FrameHandlers(
            config,
            is_client=is_client,
            streams=self._streams,
            events=self._events,
            recovery=self._recovery,
            records=self._records,
            keys=self._keys,
            pacer=self._pacer,
            handshake=self._handshake,
            handshake_timer=self._handshake_timer,
            migration=self._migration,
            builder=self._builder,
            local_cids=self._local_cids,
            peer_cids=self._peer_cids,
            stats=self.stats_counters,
            rx_path=self._paths.current,
            lifecycle=self._lifecycle,
        )
        self._lean = LeanReceiver(
            self.host_cid, self._spaces[APPLICATION], self._lifecycle, self._handshake, self._keys,
            self._paths, self._frames, self.stats_counters, self._idle,
        )  # fmt: skip
        self._timers = ConnectionTimers(
            spaces=self._spaces,
            paths=self._paths,
            recovery=self._recovery,
            builder=self._builder,
            idle=self._idle,
            handshake_timer=self._handshake_timer,
            keys=self._keys,
            migration=self._migration,
            lifecycle=self._lifecycle,
            on_packets_lost=self._frames.on_packets_lost,
        )
        self._on_stream = self._frames.on_stream  # (the bulk path's one handler, bound once)
        self._hello_sent_alone = False  # the last datagrams_to_send() left the flight pending
        if not is_client:
            self.set_origin(original_dcid, retry_source_cid, address_validated)

    def set_origin(
        self, original_dcid: bytes | None, retry_source_cid: bytes | None, address_validated: bool
    ) -> None:
        """Server, before the first datagram: what the stateless layer learned of the client
        (its first Initial's DCID and our Retry's SCID after a Retry; whether its address is
        validated). A driver may so make a connection ahead of need and bind it later."""
        hs = self._handshake
        if self.is_client or hs.initial_dcid is not None:
            raise ConnectionStateError(
                "set_origin() is for a server connection before its first datagram"
            )
        hs.original_dcid = original_dcid or b""
        hs.retry_source_cid = retry_source_cid
        self._paths.current.validated = address_validated or retry_source_cid is not None

    # ---------------------------------------------------------------------------------------
    # Public sans-IO API
    # ---------------------------------------------------------------------------------------
    def start_hello(self, now: float) -> None:
        """Client, optional, before :meth:`connect`: make the ClientHello, pick the first
        DCID and Initial keys, and (without a session ticket) seal the first datagram now; a
        driver may do it while idle. ``connect()`` then records the datagram as sent at its
        own ``now`` and :meth:`datagrams_to_send` returns it first."""
        hs = self._handshake
        if not self.is_client or hs.tls is not None:
            raise ConnectionStateError("start_hello() is for a fresh client connection")
        hs.start_client(now)
        hs.pick_first_dcid()
        if hs.session_ticket is None:  # (with 0-RTT, its packets join the first datagram)
            self._builder.sealed_ahead = []
            self._first_datagram = self._builder.build_datagram(now)

    def await_hello(self, now: float) -> None:
        """Server, optional, before the first datagram: make the TLS engine and stock an
        ephemeral key pair now (a driver may do it while idle); the client's first Initial
        then only fills in what it decides (original DCID, version) before the engine reads
        the ClientHello."""
        hs = self._handshake
        if self.is_client or hs.tls is not None or hs.tls_ahead is not None:
            raise ConnectionStateError("await_hello() is for a fresh server connection")
        hs.await_hello(now)

    def connect(self, addr: tuple[str, int], now: float) -> None:
        """Client: start the handshake towards ``addr``."""
        if not self.is_client or self.peer_addr is not None:
            raise ConnectionStateError("connect() is for a fresh client connection")
        self._paths.current.addr = addr
        self._idle.last_activity = now
        self._start_handshake_timer(now)
        hs = self._handshake
        if hs.tls is None:
            hs.start_client(now)
            hs.pick_first_dcid()
        self._trace = Trace.begin_for(self, self._trace, now)
        self._builder.send_sealed_ahead(now)
        hs.offer_early_data()

    def receive_datagram(
        self, data: bytes, addr: tuple[str, int], now: float, local: int = 0, ecn: int = 0
    ) -> None:
        """Process one UDP datagram (possibly several coalesced packets); ``local`` names
        the local socket it arrived on when the driver has several (active migration),
        ``ecn`` the IP ECN codepoint it carried (0 when unknown)."""
        if self._lean.take(data, addr, local, ecn, now) or not self._lifecycle.state.is_active:
            return  # (the bulk case, taken by lean_receive.py; or a connection that is over)
        if self._handshake.flight_pending:
            self._finish_flight(now)
        if self._keys.deferred:
            self._keys.install_deferred(self._builder.version)
        self._rx_ecn = ecn
        frames = self._frames
        frames.rx_size = size = len(data)
        self.stats_counters.datagrams_received += 1
        self.stats_counters.bytes_received += size
        path = self._paths.current
        if addr != path.addr or local != path.local:
            if path.addr is None:  # a server's first datagram: the connection starts
                self._start_handshake_timer(now)
                path.addr = addr
            else:
                path = self._migration.path_of(addr, local, self._handshake.confirmed)
        if not path.validated:
            path.bytes_received += size
        frames.rx_path = path
        state = self._lifecycle.state
        if state.is_closing:
            assert isinstance(state, Closing)
            state.on_datagram()  # RFC 9000 10.2.1: frames are no longer processed
            return
        offset = 0
        end = len(data)
        try:
            if end and not data[0] & 0x80 and self._receive_short(data, now):
                offset = end  # the bulk case: one 1-RTT packet, taken by the lean path
            while offset < end:
                try:
                    header = parse_header(data, offset, short_dcid_len=len(self.host_cid))
                except DecodeError:
                    self._drop("unparseable", now, None, end - offset)
                    return
                start, offset = offset, header.packet_end
                self._receive_packet(data, start, header, addr, now)
        except ProtocolError as exc:
            logger.debug("closing: %s", exc)
            self._lifecycle.close_with_error(exc.code, exc.reason, exc.frame_type, now)
            return
        except Exception as exc:  # a bug, or MemoryError in reassembly: this connection ends
            logger.exception("closing: internal error while processing a datagram")
            self._lifecycle.close_internal(exc, now)
            return
        if self._migration.migrate_to is not None:
            self._migration.on_peer_migrated(now)
        state = self._lifecycle.state
        if state.is_closing:  # (closed by what this datagram carried)
            assert isinstance(state, Closing)
            state.on_datagram()

    @property
    def wants_preparation(self) -> bool:
        """True while :meth:`prepare` has work it could take off the critical path."""
        if self._handshake.flight_pending:
            return False  # the rest of the flight comes first
        hs = self._handshake
        return bool(self._keys.deferred) or (
            not hs.prepared and hs.tls is not None and not hs.complete
        )

    def prepare(self, now: float) -> None:
        """Optional: make what the end of the handshake needs while the I/O layer is idle
        (waiting for the peer's next flight): spare connection IDs with their reset tokens
        and, on a server, the NEW_TOKEN and the first session ticket (sealed for the client
        Finished that is expected). A client with a handshake stock also stocks there, for
        its driver's next handshake, an ephemeral key pair and a first DCID with its Initial
        keys (a server stocks its key pair in :meth:`await_hello`). Whatever was not prepared
        is made when needed. A server installs here the keys its first flight did not need."""
        if self._keys.deferred:
            self._keys.install_deferred(self._builder.version)
        hs = self._handshake
        if hs.prepared:
            return
        hs.prepared = True
        self._local_cids.stock()
        hs.prepare(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        """Datagrams ready to go now (congestion control, pacing and anti-amplification applied)."""
        addr = self.peer_addr
        state = self._lifecycle.state
        if addr is None or not state.is_active:
            return []
        out: list[tuple[bytes, tuple[str, int]]] = []
        if state.is_closing:
            assert isinstance(state, Closing)
            if state.send_due:
                close_datagram = self._builder.build_close_datagram(state.close, now)
                if close_datagram:
                    out.append((close_datagram, addr))
                state.send_due = False
            return out
        keys = self._keys
        if self._hello_sent_alone:
            self._finish_flight(now)
            if not self._lifecycle.state.is_open:
                return self.datagrams_to_send(now)
        elif keys.deferred and not self._handshake.flight_pending:
            keys.install_deferred(self._builder.version)
        if self._first_datagram is not None:  # sealed by start_hello()
            out.append((self._first_datagram, addr))
            self._first_datagram = None
        if self._spaces[APPLICATION].next_pn - keys.phase_start_pn >= keys.update_limit:
            keys.auto_update(self._handshake.confirmed)
        self._builder.fill(out, addr, now)
        self._hello_sent_alone = self._handshake.flight_pending
        return out

    def _finish_flight(self, now: float) -> None:
        self._handshake.flight_pending = self._hello_sent_alone = False
        if self._keys.deferred:  # the handshake write key, made after the hello
            self._keys.install_deferred(self._builder.version)
        try:
            self._handshake.finish_flight(now)
        except ProtocolError as exc:
            logger.debug("closing: %s", exc)
            self._lifecycle.close_with_error(exc.code, exc.reason, exc.frame_type, now)
        except Exception as exc:  # a bug: this connection ends, no other
            logger.exception("closing: internal error")
            self._lifecycle.close_internal(exc, now)

    def next_timer(self) -> float | None:
        """The earliest absolute time at which :meth:`handle_timer` must be called."""
        state = self._lifecycle.state
        if not state.is_open:
            return state.end  # closing or draining: when it ends (closed: None)
        if self._handshake.flight_pending:
            return 0.0  # the rest of a split first flight is due at once
        return self._timers.refresh().next()

    def handle_timer(self, now: float) -> None:
        """Run whatever timers have expired at ``now``."""
        if self._lifecycle.state.is_closed:
            return
        if self._handshake.flight_pending:
            self._finish_flight(now)
        state = self._lifecycle.state
        if not state.is_open:
            end = state.end
            if end is not None and now >= end:
                self._lifecycle.end()
            return
        self._timers.handle(now)

    def next_event(self) -> ev.Event | None:
        """The oldest undelivered event, or None."""
        return self._events.next()

    @property
    def is_closed(self) -> bool:
        return self._lifecycle.state.is_closed

    @property
    def is_terminated(self) -> bool:
        """True once the connection has reached closing, draining or closed."""
        return not self._lifecycle.state.is_open

    # ---- streams ---------------------------------------------------------------------------
    def open_stream(self, bidirectional: bool = True) -> int:
        """Open a locally-initiated stream; raises ``StreamLimitReached`` at the peer's limit."""
        self._check_open()
        return self._streams.open_stream(bidirectional)

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data`` (and optionally FIN) on a stream."""
        self._check_open()
        self._streams.get_send(stream_id).write(data, end_stream)

    def read_stream(self, stream_id: int, max_bytes: int = -1) -> tuple[bytes, bool]:
        """Read up to ``max_bytes`` in-order bytes; returns (data, end_of_stream_reached)."""
        recv = self._streams.get_recv(stream_id)
        data = recv.read(max_bytes)
        if data:
            self._streams.on_consumed(len(data))
        fin = recv.is_finished
        if fin:
            self._streams.on_recv_finished(stream_id)
        return data, fin

    def stream_send_done(self, stream_id: int) -> bool:
        """True once everything written on the stream, FIN included, is acknowledged."""
        stream = self._streams.get(stream_id)
        return stream is None or stream.send is None or stream.send.is_done

    def request_key_update(self) -> None:
        """Start a 1-RTT key update (RFC 9001 section 6); needs a confirmed handshake.

        Until a packet sent with the current keys is acknowledged (RFC 9001 6.1) the update
        is deferred and starts as soon as such an acknowledgement arrives.
        """
        self._check_open()
        space = self._spaces[APPLICATION]
        if not self._handshake.confirmed or space.tx is None or space.rx is None:
            raise ConnectionStateError("key update needs a confirmed handshake")
        self._keys.request_update()

    @property
    def cipher_suite(self) -> int | None:
        """The negotiated TLS cipher suite (code point), once known."""
        hs = self._handshake
        return hs.cipher_suite if hs.tls is None else hs.tls.cipher_suite

    def stream_send_progress(self, stream_id: int) -> tuple[int, int] | None:
        """(bytes sent at least once, bytes acknowledged in order) of a stream's sending
        half; None once the stream is gone."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.send is None:
            return None
        return stream.send.send_offset, stream.send.acked_offset

    def stream_send_buffered(self, stream_id: int) -> int:
        """Bytes written to a stream and not yet acknowledged by the peer."""
        return self._streams.get_send(stream_id).buffered

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self._check_open()
        self._streams.get_send(stream_id).reset(error_code)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        self._check_open()
        self._streams.get_recv(stream_id).stop_sending(error_code)

    def send_datagram(self, data: bytes) -> None:
        """Queue an unreliable DATAGRAM frame (RFC 9221)."""
        self._check_open()
        params = self._handshake.peer_params
        limit = params.max_datagram_frame_size if params else None
        if limit is None:
            raise ConnectionStateError("the peer does not accept DATAGRAM frames")
        if len(data) + 8 > min(limit, self._builder.max_datagram_size - 40):
            raise ConfigError(f"datagram of {len(data)} bytes is too large")
        self._builder.queue_datagram(bytes(data))

    def close(self, error_code: int = 0, reason: str = "", now: float | None = None) -> None:
        """Close with an application error code (0: no error)."""
        if not self._lifecycle.state.is_open:
            return
        self._lifecycle.close(error_code, None, reason, application=True, now=now)

    def stats(self) -> Stats:
        """RTT, congestion window, bytes in flight and packet/byte counters (a snapshot)."""
        rtt = self._recovery.rtt
        counters = self.stats_counters.as_dict()
        counters.pop("stream_bytes_retransmitted", None)
        counters.pop("stream_bytes_lost", None)
        return Stats(
            **counters,
            smoothed_rtt=rtt.smoothed_rtt,
            min_rtt=rtt.min_rtt,
            latest_rtt=rtt.latest_rtt,
            rttvar=rtt.rttvar,
            cwnd=self._recovery.cc.cwnd,
            ssthresh=self._recovery.cc.ssthresh,
            bytes_in_flight=self._recovery.bytes_in_flight,
            pto_count=self._recovery.pto_count,
            stream_bytes_retransmitted=self._streams.bytes_retransmitted,
            stream_bytes_lost=self._streams.bytes_lost,
        )

    # ---- the handshake's state, read through the connection --------------------------------
    @property
    def handshake_complete(self) -> bool:
        return self._handshake.complete

    @property
    def handshake_confirmed(self) -> bool:
        return self._handshake.confirmed

    @property
    def answer_owed(self) -> bool:  # an ack-eliciting 1-RTT packet awaits its ACK
        return self._handshake.complete and self._spaces[APPLICATION].unacked_eliciting > 0

    @property
    def early_data_accepted(self) -> bool:
        return self._handshake.early_data_accepted

    @property
    def alpn(self) -> str | None:
        return self._handshake.alpn

    @property
    def session_resumed(self) -> bool:
        return self._handshake.session_resumed

    @property
    def new_token(self) -> bytes | None:
        """Client: the token of the server's NEW_TOKEN, for a later ``connect()``."""
        return self._handshake.new_token

    @property
    def split_first_flight(self) -> bool:
        """Server: the ServerHello in a datagram of its own before the rest of the first
        flight, which the client works on while we sign (:attr:`flight_pending`); aio sets it."""
        return self._handshake.split_first_flight

    @split_first_flight.setter
    def split_first_flight(self, split: bool) -> None:
        self._handshake.split_first_flight = split

    @property
    def flight_pending(self) -> bool:
        """Server, ``split_first_flight``: the ServerHello went out alone; the next call to
        :meth:`datagrams_to_send` (a driver's, right after sending) or any other finishes it."""
        return self._handshake.flight_pending

    # ---------------------------------------------------------------------------------------
    # Receiving
    # ---------------------------------------------------------------------------------------
    def _receive_packet(
        self, data: bytes, start: int, header: PacketHeader, addr: tuple[str, int], now: float
    ) -> None:
        ptype = header.packet_type
        hs = self._handshake
        if ptype == PacketType.VERSION_NEGOTIATION or ptype == PacketType.RETRY:
            if self._trace is not None:
                self._trace.unnumbered_received(now, ptype, header.packet_end - start)
            if ptype == PacketType.RETRY:
                hs.on_retry(data, header)
            else:
                hs.on_version_negotiation(header)
            return
        if (
            header.is_long
            and header.version != self._builder.version
            and not hs.accept_version(header)
        ):
            self._drop("unsupported_version", now, ptype, header.packet_end - start)
            return
        dcid = header.dcid
        if self.is_client or hs.initial_dcid is not None:
            if (
                dcid != self.host_cid
                and dcid != hs.initial_dcid
                and not self._local_cids.owns(dcid)
            ):
                self._drop("unknown_connection_id", now, ptype, header.packet_end - start)
                self._stateless_reset_received(header, data, now)
                return
        elif ptype != PacketType.INITIAL:
            self._drop("unknown_connection_id", now, ptype, header.packet_end - start)
            return
        else:
            hs.on_client_initial(dcid)
        self._frames.rx_dcid = dcid

        space_index = _TYPE_SPACE[ptype]  # IntEnum keys: plain ints find them
        space = self._spaces[space_index]
        protector = self._keys.zero_rtt_read(now) if ptype == PacketType.ZERO_RTT else space.rx
        if header.is_long and header.version != self._builder.version:
            protector = hs.compat_initial_rx  # an Initial in the client's original version
        if protector is None or space.discarded:
            self._drop("no_keys", now, ptype, header.packet_end - start)
            if (
                ptype == PacketType.HANDSHAKE
                and space.discarded
                and not self.is_client
                and not self._builder.handshake_done_acked
            ):
                # The client still probes its Handshake space: it has not heard our
                # HANDSHAKE_DONE. Answer with it now rather than at our next probe timeout,
                # which backs off while the client's probes keep coming (RFC 9001 4.9.2).
                self._builder.pending_handshake_done = True
            return

        packet = memoryview(data)[start : header.packet_end]
        pn_offset = header.pn_offset - start
        try:
            if ptype == PacketType.ONE_RTT:
                plain_header, payload, pn = self._keys.open_one_rtt(
                    packet, pn_offset, space, hs.confirmed
                )
            else:
                plain_header, payload, pn = protector.open_packet(
                    packet, pn_offset, space.largest_received
                )
        except DecryptionError:
            self._drop("undecryptable", now, ptype, len(packet))
            if self._stateless_reset_received(header, data, now):
                return
            if not header.is_long and self._keys.on_auth_failure():
                # RFC 9001 6.6: too many forgeries tried against 1-RTT keys.
                raise ProtocolError(ErrorCode.AEAD_LIMIT_REACHED, "AEAD integrity limit") from None
            return

        check_reserved_bits(plain_header[0])
        if (
            hs.first_packet_received
            and self.is_client
            and ptype == PacketType.INITIAL
            and header.scid != self.peer_cid
        ):
            self._drop("unknown_connection_id", now, ptype, len(packet))
            return
        if not space.record(pn):  # one call: duplicate check and record for the ACK
            self._drop("duplicate", now, ptype, len(packet))
            return

        if not hs.first_packet_received:
            hs.on_first_packet(header.scid, payload, now)
            self._trace = Trace.begin_for(self, self._trace, now)

        if ptype == PacketType.HANDSHAKE and not self.is_client:
            # A Handshake packet proves the client owns its address (RFC 9000 8.1).
            self._paths.current.validated = True
            self._recovery.peer_completed_address_validation = True
            hs.discard_space(INITIAL)
        # (A client learns that the server validated its address only from an ACK of one of
        # its Handshake packets, in _on_ack, or from confirmation: RFC 9002 6.2.2.1. Until
        # then it keeps a PTO armed so an amplification-limited server cannot deadlock.)

        self._process_packet(payload, ptype, space, pn, len(packet), now)

    def _receive_short(self, data: bytes, now: float) -> bool:
        """A datagram of one 1-RTT packet to our current CID on the current path with the
        current keys, as lean_receive.py takes it untraced or qlogged: the general path's outcome
        with fewer steps; False, nothing changed, for anything else. Raises ProtocolError."""
        space = self._spaces[APPLICATION]
        rx = space.rx
        cid = self.host_cid
        pn_offset = len(cid) + 1
        frames = self._frames
        if (
            rx is None
            or frames.rx_path is not self._paths.current
            or not self._handshake.first_packet_received
            or data[1:pn_offset] != cid
        ):
            return False
        try:
            plain_header, payload, pn = rx.open_packet(
                memoryview(data), pn_offset, space.largest_received
            )
        except DecryptionError:
            return False
        if plain_header[0] & SHORT_RESERVED_BITS:
            raise ProtocolError(ErrorCode.PROTOCOL_VIOLATION, "reserved header bits set")
        frames.rx_dcid = cid
        if not space.record(pn):
            self._drop("duplicate", now, _ONE_RTT, len(data))
            return True
        self._process_packet(payload, _ONE_RTT, space, pn, len(data), now)
        return True

    def _process_packet(
        self,
        payload: bytes,
        ptype: PacketType,
        space: PacketSpace,
        pn: int,
        size: int,
        now: float,
    ) -> None:
        """The frames of an authenticated, newly recorded packet, then its ACK schedule."""
        self.stats_counters.packets_received += 1
        idle = self._idle  # (IdleTimer.on_packet_received inlined)
        idle.last_activity = now
        idle.restart_pending = True
        ack_eliciting = self._process_frames(payload, ptype, space, now)
        if self._trace is not None:
            self._trace.packet_received(now, ptype, pn, size, payload, ack_eliciting)
        rx_path = self._frames.rx_path
        if (
            rx_path is not self._paths.current
            and self._rx_non_probing
            and ptype == PacketType.ONE_RTT
            and pn > space.largest_received
        ):
            # The peer's newest non-probing packet comes from a new path (RFC 9000 9.3).
            self._migration.migrate_to = rx_path
        if self._rx_ecn:  # (counted first: a CE mark can make the ACK due at once)
            space.ecn_counts[_ECN_COUNTER[self._rx_ecn]] += 1
        space.on_packet_received(pn, ack_eliciting, now, LOCAL_MAX_ACK_DELAY)

    def _process_frames(
        self, payload: bytes, ptype: PacketType, space: PacketSpace, now: float
    ) -> bool | F.StreamFrame:
        """Whether the packet is ack-eliciting: truthy; the frame itself in the bulk case,
        a 1-RTT packet that is one STREAM frame (no frame list, no dispatch; the trace
        logs it from there)."""
        lone = F.decode_lone_stream_frame(payload) if ptype == _ONE_RTT else None
        if lone is not None:
            try:
                self._on_stream(lone, space, now)
            except ProtocolError as exc:
                _name_culprit(exc, lone)
                raise
            if self._frames.rx_path is not self._paths.current:
                self._rx_non_probing = True  # STREAM is a non-probing frame
            return lone
        frames = F.decode_frames(payload, ptype)
        on = self._frames
        ack_eliciting = on.dispatch(frames, space, now)
        if on.rx_path is not self._paths.current:
            self._rx_non_probing = any(type(f) not in PROBING_FRAMES for f in frames)
        return ack_eliciting

    def _drop(self, reason: str, now: float, ptype: PacketType | None, size: int) -> None:
        """A received packet is dropped (counted; traced with its qlog trigger)."""
        counters = self.stats_counters
        if reason == "undecryptable":
            counters.packets_undecryptable += 1
        elif reason == "duplicate":
            counters.packets_duplicate += 1
        else:
            counters.packets_dropped += 1
        if self._trace is not None:
            self._trace.dropped(now, reason, ptype, size)

    # ---- tracing (proto/trace.py, docs/qlog.md) -----------------------------------------
    @property
    def tracer(self) -> Tracer | None:
        """Optional ``tracer(name, data)`` called with every qlog event (``name`` without
        the ``quic:`` namespace, ``data`` the draft's dict); None when unset (no cost)."""
        return None if self._trace is None else self._trace.callback

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        self._trace = Trace.of(self, self._trace).set_callback(tracer)

    def add_trace_sink(self, sink: TraceSink) -> None:
        """Also send the events to ``sink`` (e.g. a QlogWriter; any TraceSink)."""
        self._trace = Trace.of(self, self._trace).add_sink(sink)

    @property
    def qlog_path(self) -> str | None:
        """The qlog file this connection writes (Config.qlog_dir, QLOGDIR), if any."""
        return None if self._trace is None else self._trace.qlog_path

    def end_trace(self) -> None:
        """Flush and close the trace's sinks now (the connection's end does it; a driver
        calls this for a connection it drops before the end)."""
        if self._trace is not None:
            self._trace.end()

    def set_stream_priority(self, stream_id: int, priority: int) -> None:
        """Lower values are sent first; streams of equal priority share round robin."""
        self._streams.set_priority(stream_id, priority)

    # ---------------------------------------------------------------------------------------
    # Connection IDs, paths, migration and stateless reset (RFC 9000 5.1, 8.2, 9, 10.3)
    # ---------------------------------------------------------------------------------------
    @property
    def original_dcid(self) -> bytes:
        """The DCID of the client's first Initial, which both ends know (b"" until then)."""
        return self._handshake.original_dcid

    @property
    def peer_cid(self) -> bytes:
        """The connection ID our packets carry (the peer's)."""
        return self._builder.peer_cid

    @peer_cid.setter
    def peer_cid(self, cid: bytes) -> None:
        self._builder.peer_cid = cid

    @property
    def version(self) -> int:
        """The QUIC version in use."""
        return self._builder.version

    @version.setter
    def version(self, version: int) -> None:
        self._builder.version = version

    @property
    def peer_addr(self) -> tuple[str, int] | None:
        """The peer's address on the current path (None before the first datagram)."""
        return self._paths.current.addr

    @property
    def local_path(self) -> int:
        """The local path id (the driver's socket) the connection sends on."""
        return self._paths.current.local

    @property
    def peer_address_validated(self) -> bool:
        """True once the current path to the peer is validated."""
        return self._paths.current.validated

    def change_connection_id(self) -> bool:
        """Send with another of the peer's CIDs from now on and retire the current one
        (RFC 9000 5.1.2); False when the peer has not issued a spare one."""
        self._check_open()
        if not self._peer_cids.switch():
            return False
        self.peer_cid = self._peer_cids.current_cid
        return True

    def probe_path(self, local: int, now: float) -> None:
        """Client, active migration (RFC 9000 9.2): probe the path through the driver's
        local socket ``local`` with PATH_CHALLENGE (datagrams from :meth:`probe_datagrams`)
        and move there once the server answers (``PathValidated``; ``PathValidationFailed``
        when it does not)."""
        self._check_open()
        if not self.is_client:
            raise ConnectionStateError("only a client migrates actively")
        if not self._handshake.confirmed:
            raise ConnectionStateError("migration needs a confirmed handshake (RFC 9000 section 9)")
        params = self._handshake.peer_params
        if params is not None and params.disable_active_migration:
            raise ConnectionStateError("the server disabled active migration")
        try:
            self._migration.probe(local, now)
        except ValueError as exc:
            raise ConnectionStateError(str(exc)) from None

    def probe_datagrams(self, now: float) -> list[tuple[int, bytes, tuple[str, int]]]:
        """``(local path, datagram, address)`` to send from local sockets other than the
        current one (path probes of an active migration)."""
        if not self._lifecycle.state.is_open:
            return []
        probes = self._builder.probe_datagrams(now, same_socket=False)
        return [(path.local, datagram, path.addr or ("", 0)) for path, datagram in probes]

    def _stateless_reset_received(self, header: PacketHeader, data: bytes, now: float) -> bool:
        """RFC 9000 10.3.1: a short-header datagram we cannot process that ends with one of
        the peer's reset tokens (of CIDs the peer issued and we did not retire) is a
        stateless reset: the peer lost the connection, which drains. True if it was one."""
        if header.is_long or len(data) < 21 or not self._lifecycle.state.is_active:
            return False
        if not self._peer_cids.is_reset_token(bytes(data[-16:])):
            return False
        logger.debug("stateless reset received: the peer lost the connection")
        self._lifecycle.drain(ErrorCode.NO_ERROR, "stateless reset", None, now)
        return True

    # ---------------------------------------------------------------------------------------
    # Lifecycle
    # ---------------------------------------------------------------------------------------
    def _start_handshake_timer(self, now: float) -> None:
        if not self._handshake.complete:
            self._handshake_timer.start(now)

    def _check_open(self) -> None:
        if not self._lifecycle.state.is_open:
            raise ConnectionClosedError(0, "connection is closed")

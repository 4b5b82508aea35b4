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
from ..tls.engine import Epoch, TlsEngine
from ..wire import frames as F
from ..wire.packet import (
    QUIC_V1,
    SUPPORTED_VERSIONS,
    PacketHeader,
    PacketType,
    parse_header,
    verify_retry,
)
from ..wire.protection import PacketProtector
from ..wire.transport_params import TransportParameters
from . import events as ev
from .cid import LocalCids, PeerCids
from .congestion import create as create_congestion_controller
from .congestion.base import CongestionController
from .early_data import limits_reduced, remembered_parameters
from .event_queue import DATAGRAM_OVERHEAD as DATAGRAM_OVERHEAD
from .event_queue import EventQueue
from .handshake import (
    KEYS_NOT_NEEDED_FOR_THE_FLIGHT,
    KEYS_NOT_NEEDED_FOR_THE_HELLO,
    LOCAL_MAX_ACK_DELAY,
    check_peer_cids,
    check_version_information,
    local_transport_parameters,
    make_tls_engine,
)
from .handshake_stock import HandshakeStock, initial_protectors
from .idle import HandshakeTimer, IdleTimer
from .keys import EPOCH_SPACE, KeyState
from .lifecycle import CLOSED, ESTABLISHED, HANDSHAKING, CloseReason, Closing, Draining, State
from .migration import Migration
from .pacing import Pacer
from .packet_builder import (
    MIN_BUDGET,
    MIN_INITIAL_DATAGRAM,
    PacketBuilder,
    Tracer,
    next_skip,
)
from .packet_space import (
    APPLICATION,
    CRYPTO_BUFFER_LIMIT,
    HANDSHAKE,
    INITIAL,
    PacketSpace,
    register_space_records,
)
from .path import Path, PathManager
from .records import (
    CryptoRecord,
    HandshakeDoneRecord,
    PingRecord,
    RecordTable,
    SentPacket,
    StreamRecord,
)
from .recovery import LossRecovery
from .server_context import ServerContext
from .stats import ConnectionStats, Stats
from .stream_manager import StreamManager
from .timers import Timer, TimerTable
from .tokens import seal_new_token
from .versions import (
    choose_version,
    client_hello_transport_parameters,
    version_information,
)

logger = logging.getLogger("quicish")

CID_LENGTH = 8

_ECN_COUNTER = {0x02: 0, 0x01: 1, 0x03: 2}  # ECT(0), ECT(1), CE -> index in the ACK counts
PROBE_SCAN_PACKETS = 64  # oldest in-flight packets a PTO probe looks through for data
_ONE_RTT = PacketType.ONE_RTT  # (an IntEnum member read once, not per packet)
_NON_ELICITING = (F.AckFrame, F.PaddingFrame, F.ConnectionCloseFrame)
# Frames that do not make a packet "non-probing" (RFC 9000 section 9.1).
_PROBING = frozenset(
    (F.PathChallengeFrame, F.PathResponseFrame, F.NewConnectionIdFrame, F.PaddingFrame)
)

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
        self._server_name = config.server_name if server_name is None else server_name
        self.is_client = is_client
        # RFC 9368: a client's versions in preference order (offered in version_information);
        # a server's preference when it answers a client that offered several.
        self._server_prefers = server_context is not None and server_context.versions is not None
        if versions is None:
            versions = (
                (server_context.versions or SUPPORTED_VERSIONS)
                if server_context is not None
                else (version, *[v for v in SUPPORTED_VERSIONS if v != version])
            )
        self._versions = tuple(versions)
        self._original_version = version
        self._compat_initial_rx: PacketProtector | None = None  # server: original-version Initials
        self._initial_keys_dcid = b""
        self._random = random_bytes
        self._stock = handshake_stock
        self._server_context = server_context
        self._session_ticket = session_ticket
        self._early_data_requested = early_data and session_ticket is not None
        self._state: State = HANDSHAKING
        self._tracer: Tracer | None = None
        self.stats_counters = ConnectionStats()
        self._events = EventQueue(config.datagram_receive_buffer, self.stats_counters)

        self.host_cid = random_bytes(CID_LENGTH)
        # Stateless reset tokens of our CIDs are HMAC(reset key, CID) (RFC 9000 10.3.2).
        reset_key = server_context.reset_key if server_context is not None else random_bytes(32)
        self._local_cids = LocalCids(self.host_cid, reset_key, random_bytes)
        self._peer_cids = PeerCids(
            max(2, config.active_connection_id_limit), config.max_unacked_cid_retirements
        )
        self._rx_dcid = b""  # DCID of the packet being processed
        self.new_token: bytes | None = None  # client: from NEW_TOKEN, for a later connect()
        self._original_dcid = b""
        # start_hello(): the first datagram, sealed ahead, and its packets, which connect()
        # records as sent at its own time.
        self._first_datagram: bytes | None = None
        self._initial_dcid: bytes | None = None  # server: the DCID of the client's first Initial
        self._retry_source_cid: bytes | None = None
        self._retry_received = False
        self._first_packet_received = False

        frags = config.max_crypto_fragments
        self._spaces = (
            PacketSpace(INITIAL, config.initial_crypto_buffer, frags),
            PacketSpace(HANDSHAKE, CRYPTO_BUFFER_LIMIT, frags),
            PacketSpace(APPLICATION, CRYPTO_BUFFER_LIMIT, frags),
        )
        self._spaces[APPLICATION].skip_pn = next_skip(0, config.pn_skip_interval, random_bytes)
        self._remembered_params: TransportParameters | None = None  # client, for 0-RTT
        self._tls: TlsEngine | None = None
        self._sent_params = b""  # their encoding, once the handshake started
        self._tls_ahead: TlsEngine | None = None  # server: made by await_hello()
        self._peer_params: TransportParameters | None = None
        self.handshake_complete = False
        self.handshake_confirmed = False
        self.early_data_accepted = False
        self.alpn: str | None = None
        self.session_resumed = False

        # Paths (RFC 9000 section 9), each with its anti-amplification budget (section 8):
        # until a path is validated, at most 3x the bytes received on it are sent on it.
        self._paths = PathManager(Path(None, validated=is_client), random_bytes)
        self._rx_path = self._paths.current  # the path of the datagram being processed
        self._rx_non_probing = False

        cc = create_congestion_controller(config.congestion_control, config.max_datagram_size)
        self._recovery = LossRecovery(
            cc, max_ack_delay=0.025, max_not_in_flight=config.max_ack_only_packets
        )
        # A server never needs anti-deadlock probes: the client drives address validation.
        self._recovery.peer_completed_address_validation = not is_client
        self._pacer = Pacer(config.max_datagram_size)
        self._keys = KeyState(self._spaces, self._recovery, self.stats_counters)

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
        self._streams.register_records(self._records)
        self._local_cids.register_records(self._records)
        self._peer_cids.register_records(self._records)
        self._records.register(
            HandshakeDoneRecord, self._on_handshake_done_acked, self._on_handshake_done_lost
        )
        self._records.register(PingRecord)
        self._idle = IdleTimer(config.idle_timeout, config.keep_alive)
        self._handshake_timer = HandshakeTimer(config.handshake_timeout)
        self._timers = TimerTable()
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
        self._local_params = self._make_transport_parameters()
        #: Server: send the ServerHello in a datagram of its own before building the rest of
        #: the first flight, so the client derives its handshake keys while this side signs
        #: (see :attr:`flight_pending`). The asyncio layer turns it on.
        self.split_first_flight = False
        #: Server with ``split_first_flight``: the ServerHello goes out alone and the next
        #: :meth:`datagrams_to_send` builds the rest of the first flight, so a driver calls it
        #: again right after sending (any other call also completes the flight).
        self.flight_pending = False
        self._hello_sent_alone = False  # the last datagrams_to_send() left the flight pending
        self._prepared = False  # prepare() ran (or is no longer useful)
        # Server: a NEW_TOKEN sealed ahead of need, and the address it was sealed for.
        self._prepared_token: tuple[tuple[str, int], bytes] | None = None
        if not is_client:
            self.set_origin(original_dcid, retry_source_cid, address_validated)

    def set_origin(
        self, original_dcid: bytes | None, retry_source_cid: bytes | None, address_validated: bool
    ) -> None:
        """Server, before the first datagram: what the stateless layer learned of the client
        (its first Initial's DCID and our Retry's SCID after a Retry; whether its address is
        validated). A driver may so make a connection ahead of need and bind it later."""
        if self.is_client or self._initial_dcid is not None:
            raise ConnectionStateError(
                "set_origin() is for a server connection before its first datagram"
            )
        self._original_dcid = original_dcid or b""
        self._retry_source_cid = retry_source_cid
        self._paths.current.validated = address_validated or retry_source_cid is not None

    # ---------------------------------------------------------------------------------------
    # Public sans-IO API
    # ---------------------------------------------------------------------------------------
    def start_hello(self, now: float) -> None:
        """Client, optional, before :meth:`connect`: make the ClientHello, pick the first
        DCID and Initial keys, and (without a session ticket) seal the first datagram now; a
        driver may do it while idle. ``connect()`` then records the datagram as sent at its
        own ``now`` and :meth:`datagrams_to_send` returns it first."""
        if not self.is_client or self._tls is not None:
            raise ConnectionStateError("start_hello() is for a fresh client connection")
        self._start_tls(now)
        self._pick_first_dcid()
        if self._session_ticket is None:  # (with 0-RTT, its packets join the first datagram)
            self._builder.sealed_ahead = []
            self._first_datagram = self._builder.build_datagram(now)

    def await_hello(self, now: float) -> None:
        """Server, optional, before the first datagram: make the TLS engine and stock an
        ephemeral key pair now (a driver may do it while idle); the client's first Initial
        then only fills in what it decides (original DCID, version) before the engine reads
        the ClientHello."""
        if self.is_client or self._tls is not None or self._tls_ahead is not None:
            raise ConnectionStateError("await_hello() is for a fresh server connection")
        self._tls_ahead = self._make_tls(now, b"")
        if self._stock is not None:  # an ephemeral key pair for its ServerHello
            self._stock.stock_key_pair(self._tls_ahead.key_share_group)

    def connect(self, addr: tuple[str, int], now: float) -> None:
        """Client: start the handshake towards ``addr``."""
        if not self.is_client or self.peer_addr is not None:
            raise ConnectionStateError("connect() is for a fresh client connection")
        self._paths.current.addr = addr
        self._idle.last_activity = now
        self._start_handshake_timer(now)
        if self._tls is None:
            self._start_tls(now)
            self._pick_first_dcid()
        builder = self._builder
        sealed, builder.sealed_ahead = builder.sealed_ahead, None
        for sent in sealed or ():
            sent.sent_time = now
            builder.record_sent(sent)
        if self._keys.zero_rtt_tx is not None and self._session_ticket is not None:
            # 0-RTT offered: streams may open and send under the remembered limits.
            self._remembered_params = remembered_parameters(self._session_ticket)
            if self._remembered_params is None:
                self._keys.zero_rtt_tx = None
            else:
                self._streams.on_peer_parameters(self._remembered_params)

    def _pick_first_dcid(self) -> None:
        """Client: the first DCID and its Initial keys (made ahead by prepare() if it can)."""
        spare = self._stock.take_initial(self.version) if self._stock is not None else None
        if spare is not None:
            self._original_dcid, tx, rx = spare
            self._initial_keys_dcid = self._original_dcid
            initial = self._spaces[INITIAL]
            initial.tx, initial.rx = tx, rx
        else:
            self._original_dcid = self._random(CID_LENGTH)
            self._install_initial_keys(self._original_dcid)
        self.peer_cid = self._original_dcid

    def receive_datagram(
        self, data: bytes, addr: tuple[str, int], now: float, local: int = 0, ecn: int = 0
    ) -> None:
        """Process one UDP datagram (possibly several coalesced packets); ``local`` names
        the local socket it arrived on when the driver has several (active migration),
        ``ecn`` the IP ECN codepoint it carried (0 when unknown)."""
        if not self._state.is_active:
            return
        if self.flight_pending:
            self._finish_flight(now)
        if self._keys.deferred:
            self._keys.install_deferred(self.version)
        self._rx_ecn = ecn
        self._rx_size = size = len(data)
        self.stats_counters.datagrams_received += 1
        self.stats_counters.bytes_received += size
        path = self._paths.current
        if addr != path.addr or local != path.local:
            if path.addr is None:  # a server's first datagram: the connection starts
                self._start_handshake_timer(now)
                path.addr = addr
            else:
                path = self._migration.path_of(addr, local, self.handshake_confirmed)
        if not path.validated:
            path.bytes_received += size
        self._rx_path = path
        state = self._state
        if isinstance(state, Closing):
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
                    self.stats_counters.packets_dropped += 1
                    return
                start, offset = offset, header.packet_end
                self._receive_packet(data, start, header, addr, now)
        except ProtocolError as exc:
            logger.info("closing: %s", exc)
            self._close_with_error(exc.code, exc.reason, exc.frame_type, now)
            return
        except Exception as exc:  # a bug, or MemoryError in reassembly: this connection ends
            logger.exception("closing: internal error while processing a datagram")
            self._close_internal(exc, now)
            return
        if self._migration.migrate_to is not None:
            self._migration.on_peer_migrated(now)
        state = self._state
        if isinstance(state, Closing):  # (closed by what this datagram carried)
            state.on_datagram()

    @property
    def wants_preparation(self) -> bool:
        """True while :meth:`prepare` has work it could take off the critical path."""
        if self.flight_pending:
            return False  # the rest of the flight comes first
        return bool(self._keys.deferred) or (
            not self._prepared and self._tls is not None and not self.handshake_complete
        )

    def prepare(self, now: float) -> None:
        """Optional: make what the end of the handshake needs while the I/O layer is idle
        (waiting for the peer's next flight): spare connection IDs with their reset tokens
        and, on a server, the NEW_TOKEN and the first session ticket (sealed for the client
        Finished that is expected). A client with a handshake stock also stocks there, for
        its driver's next handshake, an ephemeral key pair and a first DCID with its Initial
        keys (a server stocks its key pair in :meth:`await_hello`). Whatever was not prepared
        is made when needed. A server also installs here the keys it did not need for its
        first flight."""
        if self._keys.deferred:
            self._keys.install_deferred(self.version)
        if self._prepared:
            return
        self._prepared = True
        self._local_cids.stock()
        ctx = self._server_context
        tls = self._tls
        if tls is not None:
            upcoming = tls.next_read_secret()
            if upcoming is not None:  # (a server: the 1-RTT read key, installed later)
                self._keys.prepare_read(upcoming, self.version)
            if ctx is not None and ctx.issue_tickets:
                tls.prepare_ticket(now, self._sent_params)
        stock = self._stock
        if self.is_client and stock is not None:  # for the driver's next handshake
            if tls is not None:
                stock.stock_key_pair(tls.key_share_group)
            stock.stock_initial(self.version)
        if ctx is not None and ctx.new_tokens and self._paths.current.addr is not None:
            addr = self._paths.current.addr
            self._prepared_token = (addr, seal_new_token(ctx.token_key, addr, now))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        """Datagrams ready to go now (congestion control, pacing and anti-amplification applied)."""
        addr = self.peer_addr
        state = self._state
        if addr is None or not state.is_active:
            return []
        out: list[tuple[bytes, tuple[str, int]]] = []
        if isinstance(state, Closing):
            if state.send_due:
                close_datagram = self._builder.build_close_datagram(state.close)
                if close_datagram:
                    out.append((close_datagram, addr))
                state.send_due = False
            return out
        keys = self._keys
        if self._hello_sent_alone:
            self._finish_flight(now)
            if not self._state.is_open:
                return self.datagrams_to_send(now)
        elif keys.deferred and not self.flight_pending:
            keys.install_deferred(self.version)
        if self._first_datagram is not None:  # sealed by start_hello()
            out.append((self._first_datagram, addr))
            self._first_datagram = None
        if self._spaces[APPLICATION].next_pn - keys.phase_start_pn >= keys.update_limit:
            keys.auto_update(self.handshake_confirmed)
        self._builder.fill(out, addr, now)
        self._hello_sent_alone = self.flight_pending
        return out

    def _finish_flight(self, now: float) -> None:
        self.flight_pending = self._hello_sent_alone = False
        tls = self._tls
        assert tls is not None
        if self._keys.deferred:  # the handshake write key, made after the hello
            self._keys.install_deferred(self.version)
        try:
            if not self._sent_params:
                self._send_transport_parameters(tls)
            tls.finish_flight()
            self._drain_tls(now)
        except ProtocolError as exc:
            logger.info("closing: %s", exc)
            self._close_with_error(exc.code, exc.reason, exc.frame_type, now)
        except Exception as exc:  # a bug: this connection ends, no other
            logger.exception("closing: internal error")
            self._close_internal(exc, now)

    def next_timer(self) -> float | None:
        """The earliest absolute time at which :meth:`handle_timer` must be called."""
        state = self._state
        if not state.is_open:
            return state.end  # closing or draining: when it ends (closed: None)
        if self.flight_pending:
            return 0.0  # the rest of a split first flight is due at once
        return self._refresh_timers().next()

    def _refresh_timers(self) -> TimerTable:
        """The timer table, each timer set from the state it follows."""
        builder = self._builder
        recovery = self._recovery
        idle = self._idle
        idle_at = keep_alive = None
        if self._paths.current.addr is not None:  # (not before a server's first datagram)
            idle_at = idle.deadline(recovery.pto_interval())
        if self._state is ESTABLISHED and not builder.pending_ping:
            keep_alive = idle.keep_alive_deadline()
        # An ACK owed on a path out of anti-amplification budget waits for the peer's next
        # datagram: as a timer it would stay due, and the driver would spin on it.
        ack: float | None = None
        if self._paths.current.amplification_budget() >= MIN_BUDGET:
            for space in self._spaces:
                due = space.ack_due_at
                if due is not None and space.unacked_ranges and (ack is None or due < ack):
                    ack = due
        timers = self._timers
        timers.set_all(  # (in Timer order)
            [
                idle_at,
                self._handshake_timer.deadline,
                recovery.loss_detection_deadline(),
                keep_alive,
                self._paths.deadline(),
                builder.pacer_deadline,
                self._keys.zero_rtt_rx_until,
                ack,
            ]
        )
        return timers

    def handle_timer(self, now: float) -> None:
        """Run whatever timers have expired at ``now``."""
        if self._state.is_closed:
            return
        if self.flight_pending:
            self._finish_flight(now)
        state = self._state
        if not state.is_open:
            end = state.end
            if end is not None and now >= end:
                self._end()
            return
        for timer in self._refresh_timers().expired(now):
            if timer is Timer.IDLE:
                self._terminate(ErrorCode.NO_ERROR, "idle timeout", None, by_peer=False)
                self._end()
                return
            if timer is Timer.HANDSHAKE:
                # Silently, like an idle timeout (RFC 9000 10.1): a server owes nothing to an
                # address that may be spoofed; a client's connect() fails.
                self._terminate(ErrorCode.NO_ERROR, "handshake timeout", None, by_peer=False)
                self._end()
                return
            if timer is Timer.LOSS:
                lost, probe_space = self._recovery.on_timeout(now)
                self._on_packets_lost(lost, now)
                if probe_space is not None:
                    self._arm_probe(probe_space)
            elif timer is Timer.KEEP_ALIVE:
                self._builder.pending_ping = True
                self._idle.on_keep_alive(now)
            elif timer is Timer.PATH_VALIDATION:
                self._migration.on_timer(now)
            elif timer is Timer.ZERO_RTT_KEY:
                self._keys.discard_zero_rtt_rx()
        self._builder.pacer_deadline = None

    def next_event(self) -> ev.Event | None:
        """The oldest undelivered event, or None."""
        return self._events.next()

    @property
    def is_closed(self) -> bool:
        return self._state.is_closed

    def _end(self) -> None:
        """Closed for good: unhook the streams' wake-ups (each refers back to the stream
        manager) and the sent-record handlers (each refers back to its owner), so the
        connection is freed by reference counting, not the cycle collector."""
        self._state = CLOSED
        self._streams.release()
        self._records.release()

    @property
    def is_terminated(self) -> bool:
        """True once the connection has reached closing, draining or closed."""
        return not self._state.is_open

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
        if not self.handshake_confirmed or space.tx is None or space.rx is None:
            raise ConnectionStateError("key update needs a confirmed handshake")
        self._keys.request_update()

    @property
    def cipher_suite(self) -> int | None:
        """The negotiated TLS cipher suite (code point), once known."""
        tls = self._tls
        return tls.cipher_suite if tls is not None else None

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
        limit = self._peer_params.max_datagram_frame_size if self._peer_params else None
        if limit is None:
            raise ConnectionStateError("the peer does not accept DATAGRAM frames")
        if len(data) + 8 > min(limit, self._builder.max_datagram_size - 40):
            raise ConfigError(f"datagram of {len(data)} bytes is too large")
        self._builder.datagrams_out.append(bytes(data))

    def close(self, error_code: int = 0, reason: str = "", now: float | None = None) -> None:
        """Close with an application error code (0: no error)."""
        if not self._state.is_open:
            return
        self._enter_closing(error_code, None, reason, application=True, now=now)

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

    # ---------------------------------------------------------------------------------------
    # Handshake and keys
    # ---------------------------------------------------------------------------------------
    def _make_transport_parameters(self) -> TransportParameters:
        # (a server's: the client's first Initial fills in the rest, in _start_tls_server)
        token = None if self.is_client else self._local_cids.token_of(self.host_cid)
        return local_transport_parameters(
            self.config, self.host_cid, self.version, self._versions, token
        )

    def _install_initial_keys(self, dcid: bytes) -> None:
        self._initial_keys_dcid = dcid
        space = self._spaces[INITIAL]
        space.tx, space.rx = initial_protectors(dcid, self.version, self.is_client)

    def _start_tls(self, now: float) -> None:
        """Client: make the TLS engine with our transport parameters and start it."""
        self._sent_params = self._local_params.encode()  # also remembered in session tickets
        self._tls = self._make_tls(now, self._sent_params)
        self._tls.start(now)
        self._drain_tls(now)

    def _make_tls(self, now: float, transport_parameters: bytes) -> TlsEngine:
        return make_tls_engine(
            self.config,
            is_client=self.is_client,
            server_name=self._server_name,
            server_context=self._server_context,
            session_ticket=self._session_ticket,
            early_data=self._early_data_requested,
            transport_parameters=transport_parameters,
            local_params=self._local_params,
            split_flight=self.split_first_flight,
            now=now,
            key_pairs=self._stock,
        )

    def _drain_tls(self, now: float) -> None:
        tls = self._tls
        assert tls is not None
        defer = self.split_first_flight and not self.is_client
        deferred = KEYS_NOT_NEEDED_FOR_THE_FLIGHT
        if tls.flight_pending:
            deferred = KEYS_NOT_NEEDED_FOR_THE_HELLO
        keys = self._keys
        for secret in tls.pop_secrets():
            if defer and secret[:2] in deferred:
                keys.deferred.append(secret)
            else:
                keys.install(secret, self.version)
        for epoch, data in tls.pop_output():
            if epoch == Epoch.ZERO_RTT:
                continue
            space = self._spaces[EPOCH_SPACE[epoch]]
            if not space.discarded:
                space.crypto_send.write(data)
        if self.split_first_flight:
            self.flight_pending = tls.flight_pending
        if (
            self._peer_params is None
            and tls.peer_transport_parameters is not None
            and not self.flight_pending  # the ServerHello goes out first; nothing needs them
        ):
            self._apply_peer_parameters(tls.peer_transport_parameters)
        if tls.handshake_complete and not self.handshake_complete:
            self._on_handshake_complete(now)
        if self.is_client:
            for ticket in tls.pop_session_tickets():
                self._events.append(ev.SessionTicketReceived(ticket.to_bytes()))

    def _apply_peer_parameters(self, raw: bytes) -> None:
        params = TransportParameters.decode(raw, from_server=self.is_client)
        check_peer_cids(
            params,
            is_client=self.is_client,
            peer_cid=self.peer_cid,
            first_packet_received=self._first_packet_received,
            original_dcid=self._original_dcid,
            retry_source_cid=self._retry_source_cid if self._retry_received else None,
        )
        check_version_information(
            params,
            is_client=self.is_client,
            version=self.version,
            original_version=self._original_version,
        )
        self._peer_params = params
        self._streams.on_peer_parameters(params)
        self._recovery.max_ack_delay = params.max_ack_delay / 1000.0
        self._idle.negotiate(params.max_idle_timeout / 1000.0)
        builder = self._builder
        builder.max_datagram_size = min(builder.max_datagram_size, params.max_udp_payload_size)
        self._local_cids.peer_limit = params.active_connection_id_limit
        self._peer_cids.set_initial(
            self.peer_cid, params.stateless_reset_token if self.is_client else None
        )

    def _on_handshake_complete(self, now: float) -> None:
        tls = self._tls
        assert tls is not None
        self.handshake_complete = self._builder.handshake_complete = True
        self._handshake_timer.complete()  # done in time
        self._state = ESTABLISHED
        self.alpn = tls.alpn
        self.session_resumed = tls.session_resumed
        self.early_data_accepted = tls.early_data_accepted
        if not self.is_client:
            # The server is confirmed once the client's Finished arrives (RFC 9001 4.1.2).
            self._confirm_handshake()
            if self._keys.zero_rtt_rx is not None:
                # RFC 9001 4.9.3: 1-RTT packets come from now on; keep the 0-RTT read key a
                # short while for reordered 0-RTT packets, then discard it.
                self._keys.zero_rtt_rx_until = now + 3 * self._recovery.pto_duration()
            self._builder.pending_handshake_done = True
            ctx = self._server_context
            if ctx is not None and ctx.issue_tickets:
                tls.issue_session_ticket(now, self._sent_params)
                self._drain_tls(now)
            if ctx is not None and ctx.new_tokens and self._paths.current.addr is not None:
                self._streams.control.append(F.NewTokenFrame(self._new_token(ctx, now)))
        elif self._early_data_requested:
            self._on_early_data_outcome()
        self._keys.zero_rtt_tx = None
        tx = self._spaces[APPLICATION].tx
        if tx is not None:
            self._keys.set_limits(tx.suite)
        self._events.append(
            ev.HandshakeCompleted(self.alpn, self.session_resumed, self.early_data_accepted)
        )
        if not self.is_client:
            self._issue_cids()

    def _new_token(self, ctx: ServerContext, now: float) -> bytes:
        """The NEW_TOKEN for the current path (the prepared one if it is for this address)."""
        addr = self._paths.current.addr
        assert addr is not None
        prepared = self._prepared_token
        if prepared is not None and prepared[0] == addr:
            return prepared[1]
        return seal_new_token(ctx.token_key, addr, now)

    def _on_early_data_outcome(self) -> None:
        """Client: 0-RTT accepted (the server kept the remembered limits) or rejected
        (everything sent in 0-RTT goes again in 1-RTT)."""
        remembered, params = self._remembered_params, self._peer_params
        if self.early_data_accepted:
            if remembered is not None and params is not None:
                reduced = limits_reduced(remembered, params)
                if reduced is not None:
                    raise ProtocolError(
                        ErrorCode.PROTOCOL_VIOLATION, f"0-RTT accepted but {reduced} reduced"
                    )
            return
        # RFC 9002 A.6 / RFC 9001 4.6.2: 0-RTT packets leave flight without loss signals.
        self._recovery.discard_space(APPLICATION)
        for sid in self._streams.on_early_data_rejected():
            # Beyond the server's new stream limit: the stream is gone (RFC 9001 4.6.2).
            code = ErrorCode.STREAM_LIMIT_ERROR
            if not sid & 2:
                self._events.append(ev.StreamReset(sid, code, 0))
            self._events.append(ev.StopSendingReceived(sid, code))

    def _confirm_handshake(self) -> None:
        if self.handshake_confirmed:
            return
        self.handshake_confirmed = True
        self._events.append(ev.HandshakeConfirmed())
        self._recovery.handshake_confirmed = True
        self._recovery.peer_completed_address_validation = True
        self._discard_space(HANDSHAKE)
        if self.is_client:
            # Not with the Finished: that datagram stays as small as it can be, and nothing
            # uses the spare IDs before confirmation (migration waits for it).
            self._issue_cids()

    def _discard_space(self, index: int) -> None:
        if self._spaces[index].discard():
            self._recovery.discard_space(index)

    # ---------------------------------------------------------------------------------------
    # Receiving
    # ---------------------------------------------------------------------------------------
    def _receive_packet(
        self, data: bytes, start: int, header: PacketHeader, addr: tuple[str, int], now: float
    ) -> None:
        ptype = header.packet_type
        if ptype == PacketType.VERSION_NEGOTIATION:
            self._on_version_negotiation(header)
            return
        if ptype == PacketType.RETRY:
            self._on_retry(data, header, now)
            return
        if header.is_long and header.version != self.version and not self._accept_version(header):
            self.stats_counters.packets_dropped += 1
            return
        dcid = header.dcid
        if self.is_client or self._initial_dcid is not None:
            if (
                dcid != self.host_cid
                and dcid != self._initial_dcid
                and not self._local_cids.owns(dcid)
            ):
                self.stats_counters.packets_dropped += 1
                self._stateless_reset_received(header, data, now)
                return
        elif ptype != PacketType.INITIAL:
            self.stats_counters.packets_dropped += 1
            return
        else:
            # The client's first Initial: its DCID keys the Initial space (RFC 9001 5.2).
            self._initial_dcid = bytes(dcid)
            if not self._original_dcid:
                self._original_dcid = self._initial_dcid
            self._install_initial_keys(self._initial_dcid)
        self._rx_dcid = dcid

        space_index = _TYPE_SPACE[ptype]  # IntEnum keys: plain ints find them
        space = self._spaces[space_index]
        protector = self._keys.zero_rtt_read(now) if ptype == PacketType.ZERO_RTT else space.rx
        if header.is_long and header.version != self.version:
            protector = self._compat_initial_rx  # an Initial in the client's original version
        if protector is None or space.discarded:
            self.stats_counters.packets_dropped += 1
            if (
                ptype == PacketType.HANDSHAKE
                and space.discarded
                and not self.is_client
                and not self._handshake_done_acked
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
                    packet, pn_offset, space, self.handshake_confirmed
                )
            else:
                plain_header, payload, pn = protector.open_packet(
                    packet, pn_offset, space.largest_received
                )
        except DecryptionError:
            self.stats_counters.packets_undecryptable += 1
            if self._stateless_reset_received(header, data, now):
                return
            if not header.is_long and self._keys.on_auth_failure():
                # RFC 9001 6.6: too many forgeries tried against 1-RTT keys.
                raise ProtocolError(ErrorCode.AEAD_LIMIT_REACHED, "AEAD integrity limit") from None
            return

        if header.is_long and plain_header[0] & 0x0C:
            raise ProtocolError(ErrorCode.PROTOCOL_VIOLATION, "reserved header bits set")
        if not header.is_long and plain_header[0] & 0x18:
            raise ProtocolError(ErrorCode.PROTOCOL_VIOLATION, "reserved header bits set")
        if (
            self._first_packet_received
            and self.is_client
            and ptype == PacketType.INITIAL
            and header.scid != self.peer_cid
        ):
            self.stats_counters.packets_dropped += 1
            return
        if not space.record(pn):  # one call: duplicate check and record for the ACK
            self.stats_counters.packets_duplicate += 1
            return

        if not self._first_packet_received:
            self._first_packet_received = True
            self.peer_cid = header.scid
            if not self.is_client and self._tls is None:
                self._negotiate_version(payload)
                self._start_tls_server(now)

        if ptype == PacketType.HANDSHAKE and not self.is_client:
            # A Handshake packet proves the client owns its address (RFC 9000 8.1).
            self._paths.current.validated = True
            self._recovery.peer_completed_address_validation = True
            self._discard_space(INITIAL)
        # (A client learns that the server validated its address only from an ACK of one of
        # its Handshake packets, in _on_ack, or from confirmation: RFC 9002 6.2.2.1. Until
        # then it keeps a PTO armed so an amplification-limited server cannot deadlock.)

        self._process_packet(payload, ptype, space, pn, len(packet), now)

    def _receive_short(self, data: bytes, now: float) -> bool:
        """The bulk path for a datagram holding one 1-RTT packet to our current CID on the
        current path, opened with the current keys: the same outcome as the general path
        with fewer steps. False, with nothing changed, for anything else (other CIDs, key
        updates, stateless resets, forgeries, a new path), which the general path handles.
        Raises ProtocolError like the general path."""
        space = self._spaces[APPLICATION]
        rx = space.rx
        cid = self.host_cid
        pn_offset = len(cid) + 1
        if (
            rx is None
            or self._rx_path is not self._paths.current
            or not self._first_packet_received
            or data[1:pn_offset] != cid
        ):
            return False
        try:
            plain_header, payload, pn = rx.open_packet(
                memoryview(data), pn_offset, space.largest_received
            )
        except DecryptionError:
            return False
        if plain_header[0] & 0x18:
            raise ProtocolError(ErrorCode.PROTOCOL_VIOLATION, "reserved header bits set")
        self._rx_dcid = cid
        if not space.record(pn):
            self.stats_counters.packets_duplicate += 1
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
        tracer = self._tracer
        if tracer is not None:
            tracer("packet_received", {"space": space.index, "pn": pn, "size": size})
        if (
            self._rx_path is not self._paths.current
            and self._rx_non_probing
            and ptype == PacketType.ONE_RTT
            and pn > space.largest_received
        ):
            # The peer's newest non-probing packet comes from a new path (RFC 9000 9.3).
            self._migration.migrate_to = self._rx_path
        space.on_packet_received(pn, ack_eliciting, now, LOCAL_MAX_ACK_DELAY)
        if self._rx_ecn:
            space.ecn_counts[_ECN_COUNTER[self._rx_ecn]] += 1

    # ---- compatible version negotiation (RFC 9368, RFC 9369) --------------------------------
    def _accept_version(self, header: PacketHeader) -> bool:
        """A long-header packet of another version than ours: switch or accept it?"""
        version = header.version
        if version not in SUPPORTED_VERSIONS:
            return False
        if self.is_client:
            # The server answered in another version we offered (compatible negotiation).
            if (
                header.packet_type == PacketType.INITIAL
                and not self._first_packet_received
                and self.version == self._original_version
                and version in self._versions
            ):
                self._switch_version(version)
                return True
            return False
        if self._initial_dcid is None:  # a server's first packet sets the version
            self.version = self._original_version = version
            return True
        # The client's Initials in its original version, until it saw our answer.
        return (
            version == self._original_version
            and header.packet_type == PacketType.INITIAL
            and self._compat_initial_rx is not None
        )

    def _switch_version(self, version: int) -> None:
        """Client: from now on in ``version``, with its Initial keys for the same DCID."""
        logger.info("compatible version negotiation: %#x -> %#x", self.version, version)
        self.version = version
        self._install_initial_keys(self._initial_keys_dcid)
        # 0-RTT keys belong to the original version: what was sent in 0-RTT goes again in
        # 1-RTT once loss detection gives it up.
        self._keys.zero_rtt_tx = None

    def _negotiate_version(self, payload: bytes) -> None:
        """Server, first Initial: answer in the most preferred version the client offered."""
        chosen = choose_version(
            self.version,
            client_hello_transport_parameters(payload),
            self._versions if self._server_prefers else None,
        )
        if chosen == self.version or self._initial_dcid is None:
            return
        logger.info("compatible version negotiation: %#x -> %#x", self.version, chosen)
        self._compat_initial_rx = self._spaces[INITIAL].rx
        self.version = chosen
        self._install_initial_keys(self._initial_dcid)

    def _start_tls_server(self, now: float) -> None:
        # What the client's first Initial decided, on the parameters made with the connection.
        params = self._local_params
        params.original_destination_connection_id = self._original_dcid
        params.retry_source_connection_id = self._retry_source_cid
        params.version_information = version_information(self.version, self._versions)
        tls, self._tls_ahead = self._tls_ahead, None
        if tls is None:
            tls = self._make_tls(now, b"")
        tls.split_flight = self.split_first_flight
        self._tls = tls
        if not self.split_first_flight:  # (split: encoded after the hello, by _finish_flight)
            self._send_transport_parameters(tls)
        tls.start(now)
        self._drain_tls(now)

    def _send_transport_parameters(self, tls: TlsEngine) -> None:
        """Server: encode our transport parameters for the EncryptedExtensions."""
        self._sent_params = self._local_params.encode()  # also remembered in session tickets
        tls.set_transport_parameters(self._sent_params)

    def _on_version_negotiation(self, header: PacketHeader) -> None:
        if not self.is_client or self._first_packet_received:
            return
        versions: tuple[int, ...] = header.supported_versions or ()
        if self.version in versions:
            return  # RFC 9000 6.2: ignore a VN listing the version we use
        self._terminate(
            ErrorCode.NO_ERROR, f"server supports only {versions!r}", None, by_peer=True
        )
        self._end()

    def _on_retry(self, data: bytes, header: PacketHeader, now: float) -> None:
        if not self.is_client or self._retry_received or self._first_packet_received:
            return
        packet = bytes(data[: header.packet_end])
        if (
            header.dcid != self.host_cid
            or header.scid == self._original_dcid  # RFC 9000 17.2.5.1: MUST discard
            or not verify_retry(packet, self._original_dcid)
        ):
            self.stats_counters.packets_dropped += 1
            return
        self._retry_received = True
        self.stats_counters.retries_received += 1
        self.peer_cid = header.scid
        self._retry_source_cid = bytes(header.scid)  # checked in the transport parameters
        self._builder.token = header.retry_token or b""
        self._install_initial_keys(self.peer_cid)
        # Everything sent in Initial packets is re-sent with the new keys and the token.
        self._requeue_space(INITIAL)
        if self._keys.zero_rtt_tx is not None:
            # The server dropped our 0-RTT packets too: send their data again at once
            # (RFC 9000 17.2.5.3) rather than waiting for loss detection.
            for pkt in self._recovery.discard_space(APPLICATION):
                for rec in pkt.frames:
                    if type(rec) is StreamRecord:
                        self._streams.on_stream_lost(*rec)

    def _requeue_space(self, index: int) -> None:
        """Forget what was sent in a space and queue all its CRYPTO data again (Retry)."""
        self._recovery.discard_space(index)
        self._spaces[index].crypto_send.requeue_all()

    def _process_frames(
        self, payload: bytes, ptype: PacketType, space: PacketSpace, now: float
    ) -> bool:
        # The bulk case, a 1-RTT packet that is one STREAM frame: no frame list, no dispatch.
        lone = F.decode_lone_stream_frame(payload) if ptype == _ONE_RTT else None
        if lone is not None:
            try:
                self._on_stream(lone, space, now)
            except ProtocolError as exc:
                _name_culprit(exc, lone)
                raise
            if self._rx_path is not self._paths.current:
                self._rx_non_probing = True  # STREAM is a non-probing frame
            return True
        frames = F.decode_frames(payload, ptype)
        ack_eliciting = False
        handlers = self._handlers
        for frame in frames:
            kind = type(frame)
            if kind not in _NON_ELICITING:
                ack_eliciting = True
            handler = handlers.get(kind)
            if handler is not None:
                try:
                    handler(self, frame, space, now)
                except ProtocolError as exc:
                    _name_culprit(exc, frame)
                    raise
        if self._rx_path is not self._paths.current:
            self._rx_non_probing = any(type(f) not in _PROBING for f in frames)
        return ack_eliciting

    # ---- frame handlers ---------------------------------------------------------------------
    def _on_ack(self, frame: F.AckFrame, space: PacketSpace, now: float) -> None:
        delay = 0.0
        if space.index == APPLICATION and self._peer_params is not None:
            delay = (frame.delay << self._peer_params.ack_delay_exponent) / 1_000_000
        ecn_ce = frame.ecn[2] if frame.ecn is not None else None
        acked, lost = self._recovery.on_ack_received(space.index, frame.ranges, delay, now, ecn_ce)
        self._on_packets_acked(acked)
        if acked and space.index != APPLICATION:
            self._handshake_timer.progress(now)
        self._on_packets_lost(lost, now)
        if self._keys.update_requested:
            self._keys.maybe_update()
        cc = self._recovery.cc
        self._pacer.update(cc.cwnd, self._recovery.rtt.smoothed_rtt, cc.in_slow_start)
        if self.is_client and space.index == HANDSHAKE:
            self._recovery.peer_completed_address_validation = True

    def _on_crypto(self, frame: F.CryptoFrame, space: PacketSpace, now: float) -> None:
        buf = space.crypto_recv
        try:
            buf.insert(frame.offset, frame.data)
        except ProtocolError as exc:
            code = ErrorCode.CRYPTO_BUFFER_EXCEEDED
            raise ProtocolError(code, exc.reason, F.frame_type_of(frame)) from exc
        data = buf.read()
        if not data:
            return
        buf.max_offset = buf.read_offset + space.crypto_window  # a sliding window
        self._handshake_timer.progress(now)  # (nothing once the handshake is complete)
        if self._tls is None:
            return
        epoch = (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)[space.index]
        self._tls.receive(epoch, data, now)  # CryptoError closes with 0x100 + alert
        self._drain_tls(now)

    def _on_stream(self, frame: F.StreamFrame, space: PacketSpace, now: float) -> None:
        stream = self._streams.on_stream_frame(
            frame.stream_id, frame.offset, frame.data, frame.fin, now
        )
        recv = stream.recv if stream is not None else None
        if recv is not None and recv.take_readable_event():
            self._events.append(ev.StreamDataAvailable(frame.stream_id))

    def _on_reset_stream(self, frame: F.ResetStreamFrame, space: PacketSpace, now: float) -> None:
        if self._streams.on_reset_stream(frame.stream_id, frame.error_code, frame.final_size):
            self._events.append(ev.StreamReset(frame.stream_id, frame.error_code, frame.final_size))

    def _on_stop_sending(self, frame: F.StopSendingFrame, space: PacketSpace, now: float) -> None:
        if self._streams.on_stop_sending(frame.stream_id, frame.error_code):
            self._events.append(ev.StopSendingReceived(frame.stream_id, frame.error_code))

    def _on_max_data(self, frame: F.MaxDataFrame, space: PacketSpace, now: float) -> None:
        self._streams.on_max_data(frame.maximum)

    def _on_max_stream_data(
        self, frame: F.MaxStreamDataFrame, space: PacketSpace, now: float
    ) -> None:
        self._streams.on_max_stream_data(frame.stream_id, frame.maximum)

    def _on_max_streams(self, frame: F.MaxStreamsFrame, space: PacketSpace, now: float) -> None:
        if self._streams.on_max_streams(frame.bidi, frame.limit):
            self._events.append(ev.StreamsAvailable(frame.bidi))

    def _on_stream_data_blocked(
        self, frame: F.StreamDataBlockedFrame, space: PacketSpace, now: float
    ) -> None:
        self._streams.on_stream_data_blocked(frame.stream_id)

    def _on_handshake_done(
        self, frame: F.HandshakeDoneFrame, space: PacketSpace, now: float
    ) -> None:
        if not self.is_client:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                "HANDSHAKE_DONE from a client",
                F.frame_type_of(frame),
            )
        self._confirm_handshake()

    def _on_connection_close(
        self, frame: F.ConnectionCloseFrame, space: PacketSpace, now: float
    ) -> None:
        self._terminate(frame.error_code, frame.reason, frame.frame_type, by_peer=True)
        self._state = Draining(now + 3 * self._recovery.pto_interval())

    def _on_datagram(self, frame: F.DatagramFrame, space: PacketSpace, now: float) -> None:
        if self.config.max_datagram_frame_size is None:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                "DATAGRAM frames not negotiated",
                F.frame_type_of(frame),
            )
        self._events.append_datagram(bytes(frame.data))

    def _on_path_challenge(
        self, frame: F.PathChallengeFrame, space: PacketSpace, now: float
    ) -> None:
        padded = self._rx_size >= MIN_INITIAL_DATAGRAM
        self._migration.on_challenge(
            self._rx_path, bytes(frame.data), padded, self.handshake_confirmed, now
        )

    def _on_path_response(self, frame: F.PathResponseFrame, space: PacketSpace, now: float) -> None:
        self._migration.on_response(bytes(frame.data), now)

    def _on_new_token(self, frame: F.NewTokenFrame, space: PacketSpace, now: float) -> None:
        if not self.is_client:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION, "NEW_TOKEN from a client", F.frame_type_of(frame)
            )
        self.new_token = bytes(frame.token)

    def _on_new_connection_id(
        self, frame: F.NewConnectionIdFrame, space: PacketSpace, now: float
    ) -> None:
        if not self.peer_cid:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION, "NEW_CONNECTION_ID with a zero-length CID"
            )
        if self._peer_cids.on_new(frame):
            self.peer_cid = self._peer_cids.current_cid  # ours was retired (retire_prior_to)

    def _on_retire_connection_id(
        self, frame: F.RetireConnectionIdFrame, space: PacketSpace, now: float
    ) -> None:
        cid = self._local_cids.on_retire(frame.seq, bytes(self._rx_dcid))
        if cid is not None:
            self._events.append(ev.ConnectionIdRetired(cid))
            self._issue_cids()

    _handlers: dict[type, Callable[[Connection, Any, PacketSpace, float], None]] = {
        F.AckFrame: _on_ack,
        F.CryptoFrame: _on_crypto,
        F.StreamFrame: _on_stream,
        F.ResetStreamFrame: _on_reset_stream,
        F.StopSendingFrame: _on_stop_sending,
        F.MaxDataFrame: _on_max_data,
        F.MaxStreamDataFrame: _on_max_stream_data,
        F.MaxStreamsFrame: _on_max_streams,
        F.StreamDataBlockedFrame: _on_stream_data_blocked,
        F.HandshakeDoneFrame: _on_handshake_done,
        F.ConnectionCloseFrame: _on_connection_close,
        F.DatagramFrame: _on_datagram,
        F.PathChallengeFrame: _on_path_challenge,
        F.NewTokenFrame: _on_new_token,
        F.NewConnectionIdFrame: _on_new_connection_id,
        F.RetireConnectionIdFrame: _on_retire_connection_id,
        F.PathResponseFrame: _on_path_response,
    }

    # ---- acknowledgement and loss ---------------------------------------------------------
    def _on_packets_acked(self, acked: list[SentPacket]) -> None:
        self._records.on_packets_acked(acked)

    def _on_packets_lost(self, lost: list[SentPacket], now: float) -> None:
        tracer = self.tracer
        counters = self.stats_counters
        on_lost = self._records.on_lost
        for pkt in lost:
            if tracer is not None:
                tracer("packet_lost", {"space": pkt.space, "pn": pkt.pn, "size": pkt.size})
            counters.packets_lost += 1
            counters.bytes_lost += pkt.size
            on_lost(pkt.frames)

    def _on_handshake_done_acked(self, rec: HandshakeDoneRecord) -> None:
        self._handshake_done_acked = True

    def _on_handshake_done_lost(self, rec: HandshakeDoneRecord) -> None:
        self._builder.pending_handshake_done = not self._handshake_done_acked

    def _arm_probe(self, index: int) -> None:
        space = self._spaces[index]
        if space.discarded or space.tx is None:
            # Client anti-deadlock probe before Handshake keys: re-send the Initial.
            space = self._spaces[INITIAL]
        space.probes = 2
        if space.index != APPLICATION:
            space.crypto_send.requeue_unacked()
            return
        # RFC 9002 6.2.4: a probe with no new data to carry repeats the oldest unacknowledged
        # data, so a probe that gets through repairs the loss even when ACKs keep vanishing.
        # The packets stay in flight; whichever copy is acknowledged first frees the data.
        # A packet counts only if it queues data not queued already: the two probe packets
        # carry the data of the two oldest packets that add something (else every probe
        # would repeat the first packet and its earlier probe copies, say HANDSHAKE_DONE,
        # while a lost response behind them waits for an ACK that keeps getting lost).
        repeated = 0
        for pkt in self._recovery.outstanding(APPLICATION)[:PROBE_SCAN_PACKETS]:
            if not pkt.ack_eliciting:
                continue
            live = False
            for rec in pkt.frames:
                if isinstance(rec, StreamRecord):
                    if self._streams.repeat_for_probe(*rec):
                        self.stats_counters.stream_bytes_probed += rec.length
                        live = True
                elif isinstance(rec, CryptoRecord):
                    live |= space.crypto_send.repeat_for_probe(rec.offset, rec.length, False)
                elif isinstance(rec, HandshakeDoneRecord) and not (
                    self._handshake_done_acked or self._builder.pending_handshake_done
                ):
                    self._builder.pending_handshake_done = live = True
            repeated += live
            if repeated == 2:
                break

    _handshake_done_acked = False  # the client acknowledged a packet carrying HANDSHAKE_DONE
    _rx_ecn = 0  # ECN codepoint of the datagram being processed
    _rx_size = 0  # size of the datagram being processed

    @property
    def tracer(self) -> Tracer | None:
        """Optional ``tracer(event, data)`` called on packet_sent, packet_received,
        packet_lost and metrics_updated (qlog-style names); None when unset (no cost)."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        self._tracer = self._builder.tracer = tracer
        recovery = self._recovery
        if tracer is None:
            recovery.on_metrics = None
        else:
            recovery.on_metrics = lambda r: tracer("metrics_updated", dict(r.metrics()))

    def set_stream_priority(self, stream_id: int, priority: int) -> None:
        """Lower values are sent first; streams of equal priority share round robin."""
        self._streams.set_priority(stream_id, priority)

    # ---------------------------------------------------------------------------------------
    # Connection IDs, paths, migration and stateless reset (RFC 9000 5.1, 8.2, 9, 10.3)
    # ---------------------------------------------------------------------------------------
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
    def _cc(self) -> CongestionController:
        return self._recovery.cc

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
        if not self.handshake_confirmed:
            raise ConnectionStateError("migration needs a confirmed handshake (RFC 9000 section 9)")
        if self._peer_params is not None and self._peer_params.disable_active_migration:
            raise ConnectionStateError("the server disabled active migration")
        try:
            self._migration.probe(local, now)
        except ValueError as exc:
            raise ConnectionStateError(str(exc)) from None

    def probe_datagrams(self, now: float) -> list[tuple[int, bytes, tuple[str, int]]]:
        """``(local path, datagram, address)`` to send from local sockets other than the
        current one (path probes of an active migration)."""
        if not self._state.is_open:
            return []
        probes = self._builder.probe_datagrams(now, same_socket=False)
        return [(path.local, datagram, path.addr or ("", 0)) for path, datagram in probes]

    def _issue_cids(self) -> None:
        for cid in self._local_cids.top_up():
            self._events.append(ev.ConnectionIdIssued(cid))

    def _stateless_reset_received(self, header: PacketHeader, data: bytes, now: float) -> bool:
        """RFC 9000 10.3.1: a short-header datagram we cannot process that ends with one of
        the peer's reset tokens (of CIDs the peer issued and we did not retire) is a
        stateless reset: the peer lost the connection, which drains. True if it was one."""
        if header.is_long or len(data) < 21 or not self._state.is_active:
            return False
        if not self._peer_cids.is_reset_token(bytes(data[-16:])):
            return False
        logger.info("stateless reset received: the peer lost the connection")
        self._terminate(ErrorCode.NO_ERROR, "stateless reset", None, by_peer=True)
        self._state = Draining(now + 3 * self._recovery.pto_interval())
        return True

    # ---------------------------------------------------------------------------------------
    # Lifecycle
    # ---------------------------------------------------------------------------------------
    def _start_handshake_timer(self, now: float) -> None:
        if not self.handshake_complete:
            self._handshake_timer.start(now)

    def _check_open(self) -> None:
        if not self._state.is_open:
            raise ConnectionClosedError(0, "connection is closed")

    def _close_with_error(self, code: int, reason: str, frame_type: int | None, now: float) -> None:
        self._enter_closing(code, frame_type, reason, application=False, now=now)

    def _close_internal(self, exc: BaseException, now: float) -> None:
        """Close with INTERNAL_ERROR after an unexpected exception (logged by the caller);
        the local reason names its type, never its text."""
        reason = f"internal error ({type(exc).__name__})"
        self._close_with_error(ErrorCode.INTERNAL_ERROR, reason, None, now)

    def _enter_closing(
        self,
        code: int,
        frame_type: int | None,
        reason: str,
        application: bool,
        now: float | None,
    ) -> None:
        if not self._state.is_open:
            return
        self._terminate(code, reason, frame_type, by_peer=False)
        base = now if now is not None else self._idle.last_activity
        close = CloseReason(code, frame_type, reason, application)
        self._state = Closing(close, base + 3 * self._recovery.pto_interval())

    def _terminate(self, code: int, reason: str, frame_type: int | None, by_peer: bool) -> None:
        """Report the end (once: only while the connection is open; the caller then moves
        it to closing, draining or closed)."""
        if not self._state.is_open:
            return
        self._events.append(ev.ConnectionTerminated(code, reason, frame_type, by_peer))

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
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
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
    wire_reason,
)
from ..tls.certs import TrustSource
from ..tls.engine import Epoch, TlsEngine
from ..tls.keylog import keylog_file
from ..wire import frames as F
from ..wire.buffer import Buffer
from ..wire.packet import (
    QUIC_V1,
    QUIC_V2,
    PacketHeader,
    PacketType,
    encode_long_header,
    encode_packet_number,
    encode_short_header,
    parse_header,
    verify_retry,
)
from ..wire.protection import (
    AEAD_TAG_SIZE,
    PacketProtector,
    confidentiality_limit,
    integrity_limit,
)
from ..wire.transport_params import TransportParameters
from . import events as ev
from .built_packet import BuiltPacket
from .cid import LocalCids, PeerCids
from .congestion import create as create_congestion_controller
from .early_data import limits_reduced, remembered_parameters
from .handshake_stock import HandshakeStock, initial_protectors
from .pacing import Pacer
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
    HANDSHAKE_DONE,
    PING,
    AckRecord,
    CryptoRecord,
    HandshakeDoneRecord,
    NewConnectionIdRecord,
    PingRecord,
    Record,
    RecordTable,
    RetireConnectionIdRecord,
    SentPacket,
    StreamRecord,
    new_record,
)
from .recovery import LossRecovery
from .rtt import RttEstimator
from .server_context import ServerContext
from .stats import ConnectionStats, Stats
from .stream_manager import StreamManager
from .tokens import seal_new_token
from .versions import (
    DEFAULT_VERSIONS,
    VERSION_NEGOTIATION_ERROR,
    choose_version,
    client_hello_transport_parameters,
    version_information,
)

logger = logging.getLogger("quicish")

SUPPORTED_VERSIONS = (QUIC_V1, QUIC_V2)
MIN_INITIAL_DATAGRAM = 1200
LOCAL_MAX_ACK_DELAY = 0.025
ACK_DELAY_EXPONENT = 3
CID_LENGTH = 8
MAX_DATAGRAMS_PER_CALL = 64

_ECN_COUNTER = {0x02: 0, 0x01: 1, 0x03: 2}  # ECT(0), ECT(1), CE -> index in the ACK counts
PROBE_SCAN_PACKETS = 64  # oldest in-flight packets a PTO probe looks through for data
_ONE_RTT = PacketType.ONE_RTT  # (an IntEnum member read once, not per packet)
_NON_ELICITING = (F.AckFrame, F.PaddingFrame, F.ConnectionCloseFrame)
# Frames that do not make a packet "non-probing" (RFC 9000 section 9.1).
_PROBING = frozenset(
    (F.PathChallengeFrame, F.PathResponseFrame, F.NewConnectionIdFrame, F.PaddingFrame)
)

_EPOCH_SPACE: dict[int, int] = {
    Epoch.INITIAL: INITIAL,
    Epoch.HANDSHAKE: HANDSHAKE,
    Epoch.ONE_RTT: APPLICATION,
}
_TYPE_SPACE = {
    PacketType.INITIAL: INITIAL,
    PacketType.HANDSHAKE: HANDSHAKE,
    PacketType.ZERO_RTT: APPLICATION,
    PacketType.ONE_RTT: APPLICATION,
}
_SPACE_TYPE = (PacketType.INITIAL, PacketType.HANDSHAKE, PacketType.ONE_RTT)

# Connection states.
S_HANDSHAKE, S_ESTABLISHED, S_CLOSING, S_DRAINING, S_CLOSED = range(5)


Tracer = Callable[[str, dict[str, Any]], None]

# In the event queue, the place of a received DATAGRAM whose payload waits in the connection's
# bounded datagram queue (next_event() makes the DatagramReceived).
_DATAGRAM_SLOT = ev.Event()
DATAGRAM_OVERHEAD = 64  # what a queued datagram is charged beyond its payload (bytes)


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
        self.version = version
        # RFC 9368: a client's versions in preference order (offered in version_information);
        # a server's preference when it answers a client that offered several.
        self._server_prefers = server_context is not None and server_context.versions is not None
        if versions is None:
            versions = (
                (server_context.versions or DEFAULT_VERSIONS)
                if server_context is not None
                else (version, *[v for v in DEFAULT_VERSIONS if v != version])
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
        self._token = token
        self._state = S_HANDSHAKE
        self._events: deque[ev.Event] = deque()
        self._tracer: Tracer | None = None
        self.stats_counters = ConnectionStats()

        self.host_cid = random_bytes(CID_LENGTH)
        self.peer_cid = b""
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
        self._sealed_ahead: list[SentPacket] | None = None
        self._initial_dcid: bytes | None = None  # server: the DCID of the client's first Initial
        self._retry_source_cid: bytes | None = None
        self._retry_received = False
        self._first_packet_received = False
        self.peer_addr: tuple[str, int] | None = None

        frags = config.max_crypto_fragments
        self._spaces = (
            PacketSpace(INITIAL, config.initial_crypto_buffer, frags),
            PacketSpace(HANDSHAKE, CRYPTO_BUFFER_LIMIT, frags),
            PacketSpace(APPLICATION, CRYPTO_BUFFER_LIMIT, frags),
        )
        self._spaces[APPLICATION].skip_pn = self._next_skip(0)
        self._zero_rtt_tx: PacketProtector | None = None
        self._zero_rtt_rx: PacketProtector | None = None
        # Server: when the 0-RTT read key goes (3 PTO after the handshake, RFC 9001 4.9.3).
        self._zero_rtt_rx_until: float | None = None
        self._remembered_params: TransportParameters | None = None  # client, for 0-RTT
        self._tls: TlsEngine | None = None
        self._local_params = self._make_transport_parameters()
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
        self._path = Path(None, validated=is_client)
        self._paths = PathManager(self._path, random_bytes)
        self._rx_path = self._path  # the path of the datagram being processed
        self._rx_non_probing = False
        self._migrate_to: Path | None = None
        self._fallback_path: Path | None = None  # last validated path, during a migration

        self._cc = create_congestion_controller(config.congestion_control, config.max_datagram_size)
        self._recovery = LossRecovery(
            self._cc, max_ack_delay=0.025, max_not_in_flight=config.max_ack_only_packets
        )
        # A server never needs anti-deadlock probes: the client drives address validation.
        self._recovery.peer_completed_address_validation = not is_client
        self._pacer = Pacer(config.max_datagram_size)
        self._max_datagram_size = config.max_datagram_size

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
        self._pending_handshake_done = False
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
        # Server with split_first_flight: keys whose first use is a round trip away (the
        # handshake read key, the 1-RTT write key), installed by prepare() or first need.
        self._deferred_keys: list[tuple[Epoch, str, int, bytes]] = []
        # Server: the 1-RTT read key made by prepare() before the client's Finished verifies
        # (installed only then, when TLS hands over the same secret).
        self._spare_protector: PacketProtector | None = None
        # Server: a NEW_TOKEN sealed ahead of need, and the address it was sealed for.
        self._prepared_token: tuple[tuple[str, int], bytes] | None = None
        self._pending_ping = False  # keep-alive: a PING is due in the next 1-RTT packet
        self._keep_alive_sent = 0.0  # when the last keep-alive PING was queued
        self._datagrams_out: deque[bytes] = deque()
        # Received DATAGRAM payloads not yet handed out, bounded by
        # config.datagram_receive_buffer (oldest dropped); each has a slot in _events, and
        # _stale_slots counts the leading slots whose payload was dropped.
        self._datagrams_in: deque[bytes] = deque()
        self._datagrams_in_size = 0
        self._stale_slots = 0

        self._idle_timeout = config.idle_timeout
        self._last_activity = 0.0
        # Absolute: when the handshake must be complete (set as the connection starts; no
        # packet moves it), None without Config.handshake_timeout or once complete.
        self._handshake_deadline: float | None = None
        self._handshake_cap = 0.0  # the latest the deadline can move to (see below)
        self._close_frame: tuple[int, int | None, str, bool] | None = None
        self._close_deadline: float | None = None
        self._close_sent_count = 0
        self._closing_received = 0  # datagrams received while closing (answer back-off)
        self._terminated = False
        self._key_phase = 0
        self._rx_previous: PacketProtector | None = None  # 1-RTT keys before the last update
        self._spin = False
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
        self._path.validated = address_validated or retry_source_cid is not None

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
            self._sealed_ahead = []
            self._first_datagram = self._build_datagram(now)

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
        self.peer_addr = self._path.addr = addr
        self._last_activity = now
        self._start_handshake_deadline(now)
        if self._tls is None:
            self._start_tls(now)
            self._pick_first_dcid()
        sealed, self._sealed_ahead = self._sealed_ahead, None
        for sent in sealed or ():
            sent.sent_time = now
            self._record_sent(sent)
        if self._zero_rtt_tx is not None and self._session_ticket is not None:
            # 0-RTT offered: streams may open and send under the remembered limits.
            self._remembered_params = remembered_parameters(self._session_ticket)
            if self._remembered_params is None:
                self._zero_rtt_tx = None
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
        if self._state >= S_DRAINING:
            return
        if self.flight_pending:
            self._finish_flight(now)
        if self._deferred_keys:
            self._install_deferred_keys()
        self._rx_ecn = ecn
        self._rx_size = size = len(data)
        self.stats_counters.datagrams_received += 1
        self.stats_counters.bytes_received += size
        path = self._path
        if addr != path.addr or local != path.local:
            if path.addr is None:  # a server's first datagram: the connection starts
                self._start_handshake_deadline(now)
            path = self._path_of(addr, local)
        if not path.validated:
            path.bytes_received += size
        self._rx_path = path
        if self._state == S_CLOSING:
            self._after_input(now)  # RFC 9000 10.2.1: frames are no longer processed
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
        if self._migrate_to is not None:
            self._on_peer_migrated(self._migrate_to, now)
        self._after_input(now)

    @property
    def wants_preparation(self) -> bool:
        """True while :meth:`prepare` has work it could take off the critical path."""
        if self.flight_pending:
            return False  # the rest of the flight comes first
        return bool(self._deferred_keys) or (
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
        if self._deferred_keys:
            self._install_deferred_keys()
        if self._prepared:
            return
        self._prepared = True
        self._local_cids.stock()
        ctx = self._server_context
        tls = self._tls
        if tls is not None:
            upcoming = tls.next_read_secret()
            if upcoming is not None:
                spare = PacketProtector.from_secret(*upcoming, self.version)
                self._spare_protector = spare
                self._next_rx_keys(spare)  # (a server: the 1-RTT read key, installed later)
            if ctx is not None and ctx.issue_tickets:
                tls.prepare_ticket(now, self._sent_params)
        stock = self._stock
        if self.is_client and stock is not None:  # for the driver's next handshake
            if tls is not None:
                stock.stock_key_pair(tls.key_share_group)
            stock.stock_initial(self.version)
        if ctx is not None and ctx.new_tokens and self._path.addr is not None:
            addr = self._path.addr
            self._prepared_token = (addr, seal_new_token(ctx.token_key, addr, now))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        """Datagrams ready to go now (congestion control, pacing and anti-amplification applied)."""
        addr = self.peer_addr
        if addr is None or self._state >= S_DRAINING:
            return []
        out: list[tuple[bytes, tuple[str, int]]] = []
        if self._state == S_CLOSING:
            if self._close_sent_count == 0:
                close_datagram = self._build_close_datagram()
                if close_datagram:
                    out.append((close_datagram, addr))
                self._close_sent_count += 1
            return out
        if self._hello_sent_alone:
            self._finish_flight(now)
            if self._state >= S_CLOSING:
                return self.datagrams_to_send(now)
        elif self._deferred_keys and not self.flight_pending:
            self._install_deferred_keys()
        if self._first_datagram is not None:  # sealed by start_hello()
            out.append((self._first_datagram, addr))
            self._first_datagram = None
        self._control_checked = False
        app = self._spaces[APPLICATION]
        if app.next_pn - self._key_phase_start_pn >= self._key_update_limit:
            self._auto_key_update()
        lean = False  # once only STREAM frames can follow, the lean builder takes over
        while len(out) < MAX_DATAGRAMS_PER_CALL:
            datagram = self._build_stream_datagram(now) if lean else self._build_datagram(now)
            if datagram is None:
                break
            out.append((datagram, addr))
            if not lean:
                lean = self._lean_send_ready()
        if self._paths.others:
            for path in list(self._paths.others.values()):
                if path.local == self._path.local and path.addr is not None:
                    probe = self._build_probe_datagram(path, now)
                    if probe is not None:
                        out.append((probe, path.addr))
        self._hello_sent_alone = self.flight_pending
        return out

    def _finish_flight(self, now: float) -> None:
        self.flight_pending = self._hello_sent_alone = False
        tls = self._tls
        assert tls is not None
        if self._deferred_keys:  # the handshake write key, made after the hello
            self._install_deferred_keys()
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
        if self._state == S_CLOSED:
            return None
        if self._state >= S_CLOSING:
            return self._close_deadline
        if self.flight_pending:
            return 0.0  # the rest of a split first flight is due at once
        deadline = self._idle_deadline()
        handshake = self._handshake_deadline
        if handshake is not None and (deadline is None or handshake < deadline):
            deadline = handshake
        loss = self._recovery.loss_detection_deadline()
        if loss is not None and (deadline is None or loss < deadline):
            deadline = loss
        # An ACK owed on a path out of anti-amplification budget waits for the peer's next
        # datagram: as a timer it would stay due, and the driver would spin on it.
        acks = self._spaces if self._amplification_budget() >= _MIN_BUDGET else ()
        for space in acks:
            due = space.ack_due_at
            if due is not None and space.unacked_ranges and (deadline is None or due < deadline):
                deadline = due
        pace = self._pacer_deadline
        if pace is not None and (deadline is None or pace < deadline):
            deadline = pace
        keep_alive = self._keep_alive_deadline()
        if keep_alive is not None and (deadline is None or keep_alive < deadline):
            deadline = keep_alive
        paths = self._paths.deadline()
        if paths is not None and (deadline is None or paths < deadline):
            deadline = paths
        early = self._zero_rtt_rx_until
        if early is not None and (deadline is None or early < deadline):
            deadline = early
        return deadline

    def _keep_alive_deadline(self) -> float | None:
        """When to send a keep-alive PING (``Config.keep_alive`` seconds of quiet)."""
        interval = self.config.keep_alive
        if not interval or self._state != S_ESTABLISHED or self._pending_ping:
            return None
        return max(self._last_activity, self._keep_alive_sent) + interval

    def handle_timer(self, now: float) -> None:
        """Run whatever timers have expired at ``now``."""
        if self._state == S_CLOSED:
            return
        if self.flight_pending:
            self._finish_flight(now)
        if self._state >= S_CLOSING:
            if self._close_deadline is not None and now >= self._close_deadline:
                self._end()
            return
        idle = self._idle_deadline()
        if idle is not None and now >= idle:
            self._terminate(ErrorCode.NO_ERROR, "idle timeout", None, by_peer=False)
            self._end()
            return
        handshake = self._handshake_deadline
        if handshake is not None and now >= handshake:
            # Silently, like an idle timeout (RFC 9000 10.1): a server owes nothing to an
            # address that may be spoofed; a client's connect() fails.
            self._terminate(ErrorCode.NO_ERROR, "handshake timeout", None, by_peer=False)
            self._end()
            return
        loss = self._recovery.loss_detection_deadline()
        if loss is not None and now >= loss:
            lost, probe_space = self._recovery.on_timeout(now)
            self._on_packets_lost(lost, now)
            if probe_space is not None:
                self._arm_probe(probe_space)
        keep_alive = self._keep_alive_deadline()
        if keep_alive is not None and now >= keep_alive:
            self._pending_ping = True
            self._keep_alive_sent = now
        paths = self._paths.deadline()
        if paths is not None and now >= paths:
            for path in self._paths.on_timer(now):
                self._on_path_failed(path, now)
        self._pacer_deadline = None
        if self._zero_rtt_rx_until is not None and now >= self._zero_rtt_rx_until:
            self._discard_zero_rtt_rx()

    def _discard_zero_rtt_rx(self) -> None:
        self._zero_rtt_rx = None
        self._zero_rtt_rx_until = None

    def next_event(self) -> ev.Event | None:
        """The oldest undelivered event, or None."""
        events = self._events
        while events:
            event = events.popleft()
            if event is not _DATAGRAM_SLOT:
                return event
            if self._stale_slots:  # its datagram was dropped
                self._stale_slots -= 1
                continue
            data = self._datagrams_in.popleft()
            self._datagrams_in_size -= len(data) + DATAGRAM_OVERHEAD
            return ev.DatagramReceived(data)
        return None

    @property
    def is_closed(self) -> bool:
        return self._state == S_CLOSED

    def _end(self) -> None:
        """Closed for good: unhook the streams' wake-ups (each refers back to the stream
        manager) and the sent-record handlers (each refers back to its owner), so the
        connection is freed by reference counting, not the cycle collector."""
        self._state = S_CLOSED
        self._streams.release()
        self._records.release()

    @property
    def is_terminated(self) -> bool:
        """True once the connection has reached closing, draining or closed."""
        return self._state >= S_CLOSING

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
        self._key_update_requested = True
        self._maybe_update_keys()

    _key_update_requested = False
    _key_phase_start_pn = 0  # first application packet number sent with the current keys
    # RFC 9001 6.6: packets one key may protect before an update (set from the suite at
    # the handshake; a margin below the confidentiality limit) and forgeries tolerated.
    _key_update_limit = confidentiality_limit(0x1301) * 3 // 4
    _integrity_limit = integrity_limit(0x1301)
    _auth_failures = 0

    def _maybe_update_keys(self) -> None:
        space = self._spaces[APPLICATION]
        largest = self._recovery.largest_acked(APPLICATION)
        if largest is None or largest < self._key_phase_start_pn:
            return  # the peer has not acknowledged anything sent with the current keys
        if space.tx is None or space.rx is None:
            return
        self._key_update_requested = False
        self._rx_previous = space.rx
        space.tx = space.tx.next_generation()
        space.rx = self._next_rx_keys(space.rx)
        self._key_phase ^= 1
        self._key_phase_start_pn = space.next_pn
        self.stats_counters.key_updates += 1
        self._next_rx_keys(space.rx)  # ahead of the next update (or of forgeries)

    # The 1-RTT read keys and their next generation, derived once per generation (at an
    # update, in prepare() or at the first use) and not per packet with a flipped key phase:
    # a forged packet must cost no key derivation (RFC 9001 sections 6.3 and 9.5).
    _rx_next: tuple[PacketProtector, PacketProtector] | None = None

    def _next_rx_keys(self, rx: PacketProtector) -> PacketProtector:
        """The generation after the read keys ``rx``, derived at most once."""
        cached = self._rx_next
        if cached is None or cached[0] is not rx:
            cached = self._rx_next = (rx, rx.next_generation())
        return cached[1]

    def _auto_key_update(self) -> None:
        """The current 1-RTT key neared its confidentiality limit: update it (as soon as
        the previous update is acknowledged)."""
        space = self._spaces[APPLICATION]
        if self.handshake_confirmed and space.tx is not None and not self._key_update_requested:
            logger.debug("key update: %d packets under one key", space.next_pn)
            self._key_update_requested = True
            self._maybe_update_keys()

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
        if len(data) + 8 > min(limit, self._max_datagram_size - 40):
            raise ConfigError(f"datagram of {len(data)} bytes is too large")
        self._datagrams_out.append(bytes(data))

    def close(self, error_code: int = 0, reason: str = "", now: float | None = None) -> None:
        """Close with an application error code (0: no error)."""
        if self._state >= S_CLOSING:
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
            cwnd=self._cc.cwnd,
            ssthresh=self._cc.ssthresh,
            bytes_in_flight=self._recovery.bytes_in_flight,
            pto_count=self._recovery.pto_count,
            stream_bytes_retransmitted=self._streams.bytes_retransmitted,
            stream_bytes_lost=self._streams.bytes_lost,
        )

    # ---------------------------------------------------------------------------------------
    # Handshake and keys
    # ---------------------------------------------------------------------------------------
    def _make_transport_parameters(self) -> TransportParameters:
        cfg = self.config
        params = TransportParameters(
            max_idle_timeout=int(cfg.idle_timeout * 1000),
            initial_max_data=cfg.max_data,
            initial_max_stream_data_bidi_local=cfg.max_stream_data,
            initial_max_stream_data_bidi_remote=cfg.max_stream_data,
            initial_max_stream_data_uni=cfg.max_stream_data,
            initial_max_streams_bidi=cfg.max_streams_bidi,
            initial_max_streams_uni=cfg.max_streams_uni,
            ack_delay_exponent=ACK_DELAY_EXPONENT,
            max_ack_delay=int(LOCAL_MAX_ACK_DELAY * 1000),
            active_connection_id_limit=cfg.active_connection_id_limit,
            initial_source_connection_id=self.host_cid,
            max_datagram_frame_size=cfg.max_datagram_frame_size,
            disable_active_migration=cfg.disable_active_migration,
            version_information=version_information(self.version, self._versions),
        )
        if not self.is_client:  # the client's first Initial fills in the rest: _start_tls_server
            params.stateless_reset_token = self._local_cids.token_of(self.host_cid)
        return params

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
        cfg = self.config
        ticket = None
        if self._session_ticket is not None:
            from ..tls.tickets import SessionTicket

            ticket = SessionTicket.from_bytes(self._session_ticket)
        ctx = self._server_context
        keylog = ctx.keylog if ctx is not None else None
        if ctx is None and cfg.keylog_file is not None:
            keylog = keylog_file(cfg.keylog_file)
        return TlsEngine(
            is_client=self.is_client,
            alpn_protocols=list(cfg.alpn),
            cipher_suites=cfg.cipher_suite_ids(),
            groups=cfg.groups,
            server_name=self._server_name,
            verify=_verify_setting(cfg.verify),
            pin=cfg.pin,
            certificate_chain=ctx.certificate_chain if ctx else None,
            private_key=ctx.private_key if ctx else None,
            transport_parameters=transport_parameters,
            session_ticket=ticket,
            early_data=self._early_data_requested if ctx is None else ctx.early_data,
            ticket_keys=ctx.ticket_keys if ctx else None,
            replay_filter=ctx.replay_filter if ctx else None,
            keylog=keylog,
            now=now,
            ticket_lifetime=cfg.session_ticket_lifetime,
            accept_early_data=(
                None if self.is_client else partial(_early_data_acceptable, self._local_params)
            ),
            split_flight=self.split_first_flight and not self.is_client,
            key_pairs=self._stock,
        )

    def _drain_tls(self, now: float) -> None:
        tls = self._tls
        assert tls is not None
        defer = self.split_first_flight and not self.is_client
        deferred = _KEYS_NOT_NEEDED_FOR_THE_FLIGHT
        if tls.flight_pending:
            deferred = _KEYS_NOT_NEEDED_FOR_THE_HELLO
        for epoch, secret_dir, suite, secret in tls.pop_secrets():
            if defer and (epoch, secret_dir) in deferred:
                self._deferred_keys.append((epoch, secret_dir, suite, secret))
            else:
                self._install_key(epoch, secret_dir, suite, secret)
        for epoch, data in tls.pop_output():
            if epoch == Epoch.ZERO_RTT:
                continue
            space = self._spaces[_EPOCH_SPACE[epoch]]
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

    def _install_key(self, epoch: Epoch, secret_dir: str, suite: int, secret: bytes) -> None:
        spare = self._spare_protector
        if spare is not None and (spare.secret, spare.suite) == (secret, suite):
            protector, self._spare_protector = spare, None
        else:
            protector = PacketProtector.from_secret(suite, secret, self.version)
        if epoch == Epoch.ZERO_RTT:
            if secret_dir == "write":
                self._zero_rtt_tx = protector
            else:
                self._zero_rtt_rx = protector
            return
        space = self._spaces[_EPOCH_SPACE[epoch]]
        if secret_dir == "write":
            space.tx = protector
        else:
            space.rx = protector
        if epoch == Epoch.HANDSHAKE:
            self._recovery.has_handshake_keys = True

    def _install_deferred_keys(self) -> None:
        keys, self._deferred_keys = self._deferred_keys, []
        for key in keys:
            self._install_key(*key)

    def _apply_peer_parameters(self, raw: bytes) -> None:
        params = TransportParameters.decode(raw, from_server=self.is_client)
        tp_error = ErrorCode.TRANSPORT_PARAMETER_ERROR
        if params.initial_source_connection_id != self.peer_cid and self._first_packet_received:
            raise ProtocolError(tp_error, "initial_source_connection_id mismatch")
        if self.is_client:
            if params.original_destination_connection_id != self._original_dcid:
                raise ProtocolError(tp_error, "original_destination_connection_id mismatch")
            expected_retry = self._retry_source_cid if self._retry_received else None
            if params.retry_source_connection_id != expected_retry:
                raise ProtocolError(tp_error, "retry_source_connection_id mismatch")
        self._check_version_information(params)
        self._peer_params = params
        self._streams.on_peer_parameters(params)
        self._recovery.max_ack_delay = params.max_ack_delay / 1000.0
        if params.max_idle_timeout:
            peer_idle = params.max_idle_timeout / 1000.0
            self._idle_timeout = (
                min(self._idle_timeout, peer_idle) if self._idle_timeout else peer_idle
            )
        self._max_datagram_size = min(self._max_datagram_size, params.max_udp_payload_size)
        self._local_cids.peer_limit = params.active_connection_id_limit
        self._peer_cids.set_initial(
            self.peer_cid, params.stateless_reset_token if self.is_client else None
        )

    def _on_handshake_complete(self, now: float) -> None:
        tls = self._tls
        assert tls is not None
        self.handshake_complete = True
        self._handshake_deadline = None  # done in time
        self._state = S_ESTABLISHED
        self.alpn = tls.alpn
        self.session_resumed = tls.session_resumed
        self.early_data_accepted = tls.early_data_accepted
        if not self.is_client:
            # The server is confirmed once the client's Finished arrives (RFC 9001 4.1.2).
            self._confirm_handshake()
            if self._zero_rtt_rx is not None:
                # RFC 9001 4.9.3: 1-RTT packets come from now on; keep the 0-RTT read key a
                # short while for reordered 0-RTT packets, then discard it.
                self._zero_rtt_rx_until = now + 3 * self._recovery.pto_duration()
            self._pending_handshake_done = True
            ctx = self._server_context
            if ctx is not None and ctx.issue_tickets:
                tls.issue_session_ticket(now, self._sent_params)
                self._drain_tls(now)
            if ctx is not None and ctx.new_tokens and self._path.addr is not None:
                self._streams.control.append(F.NewTokenFrame(self._new_token(ctx, now)))
        elif self._early_data_requested:
            self._on_early_data_outcome()
        self._zero_rtt_tx = None
        tx = self._spaces[APPLICATION].tx
        if tx is not None:
            self._key_update_limit = confidentiality_limit(tx.suite) * 3 // 4
            self._integrity_limit = integrity_limit(tx.suite)
        self._events.append(
            ev.HandshakeCompleted(self.alpn, self.session_resumed, self.early_data_accepted)
        )
        if not self.is_client:
            self._issue_cids()

    def _new_token(self, ctx: ServerContext, now: float) -> bytes:
        """The NEW_TOKEN for the current path (the prepared one if it is for this address)."""
        addr = self._path.addr
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
        space = self._spaces[index]
        if space.discarded:
            return
        space.discarded = True
        space.rx = space.tx = None
        space.ack_due_at = None
        space.unacked_ranges = False
        space.probes = 0
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
        if self.is_client:
            if header.dcid != self.host_cid and not self._local_cids.owns(header.dcid):
                self.stats_counters.packets_dropped += 1
                if not header.is_long and self._is_stateless_reset(data):
                    self._on_stateless_reset(now)
                return
        elif self._initial_dcid is None:
            if ptype != PacketType.INITIAL:
                self.stats_counters.packets_dropped += 1
                return
            # The client's first Initial: its DCID keys the Initial space (RFC 9001 5.2).
            self._initial_dcid = bytes(header.dcid)
            if not self._original_dcid:
                self._original_dcid = self._initial_dcid
            self._install_initial_keys(self._initial_dcid)
        elif (
            header.dcid != self.host_cid
            and header.dcid != self._initial_dcid
            and not self._local_cids.owns(header.dcid)
        ):
            self.stats_counters.packets_dropped += 1
            if not header.is_long and self._is_stateless_reset(data):
                self._on_stateless_reset(now)
            return
        self._rx_dcid = header.dcid

        space_index = _TYPE_SPACE[ptype]  # IntEnum keys: plain ints find them
        space = self._spaces[space_index]
        if ptype == PacketType.ZERO_RTT:
            until = self._zero_rtt_rx_until
            if until is not None and now >= until:
                self._discard_zero_rtt_rx()
            protector = self._zero_rtt_rx
        else:
            protector = space.rx
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
                self._pending_handshake_done = True
            return

        packet = memoryview(data)[start : header.packet_end]
        pn_offset = header.pn_offset - start
        try:
            if ptype == PacketType.ONE_RTT:
                plain_header, payload, pn = self._open_one_rtt(packet, pn_offset, space)
            else:
                plain_header, payload, pn = protector.open_packet(
                    packet, pn_offset, space.largest_received
                )
        except DecryptionError:
            self.stats_counters.packets_undecryptable += 1
            if not header.is_long:
                if self._is_stateless_reset(data):
                    self._on_stateless_reset(now)
                    return
                self._auth_failures += 1
                if self._auth_failures >= self._integrity_limit:
                    # RFC 9001 6.6: too many forgeries tried against 1-RTT keys.
                    raise ProtocolError(
                        ErrorCode.AEAD_LIMIT_REACHED, "AEAD integrity limit"
                    ) from None
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
            self._path.validated = True
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
            or self._rx_path is not self._path
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
        self._last_activity = now
        self._idle_restart_pending = True
        ack_eliciting = self._process_frames(payload, ptype, space, now)
        tracer = self._tracer
        if tracer is not None:
            tracer("packet_received", {"space": space.index, "pn": pn, "size": size})
        if (
            self._rx_path is not self._path
            and self._rx_non_probing
            and ptype == PacketType.ONE_RTT
            and pn > space.largest_received
        ):
            # The peer's newest non-probing packet comes from a new path (RFC 9000 9.3).
            self._migrate_to = self._rx_path
        space.on_packet_received(pn, ack_eliciting, now, LOCAL_MAX_ACK_DELAY)
        if self._rx_ecn:
            space.ecn_counts[_ECN_COUNTER[self._rx_ecn]] += 1

    def _open_one_rtt(
        self, packet: memoryview, pn_offset: int, space: PacketSpace
    ) -> tuple[bytes, bytes, int]:
        rx = space.rx
        assert rx is not None
        try:  # the common case: current keys (one header-protection pass, one AEAD open)
            return rx.open_packet(packet, pn_offset, space.largest_received)
        except DecryptionError:
            plain_header = rx.remove_header_protection(packet, pn_offset)[0]
            if (plain_header[0] >> 2) & 1 == self._key_phase:
                raise
        previous = self._rx_previous
        if previous is not None:
            try:  # a late packet from before the last key update
                return previous.open_packet(packet, pn_offset, space.largest_received)
            except DecryptionError:
                pass
        # The peer started a key update (RFC 9001 section 6.2): try the next generation,
        # made once per generation, not per packet (RFC 9001 9.5: no timing signal).
        candidate = self._next_rx_keys(rx)
        result = candidate.open_packet(packet, pn_offset, space.largest_received)
        if not self.handshake_confirmed:
            raise ProtocolError(ErrorCode.KEY_UPDATE_ERROR, "key update before confirmation")
        if self.stats_counters.key_updates and space.next_pn == self._key_phase_start_pn:
            # RFC 9001 6.2: a second update before we sent anything (so no acknowledgement
            # of the first) with the keys of the first.
            raise ProtocolError(ErrorCode.KEY_UPDATE_ERROR, "consecutive key updates")
        self._rx_previous = rx
        space.rx = candidate
        if space.tx is not None:
            space.tx = space.tx.next_generation()
        self._key_phase ^= 1
        self._key_phase_start_pn = space.next_pn
        self.stats_counters.key_updates += 1
        self._next_rx_keys(candidate)  # ahead of the next update (or of forgeries)
        return result

    # ---- compatible version negotiation (RFC 9368, RFC 9369) --------------------------------
    def _accept_version(self, header: PacketHeader) -> bool:
        """A long-header packet of another version than ours: switch or accept it?"""
        version = header.version
        if version not in DEFAULT_VERSIONS:
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
        self._zero_rtt_tx = None

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

    def _check_version_information(self, params: TransportParameters) -> None:
        """RFC 9368 section 4: the peer's version_information matches what happened."""
        info = params.version_information
        if (
            not self.is_client
            and info is not None
            and info.chosen_version not in info.available_versions
        ):
            raise ProtocolError(ErrorCode.TRANSPORT_PARAMETER_ERROR, "chosen version not available")
        if self.is_client:
            if info is None:
                if self.version != self._original_version:
                    raise ProtocolError(
                        VERSION_NEGOTIATION_ERROR, "version changed without version_information"
                    )
            elif info.chosen_version != self.version:
                raise ProtocolError(VERSION_NEGOTIATION_ERROR, "server's chosen version differs")
        elif info is not None and info.chosen_version != self._original_version:
            raise ProtocolError(VERSION_NEGOTIATION_ERROR, "client's chosen version differs")

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
        self._token = header.retry_token or b""
        self._install_initial_keys(self.peer_cid)
        # Everything sent in Initial packets is re-sent with the new keys and the token.
        self._requeue_space(INITIAL)
        if self._zero_rtt_tx is not None:
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
            if self._rx_path is not self._path:
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
        if self._rx_path is not self._path:
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
            self._handshake_progress(now)
        self._on_packets_lost(lost, now)
        if self._key_update_requested:
            self._maybe_update_keys()
        cc = self._cc
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
        self._handshake_progress(now)  # (nothing once the handshake is complete)
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
        self._state = S_DRAINING
        self._close_deadline = now + 3 * self._pto_interval()

    def _on_datagram(self, frame: F.DatagramFrame, space: PacketSpace, now: float) -> None:
        if self.config.max_datagram_frame_size is None:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                "DATAGRAM frames not negotiated",
                F.frame_type_of(frame),
            )
        self._queue_datagram(bytes(frame.data))

    def _queue_datagram(self, data: bytes) -> None:
        """Queue a received DATAGRAM; the oldest are dropped beyond the configured bound."""
        queue = self._datagrams_in
        queue.append(data)
        self._events.append(_DATAGRAM_SLOT)
        self._datagrams_in_size += len(data) + DATAGRAM_OVERHEAD
        limit = self.config.datagram_receive_buffer
        while self._datagrams_in_size > limit and queue:
            self._datagrams_in_size -= len(queue.popleft()) + DATAGRAM_OVERHEAD
            self._stale_slots += 1
            self.stats_counters.datagrams_dropped += 1
        if self._stale_slots > 64 and self._stale_slots > len(queue):
            # Drop the slots of dropped datagrams (the oldest ones) from the event queue:
            # O(events) once per as many drops, so O(1) per drop.
            stale = self._stale_slots
            kept: deque[ev.Event] = deque()
            for event in self._events:
                if event is _DATAGRAM_SLOT and stale:
                    stale -= 1
                else:
                    kept.append(event)
            self._events = kept
            self._stale_slots = 0

    def _on_path_challenge(
        self, frame: F.PathChallengeFrame, space: PacketSpace, now: float
    ) -> None:
        # Answered on the path the challenge arrived on (RFC 9000 8.2.2), one answer at most
        # per datagram received: the latest challenge replaces any still unanswered. Its
        # datagram is padded to 1200 bytes on a path being validated, or when the peer
        # padded its own (checking the path MTU): never to multiply a small challenge.
        path = self._rx_path
        path.responses[:] = (bytes(frame.data),)
        path.pad_response = not path.validated or self._rx_size >= MIN_INITIAL_DATAGRAM
        if (
            not self.is_client
            and path is not self._path
            and not path.validated
            and not path.validating
            and self.handshake_confirmed
        ):
            # A client probing a new address: validate it too, so it can migrate there.
            self._paths.start_validation(path, now, self._path_validation_timeout())

    def _on_path_response(self, frame: F.PathResponseFrame, space: PacketSpace, now: float) -> None:
        path = self._paths.on_response(bytes(frame.data))
        if path is None:
            return  # an answer to nothing we asked (or to an abandoned challenge)
        if path is self._path:
            self._fallback_path = None
            self._events.append(ev.PathValidated(path.addr or ("", 0), path.local))
        elif self.is_client and path.local != self._path.local:
            self._switch_path(path, now)  # active migration: the probed path works
            self._events.append(ev.PathValidated(path.addr or ("", 0), path.local))

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
        self._pending_handshake_done = not self._handshake_done_acked

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
                    self._handshake_done_acked or self._pending_handshake_done
                ):
                    self._pending_handshake_done = live = True
            repeated += live
            if repeated == 2:
                break

    # ---------------------------------------------------------------------------------------
    # Sending
    # ---------------------------------------------------------------------------------------
    _pacer_deadline: float | None = None
    _handshake_done_acked = False  # the client acknowledged a packet carrying HANDSHAKE_DONE
    _rx_ecn = 0  # ECN codepoint of the datagram being processed
    _rx_size = 0  # size of the datagram being processed
    _control_checked = False
    _idle_restart_pending = True

    def _amplification_budget(self) -> int:
        return self._path.amplification_budget()

    def _build_datagram(self, now: float) -> bytes | None:
        budget = self._amplification_budget()
        size_limit = min(self._max_datagram_size, budget)
        self._recovery.amplification_limited = budget < self._max_datagram_size
        if size_limit < _MIN_BUDGET:
            return None
        parts: list[BuiltPacket] = []
        used = 0
        has_initial = has_handshake = any_eliciting = False
        congestion_blocked = self._recovery.bytes_in_flight >= self._cc.cwnd
        if not congestion_blocked:
            release = self._pacer.next_send_time(now)
            if release is not None:
                # Paced: only ACKs and probes go now; new data waits for the release time.
                self._pacer_deadline = release
                congestion_blocked = True
        for space in self._spaces:
            if space.discarded:
                continue
            tx = space.tx
            ptype: int = _SPACE_TYPE[space.index]
            if tx is None:
                if space.index != APPLICATION or self._zero_rtt_tx is None or not self.is_client:
                    continue
                tx = self._zero_rtt_tx
                ptype = PacketType.ZERO_RTT
            elif space.index != APPLICATION and not (
                space.unacked_ranges or space.probes or space.crypto_send.has_pending
            ):
                continue  # nothing to say in this handshake space
            elif (
                space.index == INITIAL
                and self.is_client
                and not (space.probes or space.crypto_send.has_pending)
                and self._spaces[HANDSHAKE].tx is not None
                and self._spaces[HANDSHAKE].crypto_send.has_pending
            ):
                # Only an ACK to say, in a datagram whose Handshake packet makes both sides
                # discard their Initial keys (RFC 9001 4.9.1): the ACK would be thrown away.
                continue
            elif space.index == INITIAL and size_limit < MIN_INITIAL_DATAGRAM:
                # A datagram with an Initial is padded to 1200 bytes (RFC 9000 14.1): one the
                # anti-amplification budget cannot carry waits for the client's next datagram.
                continue
            built = self._build_payload(
                space, tx, ptype, size_limit - used, now, congestion_blocked
            )
            if built is None:
                continue
            used += built.header_len + len(built.payload) + AEAD_TAG_SIZE
            parts.append(built)
            any_eliciting |= built.eliciting
            if ptype == PacketType.INITIAL:
                has_initial = True
            elif ptype == PacketType.HANDSHAKE:
                has_handshake = True
            elif ptype == PacketType.ONE_RTT:
                break  # a short header runs to the end of the datagram
        if not parts:
            return None
        if has_initial and (self.is_client or any_eliciting) and used < MIN_INITIAL_DATAGRAM:
            # RFC 9000 14.1: datagrams with ack-eliciting Initials are padded to 1200 bytes.
            parts[-1].payload.extend(bytes(MIN_INITIAL_DATAGRAM - used))
        if len(parts) == 1:
            out = self._seal_packet(parts[0], now)
        else:
            out = b"".join([self._seal_packet(built, now) for built in parts])
        self._count_datagram(out)
        if has_handshake and self.is_client:
            self._discard_space(INITIAL)  # RFC 9001 4.9.1
        return out

    def _count_datagram(self, datagram: bytes) -> None:
        size = len(datagram)
        self._path.bytes_sent += size
        counters = self.stats_counters
        counters.datagrams_sent += 1
        counters.bytes_sent += size

    def _lean_send_ready(self) -> bool:
        """True when the rest of this burst can only be 1-RTT packets of STREAM frames: the
        handshake spaces are gone, the path is validated, control frames were considered
        for this burst, and no ACK, probe, CRYPTO, PING, HANDSHAKE_DONE, connection ID,
        DATAGRAM or path frame is waiting."""
        spaces = self._spaces
        app = spaces[APPLICATION]
        path = self._path
        return bool(
            spaces[HANDSHAKE].discarded
            and spaces[INITIAL].discarded
            and app.tx is not None
            and path.validated
            and self._control_checked
            and not (app.unacked_ranges or app.probes or app.crypto_send.has_pending)
            and not (self._pending_ping or self._pending_handshake_done or self._datagrams_out)
            and not (self._local_cids.pending or self._peer_cids.pending_retire)
            and not (path.responses or path.challenge_due)
        )

    def _build_stream_datagram(self, now: float) -> bytes | None:
        """The bulk-transfer path, valid while :meth:`_lean_send_ready` holds: one 1-RTT
        packet of STREAM frames (what ``_build_datagram`` builds in that state, with less
        bookkeeping: no BuiltPacket, no per-type header dispatch), or None when
        congestion control, pacing or the streams say no."""
        recovery = self._recovery
        if recovery.bytes_in_flight >= self._cc.cwnd:
            return None
        release = self._pacer.next_send_time(now)
        if release is not None:
            self._pacer_deadline = release
            return None
        space = self._spaces[APPLICATION]
        tx = space.tx
        assert tx is not None
        pn = space.next_pn
        truncated, pn_length = encode_packet_number(pn, recovery.largest_acked(APPLICATION))
        cid = self.peer_cid
        buf = Buffer()
        records: list[Record] = []
        room = self._max_datagram_size - (1 + len(cid) + pn_length) - AEAD_TAG_SIZE
        if not self._streams.write_stream_frames(buf, room, records):
            return None
        header = encode_short_header(cid, truncated, pn_length, self._spin, bool(self._key_phase))
        out = tx.seal_packet(header, buf.take(), pn)
        following = pn + 1
        if following == space.skip_pn:
            following = self._skip_packet_number(space, following)
        space.next_pn = following
        self._record_sent(SentPacket(pn, now, len(out), True, True, APPLICATION, records))
        self._count_datagram(out)
        return out

    def _header_length(self, ptype: int, pn_length: int) -> int:
        if ptype == PacketType.ONE_RTT:
            return 1 + len(self.peer_cid) + pn_length
        token_field = 0
        if ptype == PacketType.INITIAL:
            token_len = len(self._token)
            token_field = (1 + (token_len > 63) + 2 * (token_len > 16383)) + token_len
        return 7 + len(self.peer_cid) + len(self.host_cid) + token_field + 2 + pn_length

    def _build_payload(
        self,
        space: PacketSpace,
        tx: PacketProtector,
        ptype: int,
        budget: int,
        now: float,
        congestion_blocked: bool,
    ) -> BuiltPacket | None:
        """The plaintext of the next packet in ``space``, or None when there is nothing."""
        pn = space.next_pn
        truncated, pn_length = encode_packet_number(pn, self._recovery.largest_acked(space.index))
        header_len = self._header_length(ptype, pn_length)
        room = budget - header_len - AEAD_TAG_SIZE
        if room < 32:
            return None
        buf = Buffer()
        records: list[Record] = []
        eliciting = False
        probing = space.probes > 0
        app = space.index == APPLICATION
        if (
            ptype != PacketType.ZERO_RTT
            and space.unacked_ranges
            and (
                space.wants_ack(now)
                or probing
                or self._has_eliciting_data(space, congestion_blocked)
            )
        ):
            received = space.received
            delay = 0
            if app:
                delay = int((now - space.largest_received_time) * 1_000_000) >> ACK_DELAY_EXPONENT
            counts = space.ecn_counts
            ecn = (counts[0], counts[1], counts[2]) if any(counts) else None
            # The whole frame in one native call (same bytes as F.push_ack_frame).
            buf.push_bytes(received.ack_frame(max(0, delay), ecn, 32))
            records.append(new_record(AckRecord, (space.index, received.bounds()[1] - 1)))
            space.on_ack_sent()
        path = self._path
        if (
            (path.responses or path.challenge_due)
            and ptype == PacketType.ONE_RTT
            and (probing or not congestion_blocked)
        ):
            # Path validation frames, within the congestion window; a padded datagram
            # (RFC 9000 8.2) has room for nothing else.
            eliciting, padded = self._write_path_frames(path, buf, room, now)
            if padded:
                return BuiltPacket(
                    space,
                    tx,
                    ptype,
                    pn,
                    truncated,
                    pn_length,
                    header_len,
                    buf.take(),
                    records,
                    eliciting,
                )
        if congestion_blocked and not probing:
            if not buf.written:
                return None
            return BuiltPacket(
                space, tx, ptype, pn, truncated, pn_length, header_len, buf.take(), records, False
            )
        # CRYPTO data (handshake messages, and NewSessionTicket in 1-RTT).
        crypto = space.crypto_send
        if probing and not app:
            crypto.requeue_unacked()  # every probe carries the unacknowledged handshake data
        if crypto.has_pending:
            while True:
                avail = room - buf.written - 8
                if avail < 16:
                    break
                chunk = crypto.next_frame(avail, 1 << 62)
                if chunk is None:
                    break
                offset, data, _fin = chunk
                F.encode_frame(buf, F.CryptoFrame(offset, bytes(data)))
                records.append(CryptoRecord(space.index, offset, len(data)))
                eliciting = True
        if app:
            if ptype != PacketType.ZERO_RTT:
                if self._pending_ping:
                    F.encode_frame(buf, F.PingFrame())
                    records.append(PING)
                    self._pending_ping = False
                    eliciting = True
                if self._pending_handshake_done and not self.is_client:
                    F.encode_frame(buf, F.HandshakeDoneFrame())
                    records.append(HANDSHAKE_DONE)
                    self._pending_handshake_done = False
                    eliciting = True
                if (self._local_cids.pending or self._peer_cids.pending_retire) and (
                    buf.written or not self.is_client
                ):
                    # A client's connection ID frames only ride along with a packet that
                    # goes out anyway (at the latest the ACK owed within max_ack_delay).
                    eliciting |= self._write_cid_frames(buf, room, records)
                if not self._control_checked:
                    # Control frames (flow credit, limits, resets) are checked once per burst.
                    self._control_checked = True
                    eliciting |= self._streams.write_control_frames(
                        buf, room, records, now, self._recovery.rtt.smoothed_rtt
                    )
                out = self._datagrams_out
                while out and room - buf.written > len(out[0]) + 4:
                    F.encode_frame(buf, F.DatagramFrame(out.popleft()))
                    eliciting = True
            eliciting |= self._streams.write_stream_frames(buf, room, records)
        if probing:
            if not eliciting:
                F.encode_frame(buf, F.PingFrame())
                records.append(PING)
                eliciting = True
            space.probes -= 1
        if not buf.written:
            return None
        return BuiltPacket(
            space, tx, ptype, pn, truncated, pn_length, header_len, buf.take(), records, eliciting
        )

    def _has_eliciting_data(self, space: PacketSpace, congestion_blocked: bool) -> bool:
        if congestion_blocked:
            return False
        if space.crypto_send.has_pending:
            return True
        if space.index != APPLICATION:
            return False
        return (
            self._pending_handshake_done
            or self._pending_ping
            or bool(self._datagrams_out)
            or self._streams.has_pending_frames()
        )

    def _seal_packet(self, built: BuiltPacket, now: float) -> bytes:
        space = built.space
        pn = built.pn
        following = pn + 1
        if following == space.skip_pn:
            following = self._skip_packet_number(space, following)
        space.next_pn = following
        ptype = built.ptype
        payload = built.payload
        if ptype == PacketType.ONE_RTT:
            header = encode_short_header(
                self.peer_cid, built.truncated, built.pn_length, self._spin, bool(self._key_phase)
            )
        else:
            header = encode_long_header(
                PacketType(ptype),
                self.version,
                self.peer_cid,
                self.host_cid,
                self._token if ptype == PacketType.INITIAL else b"",
                len(payload) + AEAD_TAG_SIZE,
                built.truncated,
                built.pn_length,
            )
        packet = built.tx.seal_packet(header, payload, pn)
        records = built.records
        eliciting = built.eliciting
        in_flight = eliciting or len(records) != 1 or type(records[0]) is not AckRecord
        size = len(packet)
        sent = SentPacket(pn, now, size, eliciting, in_flight, space.index, records)
        if self._sealed_ahead is None:
            self._record_sent(sent)
        else:  # start_hello(): connect() records it, at its own time, when it is really sent
            self._sealed_ahead.append(sent)
        return packet

    def _next_skip(self, after: int) -> int:
        """The next packet number to skip, at random a mean ``Config.pn_skip_interval``
        numbers after ``after`` (-1: never)."""
        interval = self.config.pn_skip_interval
        if not interval:
            return -1
        return after + 1 + int.from_bytes(self._random(4), "big") % (2 * interval)

    def _skip_packet_number(self, space: PacketSpace, pn: int) -> int:
        """RFC 9000 21.4: ``pn`` is never sent, so a peer acknowledging it acknowledges
        what it did not receive (optimistic ACK); returns the packet number to use next."""
        self._recovery.on_packet_number_skipped(space.index, pn)
        space.skip_pn = self._next_skip(pn + 1)
        return pn + 1

    def _record_sent(self, sent: SentPacket) -> None:
        """Tell recovery, congestion control and the pacer that a packet left at its
        ``sent_time``."""
        now, size = sent.sent_time, sent.size
        self._recovery.on_packet_sent(sent)
        if sent.in_flight:
            self._cc.on_packet_sent(size, now)
            self._pacer.on_packet_sent(size, now)
        if sent.ack_eliciting and self._idle_restart_pending:
            self._last_activity = now
            self._idle_restart_pending = False
        self.stats_counters.packets_sent += 1
        tracer = self._tracer
        if tracer is not None:
            tracer(
                "packet_sent",
                {
                    "space": sent.space,
                    "pn": sent.pn,
                    "size": size,
                    "frames": [type(rec).__name__ for rec in sent.frames],
                },
            )

    @property
    def tracer(self) -> Tracer | None:
        """Optional ``tracer(event, data)`` called on packet_sent, packet_received,
        packet_lost and metrics_updated (qlog-style names); None when unset (no cost)."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        self._tracer = tracer
        recovery = self._recovery
        if tracer is None:
            recovery.on_metrics = None
        else:
            recovery.on_metrics = lambda r: tracer("metrics_updated", dict(r.metrics()))

    def set_stream_priority(self, stream_id: int, priority: int) -> None:
        """Lower values are sent first; streams of equal priority share round robin."""
        self._streams.set_priority(stream_id, priority)

    def _build_close_datagram(self) -> bytes:
        assert self._close_frame is not None
        code, frame_type, reason, application = self._close_frame
        # A transport error goes out with a fixed phrase for its code (the detail stays in
        # the local ConnectionTerminated); an application's own reason goes as given.
        phrase = "" if application else wire_reason(code)
        out = bytearray()
        for space in self._spaces:
            if space.tx is None or space.discarded:
                continue
            ptype = _SPACE_TYPE[space.index]
            # RFC 9000 10.2.3: before 1-RTT, an application close becomes APPLICATION_ERROR.
            app = application and ptype == PacketType.ONE_RTT
            frame = F.ConnectionCloseFrame(
                code if app or not application else ErrorCode.APPLICATION_ERROR,
                None if app else (frame_type or 0),
                reason if app else phrase,
                app,
            )
            buf = Buffer()
            F.encode_frame(buf, frame)
            payload = bytearray(buf.data())
            if len(payload) < 4:
                payload.extend(bytes(4 - len(payload)))
            if ptype == PacketType.INITIAL and self.is_client:
                payload.extend(bytes(max(0, MIN_INITIAL_DATAGRAM - 100 - len(payload))))
            pn = space.next_pn
            truncated, pn_length = encode_packet_number(
                pn, self._recovery.largest_acked(space.index)
            )
            built = BuiltPacket(
                space,
                space.tx,
                ptype,
                pn,
                truncated,
                pn_length,
                self._header_length(ptype, pn_length),
                payload,
                [],
                False,
            )
            out += self._seal_packet(built, self._last_activity)
        if len(out) > self._amplification_budget():
            return b""  # an unvalidated address gets no more than 3x what it sent (RFC 9000 8)
        self._path.bytes_sent += len(out)
        return bytes(out)

    # ---------------------------------------------------------------------------------------
    # Connection IDs, paths, migration and stateless reset (RFC 9000 5.1, 8.2, 9, 10.3)
    # ---------------------------------------------------------------------------------------
    @property
    def local_path(self) -> int:
        """The local path id (the driver's socket) the connection sends on."""
        return self._path.local

    @property
    def peer_address_validated(self) -> bool:
        """True once the current path to the peer is validated."""
        return self._path.validated

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
        addr = self._path.addr
        assert addr is not None
        if local == self._path.local or self._paths.get(addr, local) is not None:
            raise ConnectionStateError(f"local path {local} is already in use")
        seq = self._peer_cids.reserve()
        if seq is None:
            raise ConnectionStateError("no unused connection ID from the server for a new path")
        path = Path(addr, local)
        path.cid_seq = seq
        self._paths.add(path)
        self._paths.start_validation(path, now, self._path_validation_timeout())

    def probe_datagrams(self, now: float) -> list[tuple[int, bytes, tuple[str, int]]]:
        """``(local path, datagram, address)`` to send from local sockets other than the
        current one (path probes of an active migration)."""
        out: list[tuple[int, bytes, tuple[str, int]]] = []
        if self._state >= S_CLOSING:
            return out
        for path in list(self._paths.others.values()):
            if path.local != self._path.local and path.addr is not None:
                datagram = self._build_probe_datagram(path, now)
                if datagram is not None:
                    out.append((path.local, datagram, path.addr))
        return out

    def _path_of(self, addr: tuple[str, int], local: int) -> Path:
        path = self._path
        if path.addr is None:  # a server's first datagram
            path.addr = self.peer_addr = addr
            return path
        if self.is_client:
            # A client knows one server address; other local paths are its own probes.
            if local == path.local:
                return path
            return self._paths.get(path.addr, local) or path
        if not self.handshake_confirmed:
            return path  # no migration before the handshake is confirmed (RFC 9000 9)
        fallback = self._fallback_path
        if fallback is not None and fallback.addr == addr:
            return fallback  # back from a (perhaps spoofed) new address: still validated
        return self._paths.lookup(addr, local)

    def _path_validation_timeout(self) -> float:
        # RFC 9000 8.2.4: three times the larger of the current PTO and a new path's PTO.
        initial = self._recovery.rtt.initial_rtt
        new_path_pto = 3 * initial + self._recovery.max_ack_delay
        return 3 * max(self._pto_interval(), new_path_pto)

    def _issue_cids(self) -> None:
        for cid in self._local_cids.top_up():
            self._events.append(ev.ConnectionIdIssued(cid))

    def _write_cid_frames(self, buf: Buffer, room: int, records: list[Record]) -> bool:
        wrote = False
        local = self._local_cids
        while local.pending and room - buf.written >= 48:
            seq = local.pending.popleft()
            frame = local.frame_for(seq)
            if frame is not None:
                F.encode_frame(buf, frame)
                records.append(NewConnectionIdRecord(seq))
                wrote = True
        peer = self._peer_cids
        while peer.pending_retire and room - buf.written >= 10:
            seq = peer.next_retire()
            F.encode_frame(buf, F.RetireConnectionIdFrame(seq))
            records.append(RetireConnectionIdRecord(seq))
            wrote = True
        return wrote

    def _write_path_frames(
        self, path: Path, buf: Buffer, room: int, now: float
    ) -> tuple[bool, bool]:
        """The PATH_RESPONSE and a due PATH_CHALLENGE for ``path``, padded to ``room`` when
        the path is being validated (RFC 9000 8.2: such datagrams are expanded to 1200 bytes
        within the budget); returns (wrote anything, padded)."""
        wrote = pad = False
        if path.responses and room - buf.written >= 9:
            F.encode_frame(buf, F.PathResponseFrame(path.responses.pop()))
            wrote = True
            pad = path.pad_response
        if path.challenge_due and room - buf.written >= 9:
            data = self._paths.next_challenge(path, now, self._pto_interval())
            F.encode_frame(buf, F.PathChallengeFrame(data))
            wrote = pad = True
        if pad and room > buf.written:
            buf.push_bytes(bytes(room - buf.written))
        return wrote, pad

    def _build_probe_datagram(self, path: Path, now: float) -> bytes | None:
        """A 1-RTT packet with PATH_CHALLENGE / PATH_RESPONSE for a path we do not send on."""
        space = self._spaces[APPLICATION]
        tx = space.tx
        if not path.has_output() or tx is None or not self.handshake_complete:
            return None
        budget = (1 << 62) if self.is_client else path.amplification_budget()
        size = min(self._max_datagram_size, budget)
        if path.cid_seq is None and not self.is_client:
            path.cid_seq = self._peer_cids.reserve()  # RFC 9000 9.5: a CID per destination
        cid = self.peer_cid
        if path.cid_seq is not None:
            cid = self._peer_cids.cid_of(path.cid_seq) or cid
        pn = space.next_pn
        truncated, pn_length = encode_packet_number(pn, self._recovery.largest_acked(APPLICATION))
        room = size - (1 + len(cid) + pn_length) - AEAD_TAG_SIZE
        if room < 16:
            return None
        buf = Buffer()
        if not self._write_path_frames(path, buf, room, now)[0]:
            return None
        following = pn + 1
        if following == space.skip_pn:
            following = self._skip_packet_number(space, following)
        space.next_pn = following
        header = encode_short_header(cid, truncated, pn_length, self._spin, bool(self._key_phase))
        packet = tx.seal_packet(header, buf.take(), pn)
        # Not in flight: probes on another path do not count against this path's window.
        self._recovery.on_packet_sent(
            SentPacket(pn, now, len(packet), False, False, APPLICATION, [])
        )
        path.bytes_sent += len(packet)
        counters = self.stats_counters
        counters.packets_sent += 1
        counters.datagrams_sent += 1
        counters.bytes_sent += len(packet)
        if self.tracer is not None:
            self.tracer(
                "packet_sent",
                {
                    "space": APPLICATION,
                    "pn": pn,
                    "size": len(packet),
                    "frames": [],
                    "path": path.addr,
                },
            )
        return packet

    def _on_peer_migrated(self, path: Path, now: float) -> None:
        """Server: the client's newest non-probing packet arrived on ``path`` (RFC 9000 9.3)."""
        self._migrate_to = None
        if path is self._path:
            return
        old = self._path
        self._switch_path(path, now)
        if path.validated:
            self._events.append(ev.PathValidated(path.addr or ("", 0), path.local))
            return
        if old.validated:
            self._fallback_path = old  # where to return if the new address does not answer
        if not path.validating:
            self._paths.start_validation(path, now, self._path_validation_timeout())

    def _switch_path(self, path: Path, now: float) -> None:
        old = self._paths.make_current(path)
        self._path = path
        self.peer_addr = path.addr
        # RFC 9000 9.5: a fresh peer CID on a new path, when the peer gave us one.
        if self._peer_cids.switch(path.cid_seq):
            self.peer_cid = self._peer_cids.current_cid
        path.cid_seq = None
        # RFC 9000 9.4: the new path starts with fresh congestion and RTT state unless only
        # the peer's port changed (NAT rebinding).
        if (
            path.local != old.local
            or old.addr is None
            or path.addr is None
            or (old.addr[0] != path.addr[0])
        ):
            self._reset_congestion()
        self.stats_counters.path_migrations += 1
        logger.info("path: now %r (was %r)", path, old)

    def _reset_congestion(self) -> None:
        cfg = self.config
        cc = create_congestion_controller(cfg.congestion_control, cfg.max_datagram_size)
        self._cc = cc
        self._recovery.cc = cc
        self._recovery.rtt = RttEstimator(self._recovery.rtt.initial_rtt)
        self._pacer.update(cc.cwnd, self._recovery.rtt.smoothed_rtt, cc.in_slow_start)

    def _on_path_failed(self, path: Path, now: float) -> None:
        logger.info("path validation failed: %r", path)
        if path is self._path:
            fallback, self._fallback_path = self._fallback_path, None
            if fallback is not None:
                self._switch_path(fallback, now)
            else:  # nowhere else to go: keep trying (the idle timeout ends it otherwise)
                self._paths.start_validation(path, now, self._path_validation_timeout())
        else:
            self._paths.remove(path)
            if path.cid_seq is not None:
                self._peer_cids.reserved.discard(path.cid_seq)
        self._events.append(ev.PathValidationFailed(path.addr or ("", 0), path.local))

    def _is_stateless_reset(self, data: bytes) -> bool:
        """RFC 9000 10.3.1: an unprocessable datagram ending with one of the peer's reset
        tokens (only tokens of CIDs the peer issued and we did not retire)."""
        if len(data) < 21 or self._state >= S_DRAINING:
            return False
        return self._peer_cids.is_reset_token(bytes(data[-16:]))

    def _on_stateless_reset(self, now: float) -> None:
        logger.info("stateless reset received: the peer lost the connection")
        self._terminate(ErrorCode.NO_ERROR, "stateless reset", None, by_peer=True)
        self._state = S_DRAINING
        self._close_deadline = now + 3 * self._pto_interval()

    # ---------------------------------------------------------------------------------------
    # Lifecycle
    # ---------------------------------------------------------------------------------------
    def _after_input(self, now: float) -> None:
        if self._state == S_CLOSING:
            # Answer the 1st, 2nd, 4th, 8th... datagram received while closing with the
            # CONNECTION_CLOSE again (RFC 9000 10.2.1: limit the rate of such packets).
            self._closing_received += 1
            n = self._closing_received
            if n & (n - 1) == 0:
                self._close_sent_count = 0

    def _pto_interval(self) -> float:
        rtt = self._recovery.rtt
        return rtt.smoothed_rtt + max(4 * rtt.rttvar, 0.001) + self._recovery.max_ack_delay

    def _start_handshake_deadline(self, now: float) -> None:
        timeout = self.config.handshake_timeout
        if timeout is not None and not self.handshake_complete:
            self._handshake_deadline = now + timeout
            self._handshake_cap = now + HANDSHAKE_PROGRESS_CAP * timeout

    def _handshake_progress(self, now: float) -> None:
        """The handshake moved on (new CRYPTO data from the peer, or ours acknowledged): its
        deadline is again ``handshake_timeout`` away, up to HANDSHAKE_PROGRESS_CAP times it
        from the start. Repeated packets (a replayed Initial) carry no progress."""
        deadline, timeout = self._handshake_deadline, self.config.handshake_timeout
        if deadline is not None and timeout is not None and now + timeout > deadline:
            self._handshake_deadline = min(now + timeout, self._handshake_cap)

    def _idle_deadline(self) -> float | None:
        if not self._idle_timeout or self.peer_addr is None:
            return None  # not started yet (a server before its first datagram)
        return self._last_activity + max(self._idle_timeout, 3 * self._pto_interval())

    def _check_open(self) -> None:
        if self._state >= S_CLOSING:
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
        if self._state >= S_CLOSING:
            return
        self._close_frame = (code, frame_type, reason, application)
        self._state = S_CLOSING
        base = now if now is not None else self._last_activity
        self._close_deadline = base + 3 * self._pto_interval()
        self._terminate(code, reason, frame_type, by_peer=False)

    def _terminate(self, code: int, reason: str, frame_type: int | None, by_peer: bool) -> None:
        if self._terminated:
            return
        self._terminated = True
        self._events.append(ev.ConnectionTerminated(code, reason, frame_type, by_peer))


def _verify_setting(verify: TrustSource) -> bool | str | bytes:
    if isinstance(verify, bool | bytes):
        return verify
    return os.fspath(verify)


# The smallest anti-amplification budget _build_datagram builds a datagram for.
_MIN_BUDGET = 64
# Handshake progress moves the handshake deadline, but never past this many times
# Config.handshake_timeout from the start: a peer that drips progress cannot keep a
# half-open connection for long.
HANDSHAKE_PROGRESS_CAP = 3

# Server, split first flight: the client's handshake packets and our first 1-RTT packet come
# a round trip after the flight, so these keys are made after it is sent (Connection.prepare).
_KEYS_NOT_NEEDED_FOR_THE_FLIGHT = frozenset({(Epoch.HANDSHAKE, "read"), (Epoch.ONE_RTT, "write")})
# ... and while the ServerHello goes out alone, the handshake write key (the rest of the
# flight needs it) is made after the hello too, when the rest of the flight is built.
_KEYS_NOT_NEEDED_FOR_THE_HELLO = _KEYS_NOT_NEEDED_FOR_THE_FLIGHT | {(Epoch.HANDSHAKE, "write")}


def _early_data_acceptable(params: TransportParameters, remembered: bytes) -> bool:
    """0-RTT only if no limit shrank since the ticket was issued (RFC 9000 7.4.1)."""
    try:
        old = TransportParameters.decode(remembered, from_server=True)
    except DecodeError:
        return False
    return limits_reduced(old, params) is None

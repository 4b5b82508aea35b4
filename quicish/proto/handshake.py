"""The handshake of a connection: :class:`Handshake` drives the TLS engine (its output into
CRYPTO streams, its secrets into :class:`KeyState`), applies the peer's transport
parameters, completes and confirms the handshake, and handles version negotiation
(RFC 9368) and Retry; beside it, the stateless pieces: our transport parameters, the TLS
engine's construction and the checks of the peer's parameters."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial

from ..config import Config
from ..errors import DecodeError, ErrorCode, ProtocolError
from ..tls.alerts import Alert, alert
from ..tls.certs import TrustSource
from ..tls.engine import Epoch, TlsEngine
from ..tls.groups import KeyPairSource
from ..tls.keylog import keylog_file
from ..wire import frames as F
from ..wire.packet import SUPPORTED_VERSIONS, PacketHeader, PacketType, verify_retry
from ..wire.protection import PacketProtector
from ..wire.transport_params import TransportParameters
from . import events as ev
from .ack_frequency import AckFrequencySender
from .cid import LocalCids, PeerCids
from .early_data import limits_reduced, remembered_parameters
from .event_queue import EventQueue
from .handshake_stock import CID_LENGTH, HandshakeStock, initial_protectors
from .idle import HandshakeTimer, IdleTimer
from .keys import EPOCH_SPACE, KeyState
from .lifecycle import Lifecycle
from .packet_builder import PacketBuilder
from .packet_space import (
    ACK_DELAY_EXPONENT,
    APPLICATION,
    HANDSHAKE,
    INITIAL,
    LOCAL_MAX_ACK_DELAY,
    LOCAL_MIN_ACK_DELAY,
    SPENT_CRYPTO_RECV,
    PacketSpace,
)
from .path import PathManager
from .records import StreamRecord
from .recovery import LossRecovery
from .server_context import ServerContext
from .stats import ConnectionStats
from .stream_manager import StreamManager
from .tokens import seal_new_token
from .versions import (
    VERSION_NEGOTIATION_ERROR,
    choose_version,
    client_hello_transport_parameters,
    version_information,
)

logger = logging.getLogger("quicish")

# Server, split first flight: the client's handshake packets and our first 1-RTT packet come
# a round trip after the flight, so these keys are made after it is sent (Connection.prepare).
KEYS_NOT_NEEDED_FOR_THE_FLIGHT = frozenset({(Epoch.HANDSHAKE, "read"), (Epoch.ONE_RTT, "write")})
# ... and while the ServerHello goes out alone, the handshake write key (the rest of the
# flight needs it) is made after the hello too, when the rest of the flight is built.
KEYS_NOT_NEEDED_FOR_THE_HELLO = KEYS_NOT_NEEDED_FOR_THE_FLIGHT | {(Epoch.HANDSHAKE, "write")}


def local_transport_parameters(
    config: Config,
    host_cid: bytes,
    version: int,
    versions: Sequence[int],
    reset_token: bytes | None,
) -> TransportParameters:
    """Our transport parameters (a server's ``reset_token`` for ``host_cid``; the client's
    first Initial fills in the rest of a server's)."""
    cfg = config
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
        initial_source_connection_id=host_cid,
        max_udp_payload_size=cfg.max_datagram_size,
        max_datagram_frame_size=cfg.max_datagram_frame_size,
        disable_active_migration=cfg.disable_active_migration,
        version_information=version_information(version, versions),
        min_ack_delay=int(LOCAL_MIN_ACK_DELAY * 1_000_000) if cfg.ack_frequency else None,
    )
    if reset_token is not None:
        params.stateless_reset_token = reset_token
    return params


def make_tls_engine(
    config: Config,
    *,
    is_client: bool,
    server_name: str | None,
    server_context: ServerContext | None,
    session_ticket: bytes | None,
    early_data: bool,
    transport_parameters: bytes,
    local_params: TransportParameters,
    split_flight: bool,
    now: float,
    key_pairs: KeyPairSource | None = None,
) -> TlsEngine:
    """The TLS engine of a connection (``early_data``: a client asks for 0-RTT)."""
    cfg = config
    ticket = None
    if session_ticket is not None:
        from ..tls.tickets import SessionTicket

        ticket = SessionTicket.from_bytes(session_ticket)
    ctx = server_context
    keylog = ctx.keylog if ctx is not None else None
    if ctx is None and cfg.keylog_file is not None:
        keylog = keylog_file(cfg.keylog_file)
    return TlsEngine(
        is_client=is_client,
        alpn_protocols=list(cfg.alpn),
        cipher_suites=cfg.cipher_suite_ids(),
        groups=cfg.groups,
        server_name=server_name,
        verify=verify_setting(cfg.verify),
        pin=cfg.pin,
        certificate_chain=ctx.certificate_chain if ctx else None,
        private_key=ctx.private_key if ctx else None,
        transport_parameters=transport_parameters,
        session_ticket=ticket,
        early_data=early_data if ctx is None else ctx.early_data,
        ticket_keys=ctx.ticket_keys if ctx else None,
        replay_filter=ctx.replay_filter if ctx else None,
        keylog=keylog,
        now=now,
        clock_offset=ctx.clock_offset if ctx else 0.0,
        ticket_lifetime=cfg.session_ticket_lifetime,
        accept_early_data=None if is_client else partial(early_data_acceptable, local_params),
        split_flight=split_flight and not is_client,
        key_pairs=key_pairs,
    )


def verify_setting(verify: TrustSource) -> bool | str | bytes:
    if isinstance(verify, bool | bytes):
        return verify
    return os.fspath(verify)


def early_data_acceptable(params: TransportParameters, remembered: bytes) -> bool:
    """0-RTT only if no limit shrank since the ticket was issued (RFC 9000 7.4.1)."""
    try:
        old = TransportParameters.decode(remembered, from_server=True)
    except DecodeError:
        return False
    return limits_reduced(old, params) is None


def check_peer_cids(
    params: TransportParameters,
    *,
    is_client: bool,
    peer_cid: bytes,
    first_packet_received: bool,
    original_dcid: bytes,
    retry_source_cid: bytes | None,
) -> None:
    """RFC 9000 7.3: the connection IDs in the peer's parameters match the packets'
    (``retry_source_cid``: the one our client learned from a Retry, None without)."""
    tp_error = ErrorCode.TRANSPORT_PARAMETER_ERROR
    if params.initial_source_connection_id != peer_cid and first_packet_received:
        raise ProtocolError(tp_error, "initial_source_connection_id mismatch")
    if is_client:
        if params.original_destination_connection_id != original_dcid:
            raise ProtocolError(tp_error, "original_destination_connection_id mismatch")
        if params.retry_source_connection_id != retry_source_cid:
            raise ProtocolError(tp_error, "retry_source_connection_id mismatch")


def check_version_information(
    params: TransportParameters, *, is_client: bool, version: int, original_version: int
) -> None:
    """RFC 9368 section 4: the peer's version_information matches what happened."""
    info = params.version_information
    if not is_client and info is not None and info.chosen_version not in info.available_versions:
        raise ProtocolError(ErrorCode.TRANSPORT_PARAMETER_ERROR, "chosen version not available")
    if is_client:
        if info is None:
            if version != original_version:
                raise ProtocolError(
                    VERSION_NEGOTIATION_ERROR, "version changed without version_information"
                )
        elif info.chosen_version != version:
            raise ProtocolError(VERSION_NEGOTIATION_ERROR, "server's chosen version differs")
    elif info is not None and info.chosen_version != original_version:
        raise ProtocolError(VERSION_NEGOTIATION_ERROR, "client's chosen version differs")


class Handshake:
    """The handshake of one connection, from the first flight to confirmation.

    It holds the parts of the connection it drives, never the connection itself (no
    reference cycle)."""

    __slots__ = (
        "_builder", "_events", "_host_cid", "_idle", "_initial_keys_dcid", "_keys", "_lifecycle",
        "_local_cids", "_paths", "_peer_cids", "_random", "_recovery", "_server_name",
        "_server_prefers", "_spaces", "_stats", "_streams", "_timer", "alpn", "cipher_suite",
        "compat_initial_rx", "complete", "config", "confirmed", "early_data_accepted",
        "early_data_requested", "first_packet_received", "flight_pending", "initial_dcid",
        "is_client", "local_params", "new_token", "original_dcid", "original_version",
        "peer_params", "prepared", "prepared_token", "remembered_params", "retry_received",
        "retry_source_cid", "sent_params", "server_context", "session_resumed", "session_ticket",
        "split_first_flight", "stock", "tls", "tls_ahead", "tls_released", "versions",
    )  # fmt: skip

    def __init__(
        self,
        config: Config,
        *,
        is_client: bool,
        server_name: str | None,
        server_context: ServerContext | None,
        session_ticket: bytes | None,
        early_data: bool,
        version: int,
        versions: Sequence[int] | None,
        random_bytes: Callable[[int], bytes],
        stock: HandshakeStock | None,
        spaces: Sequence[PacketSpace],
        keys: KeyState,
        recovery: LossRecovery,
        streams: StreamManager,
        builder: PacketBuilder,
        paths: PathManager,
        local_cids: LocalCids,
        peer_cids: PeerCids,
        idle: IdleTimer,
        timer: HandshakeTimer,
        events: EventQueue,
        stats: ConnectionStats,
        host_cid: bytes,
        lifecycle: Lifecycle,
    ) -> None:
        self.config = config
        self.is_client = is_client
        self._server_name = config.server_name if server_name is None else server_name
        # RFC 9368: a client's versions in preference order (offered in version_information);
        # a server's preference when it answers a client that offered several.
        self._server_prefers = server_context is not None and server_context.versions is not None
        if versions is None:
            versions = (
                (server_context.versions or SUPPORTED_VERSIONS)
                if server_context is not None
                else (version, *[v for v in SUPPORTED_VERSIONS if v != version])
            )
        self.versions = tuple(versions)
        self.original_version = version
        self.compat_initial_rx: PacketProtector | None = None  # server: original-version Initials
        self._initial_keys_dcid = b""
        self._random = random_bytes
        self.stock = stock
        self.server_context = server_context
        self.session_ticket = session_ticket
        self.early_data_requested = early_data and session_ticket is not None
        self.original_dcid = b""
        self.initial_dcid: bytes | None = None  # server: the DCID of the client's first Initial
        self.retry_source_cid: bytes | None = None
        self.retry_received = False
        self.first_packet_received = False
        self.remembered_params: TransportParameters | None = None  # client, for 0-RTT
        self.tls: TlsEngine | None = None
        self.tls_released = False  # server: the engine is gone once its work is done
        self.cipher_suite: int | None = None  # (kept when the engine goes)
        self.sent_params = b""  # their encoding, once the handshake started
        self.tls_ahead: TlsEngine | None = None  # server: made by await_hello()
        self.peer_params: TransportParameters | None = None
        self.complete = False
        self.confirmed = False
        self.early_data_accepted = False
        self.alpn: str | None = None
        self.session_resumed = False
        self.new_token: bytes | None = None  # client: from NEW_TOKEN, for a later connect()
        self.split_first_flight = False  # (see Connection.split_first_flight)
        self.flight_pending = False  # (see Connection.flight_pending)
        self.prepared = False  # prepare() ran (or is no longer useful)
        # Server: a NEW_TOKEN sealed ahead of need, and the address it was sealed for.
        self.prepared_token: tuple[tuple[str, int], bytes] | None = None
        self._spaces = spaces
        self._keys = keys
        self._recovery = recovery
        self._streams = streams
        self._builder = builder
        self._paths = paths
        self._local_cids = local_cids
        self._peer_cids = peer_cids
        self._idle = idle
        self._timer = timer
        self._events = events
        self._stats = stats
        self._lifecycle = lifecycle
        # (a server's: the client's first Initial fills in the rest, in start_server)
        self._host_cid = host_cid
        token = None if is_client else local_cids.token_of(host_cid)
        self.local_params = local_transport_parameters(
            config, host_cid, version, self.versions, token
        )

    @property
    def version(self) -> int:
        return self._builder.version

    # ---- starting ------------------------------------------------------------------------
    def install_initial_keys(self, dcid: bytes) -> None:
        self._initial_keys_dcid = dcid
        space = self._spaces[INITIAL]
        space.tx, space.rx = initial_protectors(dcid, self.version, self.is_client)

    def start_client(self, now: float) -> None:
        """Client: make the TLS engine with our transport parameters and start it."""
        self.sent_params = self.local_params.encode()  # also remembered in session tickets
        self.tls = self.make_tls(now, self.sent_params)
        self.tls.start(now)
        self.drain(now)

    def pick_first_dcid(self) -> None:
        """Client: the first DCID and its Initial keys (made ahead by prepare() if it can)."""
        spare = self.stock.take_initial(self.version) if self.stock is not None else None
        if spare is not None:
            self.original_dcid, tx, rx = spare
            self._initial_keys_dcid = self.original_dcid
            initial = self._spaces[INITIAL]
            initial.tx, initial.rx = tx, rx
        else:
            self.original_dcid = self._random(CID_LENGTH)
            self.install_initial_keys(self.original_dcid)
        self._builder.peer_cid = self.original_dcid

    def await_hello(self, now: float) -> None:
        """Server: make the TLS engine and stock an ephemeral key pair ahead of the hello."""
        self.tls_ahead = self.make_tls(now, b"")
        if self.stock is not None:  # an ephemeral key pair for its ServerHello
            self.stock.stock_key_pair(self.tls_ahead.key_share_group)

    def offer_early_data(self) -> None:
        """Client, connecting: with 0-RTT keys, streams may open and send under the limits
        remembered with the session ticket."""
        if self._keys.zero_rtt_tx is None or self.session_ticket is None:
            return
        self.remembered_params = remembered_parameters(self.session_ticket)
        if self.remembered_params is None:
            self._keys.zero_rtt_tx = None
        else:
            self._streams.on_peer_parameters(self.remembered_params)

    def make_tls(self, now: float, transport_parameters: bytes) -> TlsEngine:
        return make_tls_engine(
            self.config,
            is_client=self.is_client,
            server_name=self._server_name,
            server_context=self.server_context,
            session_ticket=self.session_ticket,
            early_data=self.early_data_requested,
            transport_parameters=transport_parameters,
            local_params=self.local_params,
            split_flight=self.split_first_flight,
            now=now,
            key_pairs=self.stock,
        )

    def on_client_initial(self, dcid: bytes) -> None:
        """Server: the client's first Initial; its DCID keys the Initial space (RFC 9001 5.2)."""
        self.initial_dcid = bytes(dcid)
        if not self.original_dcid:
            self.original_dcid = self.initial_dcid
        self.install_initial_keys(self.initial_dcid)

    def on_first_packet(self, scid: bytes, payload: bytes, now: float) -> None:
        """The first packet from the peer was authenticated: its SCID is our DCID, and a
        server starts TLS on the ClientHello it carries."""
        self.first_packet_received = True
        self._builder.peer_cid = scid
        if not self.is_client and self.tls is None:
            self.negotiate_version(payload)
            self.start_server(now)

    def start_server(self, now: float) -> None:
        # What the client's first Initial decided, on the parameters made with the connection.
        params = self.local_params
        params.original_destination_connection_id = self.original_dcid
        params.retry_source_connection_id = self.retry_source_cid
        params.version_information = version_information(self.version, self.versions)
        tls, self.tls_ahead = self.tls_ahead, None
        if tls is None:
            tls = self.make_tls(now, b"")
        tls.split_flight = self.split_first_flight
        self.tls = tls
        if not self.split_first_flight:  # (split: encoded after the hello, by finish_flight)
            self.send_transport_parameters(tls)
        tls.start(now)
        self.drain(now)

    def send_transport_parameters(self, tls: TlsEngine) -> None:
        """Server: encode our transport parameters for the EncryptedExtensions."""
        self.sent_params = self.local_params.encode()  # also remembered in session tickets
        tls.set_transport_parameters(self.sent_params)

    def finish_flight(self, now: float) -> None:
        """Server, split first flight: the rest of the flight after the ServerHello (the
        connection has installed the handshake write key it needs)."""
        tls = self.tls
        assert tls is not None
        if not self.sent_params:
            self.send_transport_parameters(tls)
        tls.finish_flight()
        self.drain(now)

    def prepare(self, now: float) -> None:
        """What :meth:`Connection.prepare` makes ahead of need for the handshake's end."""
        ctx = self.server_context
        tls = self.tls
        if tls is not None:
            upcoming = tls.next_read_secret()
            if upcoming is not None:  # (a server: the 1-RTT read key, installed later)
                self._keys.prepare_read(upcoming, self.version)
            if ctx is not None and ctx.issue_tickets:
                tls.prepare_ticket(now, self.sent_params)
        stock = self.stock
        if self.is_client and stock is not None:  # for the driver's next handshake
            if tls is not None:
                stock.stock_key_pair(tls.key_share_group)
            stock.stock_initial(self.version)
        if ctx is not None and ctx.new_tokens and self._paths.current.addr is not None:
            addr = self._paths.current.addr
            token = seal_new_token(ctx.token_key, addr, now + ctx.clock_offset)
            self.prepared_token = (addr, token)

    # ---- TLS ------------------------------------------------------------------------------
    def receive_crypto(self, index: int, data: bytes, now: float) -> None:
        """In-order CRYPTO bytes of space ``index`` for the TLS engine."""
        tls = self.tls
        epoch = (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)[index]
        if tls is None:
            if self.tls_released:  # what the engine said to any message after its last
                raise alert(
                    Alert.UNEXPECTED_MESSAGE, f"handshake data at {epoch.name} while connected"
                )
            return
        tls.receive(epoch, data, now)  # CryptoError closes with 0x100 + alert
        self.drain(now)

    def drain(self, now: float) -> None:
        """Take what the TLS engine made: secrets to keys, output to CRYPTO streams, the
        peer's transport parameters, completion and session tickets."""
        tls = self.tls
        assert tls is not None
        defer = self.split_first_flight and not self.is_client
        deferred = KEYS_NOT_NEEDED_FOR_THE_FLIGHT
        if tls.flight_pending:
            deferred = KEYS_NOT_NEEDED_FOR_THE_HELLO
        keys = self._keys
        for secret in tls.pop_secrets():
            if defer and secret[:2] in deferred:
                keys.deferred += (secret,)
            else:
                keys.install(secret, self._builder.version)
        for epoch, data in tls.pop_output():
            if epoch == Epoch.ZERO_RTT:
                continue
            space = self._spaces[EPOCH_SPACE[epoch]]
            if not space.discarded:
                space.crypto_send.write(data)
        if self.split_first_flight:
            self.flight_pending = tls.flight_pending
        if (
            self.peer_params is None
            and tls.peer_transport_parameters is not None
            and not self.flight_pending  # the ServerHello goes out first; nothing needs them
        ):
            self.apply_peer_parameters(tls.peer_transport_parameters)
        if tls.handshake_complete and not self.complete:
            self._on_complete(now)
        if self.is_client:
            for ticket in tls.pop_session_tickets():
                self._events.append(ev.SessionTicketReceived(ticket.to_bytes()))

    def apply_peer_parameters(self, raw: bytes) -> None:
        params = TransportParameters.decode(raw, from_server=self.is_client)
        builder = self._builder
        check_peer_cids(
            params,
            is_client=self.is_client,
            peer_cid=builder.peer_cid,
            first_packet_received=self.first_packet_received,
            original_dcid=self.original_dcid,
            retry_source_cid=self.retry_source_cid if self.retry_received else None,
        )
        check_version_information(
            params,
            is_client=self.is_client,
            version=self.version,
            original_version=self.original_version,
        )
        self.peer_params = params
        self._streams.on_peer_parameters(params)
        self._recovery.max_ack_delay = params.max_ack_delay / 1000.0
        if self.config.ack_frequency and params.min_ack_delay is not None:
            builder.ack_frequency = AckFrequencySender(params.min_ack_delay / 1e6, self._recovery)
        self._idle.negotiate(params.max_idle_timeout / 1000.0)
        if params.max_udp_payload_size < builder.max_datagram_size:
            builder.set_datagram_size(params.max_udp_payload_size, self._idle.last_activity)
        self._local_cids.peer_limit = params.active_connection_id_limit
        self._peer_cids.set_initial(
            builder.peer_cid, params.stateless_reset_token if self.is_client else None
        )

    # ---- completion and confirmation ------------------------------------------------------
    def _on_complete(self, now: float) -> None:
        tls = self.tls
        assert tls is not None
        self.complete = self._builder.handshake_complete = True
        self._timer.complete()  # done in time
        self._lifecycle.establish()
        self.alpn = None if tls.alpn is None else sys.intern(tls.alpn)  # (one per protocol)
        self.cipher_suite = tls.cipher_suite
        self.session_resumed = tls.session_resumed
        self.early_data_accepted = tls.early_data_accepted
        keys = self._keys
        if not self.is_client:
            # The server is confirmed once the client's Finished arrives (RFC 9001 4.1.2).
            self.confirm()
            if keys.zero_rtt_rx is not None:
                # RFC 9001 4.9.3: 1-RTT packets come from now on; keep the 0-RTT read key a
                # short while for reordered 0-RTT packets, then discard it.
                keys.zero_rtt_rx_until = now + 3 * self._recovery.pto_duration()
            self._builder.pending_handshake_done = True
            ctx = self.server_context
            if ctx is not None and ctx.issue_tickets:
                tls.issue_session_ticket(now, self.sent_params)
                self.drain(now)
            if ctx is not None and ctx.new_tokens and self._paths.current.addr is not None:
                self._streams.control.append(F.NewTokenFrame(self._new_token(ctx, now)))
        elif self.early_data_requested:
            self._on_early_data_outcome()
        keys.zero_rtt_tx = None
        tx = self._spaces[APPLICATION].tx
        if tx is not None:
            keys.set_limits(tx.suite)
        self._events.append(
            ev.HandshakeCompleted(self.alpn, self.session_resumed, self.early_data_accepted)
        )
        if not self.is_client:
            self.issue_cids()
            self.release_tls()

    def release_tls(self) -> None:
        """Server, handshake done: its TLS engine has nothing left to do (its tickets are
        written; a client sends no post-handshake messages in QUIC), so its state, a few KB
        per connection, goes; later CRYPTO data gets the answer the engine gave."""
        self.tls = self.tls_ahead = None
        self.tls_released = True
        self.sent_params = b""  # (their encoding was for the engine and its tickets)

    def _new_token(self, ctx: ServerContext, now: float) -> bytes:
        """The NEW_TOKEN for the current path (the prepared one if it is for this address);
        the prepared one is then spent (one NEW_TOKEN per connection): not kept."""
        addr = self._paths.current.addr
        assert addr is not None
        prepared, self.prepared_token = self.prepared_token, None
        if prepared is not None and prepared[0] == addr:
            return prepared[1]
        return seal_new_token(ctx.token_key, addr, now + ctx.clock_offset)

    def _on_early_data_outcome(self) -> None:
        """Client: 0-RTT accepted (the server kept the remembered limits) or rejected
        (everything sent in 0-RTT goes again in 1-RTT)."""
        remembered, params = self.remembered_params, self.peer_params
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

    def confirm(self) -> None:
        """The handshake is confirmed (RFC 9001 4.1.2): the Handshake space goes."""
        if self.confirmed:
            return
        self.confirmed = True
        self._events.append(ev.HandshakeConfirmed())
        self._recovery.handshake_confirmed = True
        self._recovery.peer_completed_address_validation = True
        self.discard_space(HANDSHAKE)
        params = self.peer_params
        self._builder.start_pmtud(65527 if params is None else params.max_udp_payload_size)
        if self.is_client:
            # Not with the Finished: that datagram stays as small as it can be, and nothing
            # uses the spare IDs before confirmation (migration waits for it).
            self.issue_cids()

    def discard_space(self, index: int) -> None:
        if self._spaces[index].discard():
            self._recovery.discard_space(index, for_good=True)
            initial = self._spaces[INITIAL]
            if index == HANDSHAKE and initial.discarded:  # (no Initial packet opens since)
                initial.crypto_recv = SPENT_CRYPTO_RECV

    def issue_cids(self) -> None:
        """Issue spare connection IDs up to the peer's limit (RFC 9000 5.1.1)."""
        for cid in self._local_cids.top_up():
            self._events.append(ev.ConnectionIdIssued(cid))

    # ---- compatible version negotiation (RFC 9368, RFC 9369) ------------------------------
    def accept_version(self, header: PacketHeader) -> bool:
        """A long-header packet of another version than ours: switch or accept it?"""
        version = header.version
        if version not in SUPPORTED_VERSIONS:
            return False
        if self.is_client:
            # The server answered in another version we offered (compatible negotiation).
            if (
                header.packet_type == PacketType.INITIAL
                and not self.first_packet_received
                and self.version == self.original_version
                and version in self.versions
            ):
                self._switch_version(version)
                return True
            return False
        if self.initial_dcid is None:  # a server's first packet sets the version
            self._builder.version = self.original_version = version
            return True
        # The client's Initials in its original version, until it saw our answer.
        return (
            version == self.original_version
            and header.packet_type == PacketType.INITIAL
            and self.compat_initial_rx is not None
        )

    def _switch_version(self, version: int) -> None:
        """Client: from now on in ``version``, with its Initial keys for the same DCID."""
        logger.debug("compatible version negotiation: %#x -> %#x", self.version, version)
        self._builder.version = version
        self.install_initial_keys(self._initial_keys_dcid)
        # 0-RTT keys belong to the original version: what was sent in 0-RTT goes again in
        # 1-RTT once loss detection gives it up.
        self._keys.zero_rtt_tx = None

    def negotiate_version(self, payload: bytes) -> None:
        """Server, first Initial: answer in the most preferred version the client offered."""
        chosen = choose_version(
            self.version,
            client_hello_transport_parameters(payload),
            self.versions if self._server_prefers else None,
        )
        if chosen == self.version or self.initial_dcid is None:
            return
        logger.debug("compatible version negotiation: %#x -> %#x", self.version, chosen)
        self.compat_initial_rx = self._spaces[INITIAL].rx
        self._builder.version = chosen
        self.install_initial_keys(self.initial_dcid)

    def on_version_negotiation(self, header: PacketHeader) -> None:
        """Client: a Version Negotiation packet before any answer ends the connection,
        unless it lists the version we use (RFC 9000 6.2: ignored)."""
        if not self.is_client or self.first_packet_received:
            return
        versions: tuple[int, ...] = header.supported_versions or ()
        if self.version in versions:
            return
        lifecycle = self._lifecycle
        reason = f"server supports only {versions!r}"
        lifecycle.terminate(ErrorCode.NO_ERROR, reason, None, by_peer=True)
        lifecycle.end()

    # ---- Retry (RFC 9000 17.2.5) ----------------------------------------------------------
    def on_retry(self, data: bytes, header: PacketHeader) -> None:
        if not self.is_client or self.retry_received or self.first_packet_received:
            return
        packet = bytes(data[: header.packet_end])
        if (
            header.dcid != self._host_cid
            or header.scid == self.original_dcid  # RFC 9000 17.2.5.1: MUST discard
            or not verify_retry(packet, self.original_dcid)
        ):
            self._stats.packets_dropped += 1
            return
        self.retry_received = True
        self._stats.retries_received += 1
        builder = self._builder
        builder.peer_cid = header.scid
        self.retry_source_cid = bytes(header.scid)  # checked in the transport parameters
        builder.token = header.retry_token or b""
        self.install_initial_keys(builder.peer_cid)
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

"""The handshake's stateless pieces: our transport parameters, the TLS engine a connection
drives, checks of the peer's transport parameters (connection IDs, version information),
and which keys a server's split first flight makes later."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

from ..config import Config
from ..errors import DecodeError, ErrorCode, ProtocolError
from ..tls.certs import TrustSource
from ..tls.engine import Epoch, TlsEngine
from ..tls.groups import KeyPairSource
from ..tls.keylog import keylog_file
from ..wire.transport_params import TransportParameters
from .early_data import limits_reduced
from .packet_builder import ACK_DELAY_EXPONENT
from .server_context import ServerContext
from .versions import VERSION_NEGOTIATION_ERROR, version_information

LOCAL_MAX_ACK_DELAY = 0.025

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
        max_datagram_frame_size=cfg.max_datagram_frame_size,
        disable_active_migration=cfg.disable_active_migration,
        version_information=version_information(version, versions),
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

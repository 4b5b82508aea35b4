"""The ``data`` of each qlog event quicish writes (draft-ietf-quic-qlog-quic-events-13).

Pure functions from the engine's values (wire objects, numbers in the engine's units) to the
dicts the draft defines: times arrive in seconds and leave in milliseconds, byte strings leave
as lowercase hex, infinite values (ssthresh before the first loss) are left out. Nothing here
reads a clock or touches a connection.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..wire.frames import Frame
from ..wire.packet import PacketHeader, PacketType
from ..wire.transport_params import TransportParameters
from .frames import QlogDict, application_error, frame_to_qlog, transport_error
from .schema import COUNT_METRICS, PACKET_TYPE_NAMES, RTT_METRICS, SPACE_NAMES

# ---- packets ---------------------------------------------------------------------------------


def packet_header(
    packet_type: PacketType | str,
    packet_number: int | None = None,
    *,
    dcid: bytes | None = None,
    scid: bytes | None = None,
    version: int | None = None,
    token: bytes | None = None,
    key_phase: int | None = None,
    length: int | None = None,
) -> QlogDict:
    """A ``PacketHeader``; ``packet_type`` a :class:`PacketType` or a qlog name."""
    name = packet_type if isinstance(packet_type, str) else PACKET_TYPE_NAMES[packet_type]
    out: QlogDict = {"packet_type": name}
    if packet_number is not None:
        out["packet_number"] = packet_number
    if version is not None:
        out["version"] = f"{version:08x}"
    if scid is not None:
        out["scil"] = len(scid)
        out["scid"] = scid.hex()
    if dcid is not None:
        out["dcil"] = len(dcid)
        out["dcid"] = dcid.hex()
    if token:
        out["token"] = {"raw": {"length": len(token), "data": token.hex()}}
    if key_phase is not None:
        out["key_phase"] = key_phase
    if length is not None:
        out["length"] = length
    return out


def header_from_wire(header: PacketHeader, packet_number: int | None = None) -> QlogDict:
    """The ``PacketHeader`` of a parsed wire header (long headers carry version and SCID)."""
    return packet_header(
        header.packet_type,
        packet_number,
        dcid=header.dcid,
        scid=header.scid if header.is_long else None,
        version=header.version,
        token=header.token or header.retry_token or None,
    )


def packet_event(
    header: QlogDict,
    frames: Sequence[Frame | QlogDict] = (),
    *,
    size: int | None = None,
    datagram_id: int | None = None,
    trigger: str | None = None,
    ack_delay_exponent: int = 3,
) -> QlogDict:
    """``packet_sent`` / ``packet_received`` / ``packet_lost`` data: the header, the frames
    (wire objects or ready qlog dicts), ``raw.length`` = ``size`` (the packet's bytes)."""
    out: QlogDict = {"header": header}
    if frames:
        out["frames"] = [
            fr if isinstance(fr, dict) else frame_to_qlog(fr, ack_delay_exponent) for fr in frames
        ]
    if size is not None:
        out["raw"] = {"length": size}
    if datagram_id is not None:
        out["datagram_id"] = datagram_id
    if trigger is not None:
        out["trigger"] = trigger
    return out


def packet_dropped(
    trigger: str,
    *,
    header: QlogDict | None = None,
    size: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> QlogDict:
    """Why a packet was dropped (``decryption_failure``, ``connection_unknown``, ...)."""
    out: QlogDict = {"trigger": trigger}
    if header is not None:
        out["header"] = header
    if size is not None:
        out["raw"] = {"length": size}
    if details:
        out["details"] = dict(details)
    return out


#: quicish's reasons for dropping a received packet -> the qlog ``packet_dropped`` trigger
DROP_TRIGGERS: dict[str, str] = {
    "undecryptable": "decryption_failure",  # failed AEAD authentication
    "unknown_connection_id": "connection_unknown",
    "no_keys": "key_unavailable",  # keys not derived yet, or already discarded
    "duplicate": "duplicate",
    "unparseable": "invalid",
    "unsupported_version": "unsupported",
    "amplification_limit": "rejected",
    "internal": "internal_error",
}


def packets_acked(space: int, packet_numbers: Iterable[int]) -> QlogDict:
    """Packets acknowledged for the first time in packet number space ``space`` (0, 1, 2)."""
    return {"packet_number_space": SPACE_NAMES[space], "packet_numbers": list(packet_numbers)}


# ---- connection ------------------------------------------------------------------------------
def endpoint_info(
    addr: tuple[str, int] | tuple[Any, ...] | None = None, cids: Iterable[bytes] = ()
) -> QlogDict:
    """A ``TupleEndpointInfo``: an (IP, port) address and connection IDs."""
    out: QlogDict = {}
    if addr is not None:
        ip, port = str(addr[0]), int(addr[1])
        if ":" in ip:
            out["ip_v6"], out["port_v6"] = ip, port
        else:
            out["ip_v4"], out["port_v4"] = ip, port
    ids = [cid.hex() for cid in cids]
    if ids:
        out["connection_ids"] = ids
    return out


def connection_started(
    local: tuple[Any, ...] | None,
    remote: tuple[Any, ...] | None,
    local_cid: bytes | None = None,
    remote_cid: bytes | None = None,
) -> QlogDict:
    """Both halves of the tuple a connection starts on."""
    return {
        "local": endpoint_info(local, () if local_cid is None else (local_cid,)),
        "remote": endpoint_info(remote, () if remote_cid is None else (remote_cid,)),
    }


def connection_closed(
    *,
    initiator: str | None = None,
    error_code: int | None = None,
    application: bool = False,
    reason: str = "",
    trigger: str | None = None,
) -> QlogDict:
    """How a connection ended: ``initiator`` ``local``/``remote``, the error (transport or
    ``application``), the reason phrase and a ``trigger`` (``idle_timeout``, ``error``,
    ``application``, ``stateless_reset``, ...)."""
    out: QlogDict = {}
    if initiator is not None:
        out["initiator"] = initiator
    if error_code is not None:
        err = application_error(error_code) if application else transport_error(error_code)
        out["application_error" if application else "connection_error"] = err["error"]
        if "error_code" in err:
            out["error_code"] = err["error_code"]
    if reason:
        out["reason"] = reason
    if trigger is not None:
        out["trigger"] = trigger
    return out


def connection_state_updated(new: str, old: str | None = None) -> QlogDict:
    """``new`` e.g. ``handshake_complete``, ``handshake_confirmed``, ``closing``,
    ``draining``, ``closed``."""
    return {"new": new} if old is None else {"old": old, "new": new}


def version_information(
    chosen: int | None,
    *,
    client_versions: Iterable[int] = (),
    server_versions: Iterable[int] = (),
) -> QlogDict:
    out: QlogDict = {}
    cv = [f"{v:08x}" for v in client_versions]
    sv = [f"{v:08x}" for v in server_versions]
    if sv:
        out["server_versions"] = sv
    if cv:
        out["client_versions"] = cv
    if chosen is not None:
        out["chosen_version"] = f"{chosen:08x}"
    return out


def _alpn(value: str | bytes) -> QlogDict:
    raw = value.encode() if isinstance(value, str) else value
    try:
        return {"byte_value": raw.hex(), "string_value": raw.decode()}
    except UnicodeDecodeError:
        return {"byte_value": raw.hex()}


def alpn_information(
    chosen: str | bytes | None,
    *,
    client_alpns: Iterable[str | bytes] = (),
    server_alpns: Iterable[str | bytes] = (),
) -> QlogDict:
    out: QlogDict = {}
    sa = [_alpn(a) for a in server_alpns]
    ca = [_alpn(a) for a in client_alpns]
    if sa:
        out["server_alpns"] = sa
    if ca:
        out["client_alpns"] = ca
    if chosen is not None:
        out["chosen_alpn"] = _alpn(chosen)
    return out


_PARAM_INTS = (
    "max_idle_timeout",
    "max_udp_payload_size",
    "ack_delay_exponent",
    "max_ack_delay",
    "active_connection_id_limit",
    "initial_max_data",
    "initial_max_stream_data_bidi_local",
    "initial_max_stream_data_bidi_remote",
    "initial_max_stream_data_uni",
    "initial_max_streams_bidi",
    "initial_max_streams_uni",
)
_PARAM_CIDS = (
    "original_destination_connection_id",
    "initial_source_connection_id",
    "retry_source_connection_id",
)


def parameters_set(
    params: TransportParameters,
    initiator: str,
    *,
    tls_cipher: str | None = None,
    resumption_allowed: bool | None = None,
    early_data_enabled: bool | None = None,
) -> QlogDict:
    """One side's transport parameters (``initiator`` ``local`` or ``remote``; the draft
    wants one event per side). Absent parameters stay absent."""
    out: QlogDict = {"initiator": initiator}
    if resumption_allowed is not None:
        out["resumption_allowed"] = resumption_allowed
    if early_data_enabled is not None:
        out["early_data_enabled"] = early_data_enabled
    if tls_cipher is not None:
        out["tls_cipher"] = tls_cipher
    for name in _PARAM_CIDS:
        cid = getattr(params, name)
        if cid is not None:
            out[name] = cid.hex()
    if params.stateless_reset_token is not None:
        out["stateless_reset_token"] = params.stateless_reset_token.hex()
    out["disable_active_migration"] = params.disable_active_migration
    for name in _PARAM_INTS:
        out[name] = getattr(params, name)
    pa = params.preferred_address
    if pa is not None:
        pref: QlogDict = {}
        if pa.ipv4_address is not None:
            pref["ip_v4"], pref["port_v4"] = pa.ipv4_address
        if pa.ipv6_address is not None:
            pref["ip_v6"], pref["port_v6"] = pa.ipv6_address
        pref["connection_id"] = pa.connection_id.hex()
        pref["stateless_reset_token"] = pa.stateless_reset_token.hex()
        out["preferred_address"] = pref
    if params.unknown:
        out["unknown_parameters"] = [
            {"id": pid, "value": value.hex()} for pid, value in params.unknown.items()
        ]
    if params.max_datagram_frame_size is not None:
        out["max_datagram_frame_size"] = params.max_datagram_frame_size
    if params.grease_quic_bit:
        out["grease_quic_bit"] = True
    return out


def stream_state_updated(
    stream_id: int,
    new: str,
    side: str,
    *,
    old: str | None = None,
    trigger: str | None = None,
) -> QlogDict:
    """A stream half (``side`` ``sending``/``receiving``) changed state (RFC 9000 section 3
    names, or the base ``open``/``closed``)."""
    out: QlogDict = {
        "stream_id": stream_id,
        "stream_type": "unidirectional" if stream_id & 2 else "bidirectional",
        "stream_side": side,
        "new": new,
    }
    if old is not None:
        out["old"] = old
    if trigger is not None:
        out["trigger"] = trigger
    return out


def tuple_assigned(
    tuple_id: str,
    local: tuple[Any, ...] | None = None,
    remote: tuple[Any, ...] | None = None,
    *,
    local_cids: Iterable[bytes] = (),
    remote_cids: Iterable[bytes] = (),
) -> QlogDict:
    """A network path (``tuple_id``; ``""`` is the handshake's) and its two halves; both
    omitted means the path was abandoned."""
    out: QlogDict = {"tuple_id": tuple_id}
    if remote is not None:
        out["tuple_remote"] = endpoint_info(remote, remote_cids)
    if local is not None:
        out["tuple_local"] = endpoint_info(local, local_cids)
    return out


def connection_id_updated(initiator: str, new: bytes | None, old: bytes | None = None) -> QlogDict:
    """The connection ID in use changed (``remote``: the peer's, ``local``: ours)."""
    out: QlogDict = {"initiator": initiator}
    if old is not None:
        out["old"] = old.hex()
    if new is not None:
        out["new"] = new.hex()
    return out


def migration_state_updated(
    new: str,
    *,
    old: str | None = None,
    local: tuple[Any, ...] | None = None,
    remote: tuple[Any, ...] | None = None,
) -> QlogDict:
    out: QlogDict = {"new": new}
    if old is not None:
        out["old"] = old
    if remote is not None:
        out["tuple_remote"] = endpoint_info(remote)
    if local is not None:
        out["tuple_local"] = endpoint_info(local)
    return out


def mtu_updated(new: int, old: int | None = None, done: bool = False) -> QlogDict:
    """The datagram size changed (path MTU discovery); ``done``: the search ended."""
    out: QlogDict = {"new": new}
    if old is not None:
        out["old"] = old
    if done:
        out["done"] = True
    return out


# ---- security --------------------------------------------------------------------------------
_LEVELS = {0: "initial", 1: "handshake", 2: "1rtt", "0rtt": "0rtt"}


def key_type(is_client_key: bool, level: int | str) -> str:
    """``client_handshake_secret`` etc.; ``level`` a space index (0, 1, 2) or ``"0rtt"``."""
    return f"{'client' if is_client_key else 'server'}_{_LEVELS[level]}_secret"


def key_event(
    is_client_key: bool,
    level: int | str,
    *,
    key_phase: int | None = None,
    trigger: str | None = None,
) -> QlogDict:
    """``key_updated`` / ``key_discarded`` data (no key material is logged)."""
    out: QlogDict = {"key_type": key_type(is_client_key, level)}
    if key_phase is not None:
        out["key_phase"] = key_phase
    if trigger is not None:
        out["trigger"] = trigger
    return out


# ---- recovery --------------------------------------------------------------------------------


def recovery_metrics(metrics: Mapping[str, float]) -> QlogDict:
    """``recovery_metrics_updated`` data from the engine's metrics dict (RTTs in seconds,
    sizes in bytes, ``pacing_rate`` in bytes/s): RTTs to ms, pacing to bits/s, infinite
    or unknown keys dropped (ssthresh is infinite until the first loss)."""
    out: QlogDict = {}
    for key in RTT_METRICS:
        value = metrics.get(key)
        if value is not None and math.isfinite(value):
            out[key] = value * 1000.0
    for key in COUNT_METRICS:
        value = metrics.get(key)
        if value is not None and math.isfinite(value):
            out[key] = int(value)
    rate = metrics.get("pacing_rate")
    if rate is not None and math.isfinite(rate):
        out["pacing_rate"] = int(rate * 8)
    return out


def metrics_delta(previous: Mapping[str, Any], current: QlogDict) -> QlogDict:
    """The members of ``current`` that differ from ``previous`` (the draft asks to log
    changes only); ``previous`` is updated in place when it is a dict."""
    changed = {k: v for k, v in current.items() if previous.get(k) != v}
    if isinstance(previous, dict):
        previous.update(changed)
    return changed


def recovery_parameters_set(
    *,
    reordering_threshold: int,
    time_threshold: float,
    timer_granularity: float,
    initial_rtt: float,
    max_datagram_size: int,
    initial_congestion_window: int,
    minimum_congestion_window: int,
    loss_reduction_factor: float,
    persistent_congestion_threshold: int,
    **extra: Any,
) -> QlogDict:
    """RFC 9002 constants; ``timer_granularity`` and ``initial_rtt`` in seconds (logged in
    ms); ``extra`` for algorithm-specific members (e.g. ``congestion_control="cubic"``)."""
    out: QlogDict = {
        "reordering_threshold": reordering_threshold,
        "time_threshold": time_threshold,
        "timer_granularity": max(1, round(timer_granularity * 1000)),
        "initial_rtt": initial_rtt * 1000.0,
        "max_datagram_size": max_datagram_size,
        "initial_congestion_window": initial_congestion_window,
        "minimum_congestion_window": minimum_congestion_window,
        "loss_reduction_factor": loss_reduction_factor,
        "persistent_congestion_threshold": persistent_congestion_threshold,
    }
    out.update(extra)
    return out


def congestion_state_updated(
    new: str, old: str | None = None, trigger: str | None = None
) -> QlogDict:
    """``new``/``old`` e.g. ``slow_start``, ``congestion_avoidance``, ``recovery``,
    ``application_limited``."""
    out: QlogDict = {"new": new}
    if old is not None:
        out["old"] = old
    if trigger is not None:
        out["trigger"] = trigger
    return out

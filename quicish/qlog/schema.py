"""The qlog revisions quicish writes, and the names and enumerations they define.

quicish follows draft-ietf-quic-qlog-main-schema-14 (file header, JSON-SEQ framing, event
fields) and draft-ietf-quic-qlog-quic-events-13 (the ``quic`` event namespace, packet header
and frame shapes). A draft implementation identifies its event schema with the draft number
appended (``urn:ietf:params:qlog:events:quic-13``), as the QUIC events draft requires.
"""

from __future__ import annotations

from ..errors import ErrorCode
from ..wire.packet import PacketType

MAIN_SCHEMA_DRAFT = "draft-ietf-quic-qlog-main-schema-14"
QUIC_EVENTS_DRAFT = "draft-ietf-quic-qlog-quic-events-13"

FILE_SCHEMA_SEQ = "urn:ietf:params:qlog:file:sequential"
FILE_SCHEMA_CONTAINED = "urn:ietf:params:qlog:file:contained"
SERIALIZATION_FORMAT_SEQ = "application/qlog+json-seq"
SERIALIZATION_FORMAT_JSON = "application/qlog+json"
QUIC_EVENT_SCHEMA = "urn:ietf:params:qlog:events:quic-13"
NAMESPACE = "quic"
RECORD_SEPARATOR = b"\x1e"
FILE_SUFFIX = ".sqlog"

VANTAGE_POINT_TYPES = frozenset(("client", "server", "network", "unknown"))
TIME_FORMATS = frozenset(("relative_to_epoch", "relative_to_previous_event"))

# ---- event names (namespace:event_type) ------------------------------------------------------
CONNECTION_STARTED = "quic:connection_started"
CONNECTION_CLOSED = "quic:connection_closed"
CONNECTION_ID_UPDATED = "quic:connection_id_updated"
CONNECTION_STATE_UPDATED = "quic:connection_state_updated"
TUPLE_ASSIGNED = "quic:tuple_assigned"
VERSION_INFORMATION = "quic:version_information"
ALPN_INFORMATION = "quic:alpn_information"
PARAMETERS_SET = "quic:parameters_set"
PACKET_SENT = "quic:packet_sent"
PACKET_RECEIVED = "quic:packet_received"
PACKET_DROPPED = "quic:packet_dropped"
PACKET_BUFFERED = "quic:packet_buffered"
PACKETS_ACKED = "quic:packets_acked"
UDP_DATAGRAM_DROPPED = "quic:udp_datagram_dropped"
STREAM_STATE_UPDATED = "quic:stream_state_updated"
MIGRATION_STATE_UPDATED = "quic:migration_state_updated"
MTU_UPDATED = "quic:mtu_updated"
KEY_UPDATED = "quic:key_updated"
KEY_DISCARDED = "quic:key_discarded"
RECOVERY_PARAMETERS_SET = "quic:recovery_parameters_set"
RECOVERY_METRICS_UPDATED = "quic:recovery_metrics_updated"
CONGESTION_STATE_UPDATED = "quic:congestion_state_updated"
PACKET_LOST = "quic:packet_lost"
MARKED_FOR_RETRANSMIT = "quic:marked_for_retransmit"

# Names written by qlog 0.3 / quic-events drafts before -09 (aioquic, older stacks): their
# current equivalent, so one reader and one set of tools serve both.
LEGACY_EVENT_NAMES: dict[str, str] = {
    "transport:connection_started": CONNECTION_STARTED,
    "connectivity:connection_started": CONNECTION_STARTED,
    "connectivity:connection_closed": CONNECTION_CLOSED,
    "transport:connection_closed": CONNECTION_CLOSED,
    "connectivity:connection_state_updated": CONNECTION_STATE_UPDATED,
    "connectivity:connection_id_updated": CONNECTION_ID_UPDATED,
    "transport:version_information": VERSION_INFORMATION,
    "transport:alpn_information": ALPN_INFORMATION,
    "transport:parameters_set": PARAMETERS_SET,
    "transport:packet_sent": PACKET_SENT,
    "transport:packet_received": PACKET_RECEIVED,
    "transport:packet_dropped": PACKET_DROPPED,
    "transport:packet_buffered": PACKET_BUFFERED,
    "transport:stream_state_updated": STREAM_STATE_UPDATED,
    "security:key_updated": KEY_UPDATED,
    "security:key_discarded": KEY_DISCARDED,
    "security:key_retired": KEY_DISCARDED,
    "connectivity:spin_bit_updated": "quic:spin_bit_updated",
    "transport:datagrams_sent": "quic:udp_datagrams_sent",
    "transport:datagrams_received": "quic:udp_datagrams_received",
    "transport:datagram_dropped": UDP_DATAGRAM_DROPPED,
    "recovery:parameters_set": RECOVERY_PARAMETERS_SET,
    "recovery:metrics_updated": RECOVERY_METRICS_UPDATED,
    "recovery:congestion_state_updated": CONGESTION_STATE_UPDATED,
    "recovery:packet_lost": PACKET_LOST,
    "recovery:marked_for_retransmit": MARKED_FOR_RETRANSMIT,
}

# ---- enumerations ----------------------------------------------------------------------------
PACKET_TYPE_NAMES: dict[PacketType, str] = {
    PacketType.INITIAL: "initial",
    PacketType.HANDSHAKE: "handshake",
    PacketType.ZERO_RTT: "0RTT",
    PacketType.ONE_RTT: "1RTT",
    PacketType.RETRY: "retry",
    PacketType.VERSION_NEGOTIATION: "version_negotiation",
    PacketType.UNKNOWN: "unknown",
}
PACKET_TYPES = frozenset((*PACKET_TYPE_NAMES.values(), "stateless_reset"))
# packet types that carry a packet number
NUMBERED_PACKET_TYPES = frozenset(("initial", "handshake", "0RTT", "1RTT"))

# packet number space index (as the engine numbers them) -> qlog name
SPACE_NAMES: tuple[str, str, str] = ("initial", "handshake", "application_data")
# the packet number space each numbered packet type belongs to
SPACE_OF_PACKET_TYPE: dict[str, str] = {
    "initial": "initial",
    "handshake": "handshake",
    "0RTT": "application_data",
    "1RTT": "application_data",
}

# recovery_metrics_updated members: RTTs (ms) and counts (bytes, packets)
RTT_METRICS = ("min_rtt", "smoothed_rtt", "latest_rtt", "rtt_variance")
COUNT_METRICS = (
    "pto_count",
    "congestion_window",
    "bytes_in_flight",
    "ssthresh",
    "packets_in_flight",
)

TRANSPORT_ERROR_NAMES: dict[int, str] = {
    code.value: code.name.lower() for code in ErrorCode if code is not ErrorCode.CRYPTO_ERROR
}

FRAME_TYPES = frozenset(
    (
        "padding", "ping", "ack", "reset_stream", "reset_stream_at", "stop_sending", "crypto",
        "new_token", "stream", "max_data", "max_stream_data", "max_streams", "data_blocked",
        "stream_data_blocked", "streams_blocked", "new_connection_id", "retire_connection_id",
        "path_challenge", "path_response", "connection_close", "handshake_done", "unknown",
        "datagram", "ack_frequency", "immediate_ack",
    )
)  # fmt: skip

KEY_TYPES = frozenset(
    f"{side}_{level}_secret"
    for side in ("client", "server")
    for level in ("initial", "handshake", "0rtt", "1rtt")
)
STREAM_STATES = frozenset(
    (
        "idle", "open", "closed", "half_closed_local", "half_closed_remote", "ready", "send",
        "data_sent", "reset_sent", "reset_received", "receive", "size_known", "data_read",
        "reset_read", "data_received", "destroyed",
    )
)  # fmt: skip
MIGRATION_STATES = frozenset(
    (
        "probing_started", "probing_abandoned", "probing_successful", "migration_started",
        "migration_abandoned", "migration_complete",
    )
)  # fmt: skip
PACKET_DROP_TRIGGERS = frozenset(
    (
        "internal_error", "rejected", "unsupported", "invalid", "duplicate",
        "connection_unknown", "decryption_failure", "key_unavailable", "general",
    )
)  # fmt: skip
PACKET_LOST_TRIGGERS = frozenset(("reordering_threshold", "time_threshold", "pto_expired"))
CLOSE_TRIGGERS = frozenset(
    (
        "idle_timeout", "application", "error", "version_mismatch", "stateless_reset",
        "aborted", "unspecified",
    )
)  # fmt: skip


def event_name(name: str) -> str:
    """``name`` with the ``quic`` namespace when it has none (``packet_sent`` ->
    ``quic:packet_sent``)."""
    return name if ":" in name else f"{NAMESPACE}:{name}"

"""quicish.qlog.frames / events: every wire frame, packet headers, transport parameters,
metrics and the other event payloads, as quic-events-13 shapes them."""

from __future__ import annotations

import io
import typing

import pytest

from quicish.errors import ErrorCode
from quicish.qlog import QlogWriter, validate_bytes
from quicish.qlog import events as E
from quicish.qlog import frames as F
from quicish.qlog.schema import PACKET_DROP_TRIGGERS
from quicish.wire import frames as wf
from quicish.wire.packet import QUIC_V1, PacketHeader, PacketType
from quicish.wire.transport_params import (
    PreferredAddress,
    TransportParameters,
    VersionInformation,
)

CID = bytes.fromhex("0011223344556677")
TOKEN16 = bytes(range(16))

# (frame, the qlog dict it must become); encoded and decoded again below
CASES: list[tuple[wf.Frame, dict[str, typing.Any]]] = [
    (wf.PaddingFrame(7), {"frame_type": "padding", "raw": {"length": 7, "payload_length": 7}}),
    (wf.PingFrame(), {"frame_type": "ping"}),
    (
        wf.AckFrame([(10, 20), (3, 4), (0, 2)], delay=250),
        {"frame_type": "ack", "acked_ranges": [[10, 19], [3], [0, 1]], "ack_delay": 2.0},
    ),
    (
        wf.AckFrame([(0, 5)], delay=0, ecn=(4, 1, 2)),
        {
            "frame_type": "ack",
            "acked_ranges": [[0, 4]],
            "ack_delay": 0.0,
            "ect0": 4,
            "ect1": 1,
            "ce": 2,
        },
    ),
    (
        wf.ResetStreamFrame(4, 0x101, 5000),
        {
            "frame_type": "reset_stream",
            "stream_id": 4,
            "error": "unknown",
            "error_code": 0x101,
            "final_size": 5000,
        },
    ),
    (
        wf.StopSendingFrame(8, 3),
        {"frame_type": "stop_sending", "stream_id": 8, "error": "unknown", "error_code": 3},
    ),
    (
        wf.CryptoFrame(1200, b"x" * 300),
        {"frame_type": "crypto", "offset": 1200, "raw": {"length": 300}},
    ),
    (
        wf.NewTokenFrame(b"\xaa\xbb"),
        {
            "frame_type": "new_token",
            "token": {"type": "resumption", "raw": {"length": 2, "data": "aabb"}},
        },
    ),
    (
        wf.StreamFrame(5, 70000, b"y" * 1000, fin=True),
        {
            "frame_type": "stream",
            "stream_id": 5,
            "offset": 70000,
            "fin": True,
            "raw": {"length": 1000},
        },
    ),
    (
        wf.StreamFrame(0, 0, b"z" * 10),
        {"frame_type": "stream", "stream_id": 0, "offset": 0, "fin": False, "raw": {"length": 10}},
    ),
    (wf.MaxDataFrame(1 << 20), {"frame_type": "max_data", "maximum": 1 << 20}),
    (
        wf.MaxStreamDataFrame(4, 65536),
        {"frame_type": "max_stream_data", "stream_id": 4, "maximum": 65536},
    ),
    (
        wf.MaxStreamsFrame(True, 100),
        {"frame_type": "max_streams", "stream_type": "bidirectional", "maximum": 100},
    ),
    (
        wf.MaxStreamsFrame(False, 3),
        {"frame_type": "max_streams", "stream_type": "unidirectional", "maximum": 3},
    ),
    (wf.DataBlockedFrame(999), {"frame_type": "data_blocked", "limit": 999}),
    (
        wf.StreamDataBlockedFrame(8, 77),
        {"frame_type": "stream_data_blocked", "stream_id": 8, "limit": 77},
    ),
    (
        wf.StreamsBlockedFrame(False, 12),
        {"frame_type": "streams_blocked", "stream_type": "unidirectional", "limit": 12},
    ),
    (
        wf.NewConnectionIdFrame(3, 1, CID, TOKEN16),
        {
            "frame_type": "new_connection_id",
            "sequence_number": 3,
            "retire_prior_to": 1,
            "connection_id_length": 8,
            "connection_id": "0011223344556677",
            "stateless_reset_token": TOKEN16.hex(),
        },
    ),
    (wf.RetireConnectionIdFrame(2), {"frame_type": "retire_connection_id", "sequence_number": 2}),
    (
        wf.PathChallengeFrame(b"\x01" * 8),
        {"frame_type": "path_challenge", "data": "01" * 8},
    ),
    (wf.PathResponseFrame(b"\x02" * 8), {"frame_type": "path_response", "data": "02" * 8}),
    (
        wf.ConnectionCloseFrame(ErrorCode.FLOW_CONTROL_ERROR, 0x08, "too much"),
        {
            "frame_type": "connection_close",
            "error_space": "transport",
            "error": "flow_control_error",
            "reason": "too much",
            "trigger_frame_type": 8,
        },
    ),
    (
        wf.ConnectionCloseFrame(0x128, 0x06, "bad cert"),
        {
            "frame_type": "connection_close",
            "error_space": "transport",
            "error": "crypto_error_0x128",
            "reason": "bad cert",
            "trigger_frame_type": 6,
        },
    ),
    (
        wf.ConnectionCloseFrame(0x1234, None, "", application=True),
        {
            "frame_type": "connection_close",
            "error_space": "application",
            "error": "unknown",
            "error_code": 0x1234,
        },
    ),
    (wf.HandshakeDoneFrame(), {"frame_type": "handshake_done"}),
    (wf.DatagramFrame(b"d" * 33), {"frame_type": "datagram", "raw": {"length": 33}}),
    (
        wf.AckFrequencyFrame(7, 9, 12500, 3),
        {
            "frame_type": "ack_frequency",
            "sequence_number": 7,
            "ack_eliciting_threshold": 9,
            "request_max_ack_delay": 12.5,
            "reordering_threshold": 3,
        },
    ),
    (wf.ImmediateAckFrame(), {"frame_type": "immediate_ack"}),
]


@pytest.mark.parametrize("frame,expected", CASES, ids=lambda v: type(v).__name__)
def test_frame_fields(frame: wf.Frame, expected: dict[str, typing.Any]) -> None:
    assert F.frame_to_qlog(frame) == expected


def test_every_wire_frame_class_has_a_case() -> None:
    classes = set(typing.get_args(wf.Frame))
    assert classes == {type(frame) for frame, _ in CASES}


def test_decoded_frames_serialize_the_same() -> None:
    """Frames off the wire (memoryview data, merged PADDING) give the same dicts."""
    frames = [frame for frame, _ in CASES if not isinstance(frame, wf.PaddingFrame)]
    payload = wf.encode_frames([*frames, wf.PaddingFrame(5)])
    decoded = wf.decode_frames(payload)
    expected = [exp for frame, exp in CASES if not isinstance(frame, wf.PaddingFrame)]
    expected.append({"frame_type": "padding", "raw": {"length": 5, "payload_length": 5}})
    assert F.frames_to_qlog(decoded) == expected


def test_ack_delay_uses_the_senders_exponent() -> None:
    ack = wf.AckFrame([(0, 1)], delay=1000)
    assert F.frame_to_qlog(ack)["ack_delay"] == 8.0  # 1000 * 2^3 us
    assert F.frame_to_qlog(ack, ack_delay_exponent=0)["ack_delay"] == 1.0
    assert F.frame_to_qlog(ack, ack_delay_exponent=10)["ack_delay"] == 1024.0


def test_builders_match_frame_objects() -> None:
    assert F.stream_frame(5, 70000, 1000, True) == F.frame_to_qlog(
        wf.StreamFrame(5, 70000, b"y" * 1000, True)
    )
    assert F.crypto_frame(0, 90) == F.frame_to_qlog(wf.CryptoFrame(0, b"c" * 90))
    assert F.ack_frame([(0, 1)], 0.5) == {
        "frame_type": "ack",
        "acked_ranges": [[0]],
        "ack_delay": 0.5,
    }
    assert F.unknown_frame(0x40, 3) == {
        "frame_type": "unknown",
        "frame_type_bytes": 0x40,
        "raw": {"length": 3},
    }


def test_error_names() -> None:
    assert F.transport_error(0) == {"error": "no_error"}
    assert F.transport_error(0x10) == {"error": "no_viable_path"}
    assert F.transport_error(0x100) == {"error": "crypto_error_0x100"}
    assert F.transport_error(0x1FF) == {"error": "crypto_error_0x1ff"}
    assert F.transport_error(0x200) == {"error": "unknown", "error_code": 0x200}


def test_packet_header_fields() -> None:
    hdr = E.packet_header(
        PacketType.INITIAL, 0, dcid=CID, scid=b"\x01\x02", version=QUIC_V1, token=b"\x09"
    )
    assert hdr == {
        "packet_type": "initial",
        "packet_number": 0,
        "version": "00000001",
        "scil": 2,
        "scid": "0102",
        "dcil": 8,
        "dcid": "0011223344556677",
        "token": {"raw": {"length": 1, "data": "09"}},
    }
    assert E.packet_header(PacketType.ONE_RTT, 7, key_phase=1) == {
        "packet_type": "1RTT",
        "packet_number": 7,
        "key_phase": 1,
    }
    names = {t: E.packet_header(t)["packet_type"] for t in PacketType}
    assert names == {
        PacketType.INITIAL: "initial",
        PacketType.ZERO_RTT: "0RTT",
        PacketType.HANDSHAKE: "handshake",
        PacketType.RETRY: "retry",
        PacketType.ONE_RTT: "1RTT",
        PacketType.VERSION_NEGOTIATION: "version_negotiation",
        PacketType.UNKNOWN: "unknown",
    }


def test_header_from_wire() -> None:
    long = PacketHeader(True, QUIC_V1, PacketType.HANDSHAKE, CID, b"\x05")
    assert E.header_from_wire(long, 3) == E.packet_header(
        "handshake", 3, dcid=CID, scid=b"\x05", version=QUIC_V1
    )
    short = PacketHeader(False, None, PacketType.ONE_RTT, CID, b"")
    assert E.header_from_wire(short, 9) == {
        "packet_type": "1RTT",
        "packet_number": 9,
        "dcil": 8,
        "dcid": CID.hex(),
    }


def test_packet_event_accepts_frames_or_dicts() -> None:
    hdr = E.packet_header("1RTT", 1)
    from_objects = E.packet_event(hdr, [wf.PingFrame()], size=40)
    from_dicts = E.packet_event(hdr, [{"frame_type": "ping"}], size=40)
    assert (
        from_objects
        == from_dicts
        == {"header": hdr, "frames": [{"frame_type": "ping"}], "raw": {"length": 40}}
    )
    mixed = E.packet_event(hdr, [{"frame_type": "ping"}, wf.HandshakeDoneFrame()])
    assert mixed["frames"] == [{"frame_type": "ping"}, {"frame_type": "handshake_done"}]
    lost = E.packet_event(hdr, trigger="time_threshold")
    assert lost == {"header": hdr, "trigger": "time_threshold"}


def test_parameters_set() -> None:
    params = TransportParameters(
        original_destination_connection_id=CID,
        initial_source_connection_id=b"\x01",
        stateless_reset_token=TOKEN16,
        max_idle_timeout=30000,
        initial_max_data=1 << 20,
        initial_max_streams_bidi=100,
        disable_active_migration=True,
        preferred_address=PreferredAddress(("192.0.2.1", 443), None, b"\x07" * 4, TOKEN16),
        max_datagram_frame_size=1200,
        version_information=VersionInformation(QUIC_V1, [QUIC_V1]),
        grease_quic_bit=True,
        unknown={0x1B: b"\xff"},
    )
    data = E.parameters_set(params, "remote", tls_cipher="TLS_AES_128_GCM_SHA256")
    assert data["initiator"] == "remote"
    assert data["tls_cipher"] == "TLS_AES_128_GCM_SHA256"
    assert data["original_destination_connection_id"] == CID.hex()
    assert data["initial_source_connection_id"] == "01"
    assert "retry_source_connection_id" not in data
    assert data["stateless_reset_token"] == TOKEN16.hex()
    assert data["max_idle_timeout"] == 30000
    assert data["initial_max_data"] == 1 << 20
    assert data["initial_max_streams_bidi"] == 100
    assert data["ack_delay_exponent"] == 3 and data["max_ack_delay"] == 25
    assert data["disable_active_migration"] is True
    assert data["preferred_address"] == {
        "ip_v4": "192.0.2.1",
        "port_v4": 443,
        "connection_id": "07070707",
        "stateless_reset_token": TOKEN16.hex(),
    }
    assert data["unknown_parameters"] == [{"id": 0x1B, "value": "ff"}]
    assert data["max_datagram_frame_size"] == 1200
    assert data["grease_quic_bit"] is True
    local = E.parameters_set(TransportParameters(), "local")
    assert "max_datagram_frame_size" not in local and "grease_quic_bit" not in local
    assert "original_destination_connection_id" not in local


def test_recovery_metrics_units() -> None:
    metrics = {
        "min_rtt": 0.010,
        "smoothed_rtt": 0.0125,
        "latest_rtt": 0.011,
        "rtt_variance": 0.002,
        "pto_count": 0,
        "congestion_window": 14720,
        "bytes_in_flight": 2400,
        "ssthresh": float("inf"),
        "pacing_rate": 1_000_000.0,  # bytes/s
        "not_a_metric": 5,
    }
    data = E.recovery_metrics(metrics)
    assert data == {
        "min_rtt": 10.0,
        "smoothed_rtt": 12.5,
        "latest_rtt": 11.0,
        "rtt_variance": 2.0,
        "pto_count": 0,
        "congestion_window": 14720,
        "bytes_in_flight": 2400,
        "pacing_rate": 8_000_000,
    }
    assert E.recovery_metrics({"ssthresh": 50000.0}) == {"ssthresh": 50000}
    seen: dict[str, typing.Any] = {}
    assert E.metrics_delta(seen, data) == data
    changed = dict(data, bytes_in_flight=1200)
    assert E.metrics_delta(seen, changed) == {"bytes_in_flight": 1200}
    assert E.metrics_delta(seen, changed) == {}


def test_connection_events() -> None:
    closed = E.connection_closed(initiator="remote", error_code=0xA, reason="bad", trigger="error")
    assert closed == {
        "initiator": "remote",
        "connection_error": "protocol_violation",
        "reason": "bad",
        "trigger": "error",
    }
    app = E.connection_closed(
        initiator="local", error_code=7, application=True, trigger="application"
    )
    assert app == {
        "initiator": "local",
        "application_error": "unknown",
        "error_code": 7,
        "trigger": "application",
    }
    assert E.connection_closed(error_code=0x17A)["connection_error"] == "crypto_error_0x17a"
    assert E.connection_closed(trigger="idle_timeout") == {"trigger": "idle_timeout"}
    started = E.connection_started(("127.0.0.1", 4433), ("::1", 5555), local_cid=b"\x01")
    assert started == {
        "local": {"ip_v4": "127.0.0.1", "port_v4": 4433, "connection_ids": ["01"]},
        "remote": {"ip_v6": "::1", "port_v6": 5555},
    }
    assert E.version_information(QUIC_V1, client_versions=[QUIC_V1, 0x6B3343CF]) == {
        "client_versions": ["00000001", "6b3343cf"],
        "chosen_version": "00000001",
    }
    assert E.alpn_information("hq-interop", client_alpns=["hq-interop", b"\xff"]) == {
        "client_alpns": [
            {"byte_value": "68712d696e7465726f70", "string_value": "hq-interop"},
            {"byte_value": "ff"},
        ],
        "chosen_alpn": {"byte_value": "68712d696e7465726f70", "string_value": "hq-interop"},
    }
    assert E.connection_state_updated("handshake_complete") == {"new": "handshake_complete"}


def test_stream_key_migration_and_recovery_events() -> None:
    assert E.stream_state_updated(2, "closed", "sending", old="open", trigger="local") == {
        "stream_id": 2,
        "stream_type": "unidirectional",
        "stream_side": "sending",
        "new": "closed",
        "old": "open",
        "trigger": "local",
    }
    assert E.stream_state_updated(4, "open", "receiving")["stream_type"] == "bidirectional"
    assert E.key_event(True, 1, trigger="tls") == {
        "key_type": "client_handshake_secret",
        "trigger": "tls",
    }
    assert E.key_event(False, 2, key_phase=3, trigger="remote_update") == {
        "key_type": "server_1rtt_secret",
        "key_phase": 3,
        "trigger": "remote_update",
    }
    assert E.key_type(True, "0rtt") == "client_0rtt_secret"
    assert E.migration_state_updated("probing_started", remote=("10.0.0.1", 9)) == {
        "new": "probing_started",
        "tuple_remote": {"ip_v4": "10.0.0.1", "port_v4": 9},
    }
    assert E.tuple_assigned("1", ("10.0.0.1", 9), ("10.0.0.2", 443), remote_cids=[b"\x0a"]) == {
        "tuple_id": "1",
        "tuple_remote": {"ip_v4": "10.0.0.2", "port_v4": 443, "connection_ids": ["0a"]},
        "tuple_local": {"ip_v4": "10.0.0.1", "port_v4": 9},
    }
    assert E.tuple_assigned("1") == {"tuple_id": "1"}  # abandoned
    assert E.connection_id_updated("remote", b"\x01\x02", b"\x03") == {
        "initiator": "remote",
        "old": "03",
        "new": "0102",
    }
    assert set(E.DROP_TRIGGERS.values()) <= PACKET_DROP_TRIGGERS
    assert E.packets_acked(2, [5, 6]) == {
        "packet_number_space": "application_data",
        "packet_numbers": [5, 6],
    }
    assert E.packet_dropped("decryption_failure", size=1200) == {
        "trigger": "decryption_failure",
        "raw": {"length": 1200},
    }
    params = E.recovery_parameters_set(
        reordering_threshold=3,
        time_threshold=9 / 8,
        timer_granularity=0.001,
        initial_rtt=0.333,
        max_datagram_size=1200,
        initial_congestion_window=12000,
        minimum_congestion_window=2400,
        loss_reduction_factor=0.5,
        persistent_congestion_threshold=3,
        congestion_control="cubic",
    )
    assert params["timer_granularity"] == 1 and params["initial_rtt"] == pytest.approx(333.0)
    assert params["congestion_control"] == "cubic"
    assert E.congestion_state_updated("recovery", "slow_start", "loss") == {
        "new": "recovery",
        "old": "slow_start",
        "trigger": "loss",
    }


def test_every_builder_output_validates() -> None:
    """A file holding one of each event passes the strict validator."""
    out = io.BytesIO()
    w = QlogWriter(out, CID, False, start=0.0, close_stream=False)
    hdr = E.packet_header(PacketType.ONE_RTT, 0, dcid=CID)
    w.event("connection_started", E.connection_started(("127.0.0.1", 1), ("127.0.0.1", 2)), 0.0)
    w.event("version_information", E.version_information(QUIC_V1, server_versions=[QUIC_V1]), 0.001)
    w.event("alpn_information", E.alpn_information("h3"), 0.001)
    w.event("parameters_set", E.parameters_set(TransportParameters(), "local"), 0.001)
    w.event(
        "recovery_parameters_set",
        E.recovery_parameters_set(
            reordering_threshold=3,
            time_threshold=1.125,
            timer_granularity=0.001,
            initial_rtt=0.333,
            max_datagram_size=1200,
            initial_congestion_window=12000,
            minimum_congestion_window=2400,
            loss_reduction_factor=0.5,
            persistent_congestion_threshold=3,
        ),
        0.001,
    )
    w.event("packet_sent", E.packet_event(hdr, [frame for frame, _ in CASES], size=1200), 0.002)
    w.event(
        "packet_received",
        E.packet_event(
            E.packet_header("initial", 0, scid=CID, dcid=CID, version=1), [wf.PingFrame()]
        ),
        0.003,
    )
    w.event("packet_lost", E.packet_event(hdr, trigger="reordering_threshold"), 0.004)
    w.event("packets_acked", E.packets_acked(0, [0]), 0.004)
    w.event("packet_dropped", E.packet_dropped("connection_unknown"), 0.004)
    w.event(
        "recovery_metrics_updated",
        E.recovery_metrics({"min_rtt": 0.01, "ssthresh": float("inf")}),
        0.005,
    )
    w.event("congestion_state_updated", E.congestion_state_updated("congestion_avoidance"), 0.005)
    w.event("stream_state_updated", E.stream_state_updated(0, "open", "sending"), 0.005)
    w.event("key_updated", E.key_event(True, 2, key_phase=1, trigger="local_update"), 0.006)
    w.event("key_discarded", E.key_event(True, 0, trigger="tls"), 0.006)
    w.event("migration_state_updated", E.migration_state_updated("migration_complete"), 0.007)
    w.event("tuple_assigned", E.tuple_assigned("1", ("10.0.0.1", 1), ("10.0.0.2", 2)), 0.007)
    w.event("connection_id_updated", E.connection_id_updated("local", b"\x07"), 0.007)
    w.event("connection_state_updated", E.connection_state_updated("closed"), 0.008)
    w.event(
        "connection_closed",
        E.connection_closed(initiator="local", error_code=0, trigger="application"),
        0.008,
    )
    w.close()
    assert validate_bytes(out.getvalue()) == []

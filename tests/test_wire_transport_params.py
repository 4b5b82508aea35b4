"""Transport parameters (RFC 9000 section 18; RFC 9221, 9368, 9287)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicish.errors import DecodeError, ErrorCode
from quicish.wire.buffer import encode_varint
from quicish.wire.transport_params import (
    PreferredAddress,
    TransportParameters,
    VersionInformation,
    find_parameter,
    is_grease_id,
)

TPE = ErrorCode.TRANSPORT_PARAMETER_ERROR
MAXV = (1 << 62) - 1
varints = st.one_of(st.integers(0, 63), st.integers(0, 1 << 20), st.integers(0, MAXV))
cids = st.binary(max_size=20)
ports = st.integers(1, 65535)

ipv4 = st.tuples(st.ip_addresses(v=4).map(str), ports)
ipv6 = st.tuples(st.ip_addresses(v=6).map(str), ports)
preferred = st.builds(
    PreferredAddress,
    st.none() | ipv4,
    st.none() | ipv6,
    st.binary(min_size=1, max_size=20),
    st.binary(min_size=16, max_size=16),
)
KNOWN = {*range(0x00, 0x12), 0x20, 0x2AB2}
unknown_params = st.dictionaries(
    st.one_of(st.integers(0, MAXV), st.integers(0, 1 << 20).map(lambda n: 31 * n + 27)).filter(
        lambda i: i not in KNOWN
    ),
    st.binary(max_size=20),
    max_size=4,
)


def params(server: bool) -> st.SearchStrategy[TransportParameters]:
    def server_only(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
        return st.none() | strategy if server else st.none()

    return st.builds(
        TransportParameters,
        original_destination_connection_id=server_only(cids),
        max_idle_timeout=varints,
        stateless_reset_token=server_only(st.binary(min_size=16, max_size=16)),
        max_udp_payload_size=st.integers(1200, MAXV),
        initial_max_data=varints,
        initial_max_stream_data_bidi_local=varints,
        initial_max_stream_data_bidi_remote=varints,
        initial_max_stream_data_uni=varints,
        initial_max_streams_bidi=st.integers(0, 1 << 60),
        initial_max_streams_uni=st.integers(0, 1 << 60),
        ack_delay_exponent=st.integers(0, 20),
        max_ack_delay=st.integers(0, (1 << 14) - 1),
        disable_active_migration=st.booleans(),
        preferred_address=server_only(preferred),
        active_connection_id_limit=st.integers(2, MAXV),
        initial_source_connection_id=st.none() | cids,
        retry_source_connection_id=server_only(cids),
        max_datagram_frame_size=st.none() | varints,
        version_information=st.none()
        | st.builds(
            VersionInformation,
            st.integers(1, (1 << 32) - 1),
            st.lists(st.integers(1, (1 << 32) - 1), max_size=5),
        ),
        grease_quic_bit=st.booleans(),
        unknown=unknown_params,
    )


@settings(max_examples=300, deadline=None)
@given(params(server=True))
def test_roundtrip_server_params(tp: TransportParameters) -> None:
    assert TransportParameters.decode(tp.encode(), from_server=True) == tp


@settings(max_examples=200, deadline=None)
@given(params(server=False))
def test_roundtrip_client_params(tp: TransportParameters) -> None:
    assert TransportParameters.decode(tp.encode(), from_server=False) == tp


def test_defaults_and_empty() -> None:
    tp = TransportParameters.decode(b"", from_server=True)
    assert tp == TransportParameters()
    assert (tp.max_udp_payload_size, tp.ack_delay_exponent, tp.max_ack_delay) == (65527, 3, 25)
    assert tp.active_connection_id_limit == 2 and tp.max_datagram_frame_size is None
    assert TransportParameters().encode() == b""


def test_known_encoding() -> None:
    tp = TransportParameters(
        initial_source_connection_id=b"\x01\x02",
        initial_max_data=1 << 20,
        disable_active_migration=True,
        max_datagram_frame_size=65535,
        grease_quic_bit=True,
    )
    expected = (
        bytes.fromhex("0f020102")  # initial_source_connection_id
        + bytes.fromhex("040480100000")  # initial_max_data = 2^20 (4-byte varint)
        + bytes.fromhex("0c00")  # disable_active_migration
        + bytes.fromhex("6ab200")  # grease_quic_bit (id 0x2ab2 as a 2-byte varint)
        + bytes.fromhex("20048000ffff")  # max_datagram_frame_size
    )
    assert tp.encode() == expected
    assert TransportParameters.decode(expected, from_server=False) == tp


def test_preferred_address_wire_form() -> None:
    pa = PreferredAddress(("192.0.2.1", 443), None, b"\xaa\xbb", bytes(range(16)))
    wire = pa.encode()
    assert wire == bytes([192, 0, 2, 1, 1, 187]) + bytes(18) + b"\x02\xaa\xbb" + bytes(range(16))
    assert PreferredAddress.decode(wire) == pa
    pa6 = PreferredAddress(None, ("2001:db8::1", 4433), b"c", bytes(16))
    assert PreferredAddress.decode(pa6.encode()) == pa6
    assert ipaddress.IPv6Address("2001:db8::1").packed in pa6.encode()


def test_unknown_and_grease_preserved() -> None:
    grease = 31 * 5 + 27
    assert is_grease_id(grease) and not is_grease_id(0x20)
    wire = encode_varint(grease) + b"\x03abc" + encode_varint(0x7777) + b"\x00"
    tp = TransportParameters.decode(wire, from_server=False)
    assert tp.unknown == {grease: b"abc", 0x7777: b""}
    assert tp.encode() == wire


def _param(param_id: int, value: bytes) -> bytes:
    return encode_varint(param_id) + encode_varint(len(value)) + value


@pytest.mark.parametrize(
    ("wire", "from_server"),
    [
        (_param(0x04, b"\x05") + _param(0x04, b"\x06"), True),  # duplicate
        (_param(0x7777, b"") + _param(0x7777, b""), True),  # duplicate unknown
        (_param(0x03, encode_varint(1199)), True),  # max_udp_payload_size < 1200
        (_param(0x0A, encode_varint(21)), True),  # ack_delay_exponent > 20
        (_param(0x0B, encode_varint(1 << 14)), True),  # max_ack_delay >= 2^14
        (_param(0x0E, encode_varint(1)), True),  # active_connection_id_limit < 2
        (_param(0x08, encode_varint((1 << 60) + 1)), True),  # initial_max_streams_bidi
        (_param(0x09, encode_varint((1 << 60) + 1)), True),  # initial_max_streams_uni
        (_param(0x02, bytes(15)), True),  # stateless_reset_token length
        (_param(0x02, bytes(17)), True),
        (_param(0x00, b"odcid"), False),  # server-only params from a client
        (_param(0x02, bytes(16)), False),
        (_param(0x0D, PreferredAddress(None, None, b"c", bytes(16)).encode()), False),
        (_param(0x10, b"rscid"), False),
        (_param(0x04, b"\x05\x00"), True),  # value longer than its varint
        (_param(0x04, b"\x40"), True),  # value shorter than its varint
        (_param(0x04, b""), True),  # empty integer
        (_param(0x20, b"\x05\x05"), True),
        (_param(0x0C, b"\x00"), True),  # flag with a value
        (_param(0x2AB2, b"\x01"), True),
        (_param(0x0F, bytes(21)), True),  # CID longer than 20
        (_param(0x0D, bytes(6 + 18) + b"\x00" + bytes(16)), True),  # preferred: empty CID
        (_param(0x0D, bytes(6 + 18) + b"\x02ab" + bytes(15)), True),  # preferred: short token
        (_param(0x0D, bytes(10)), True),
        (_param(0x11, b"\x00\x00\x00\x01\x00\x00"), True),  # version_information not 4k
        (_param(0x11, b""), True),
        (_param(0x11, b"\x00\x00\x00\x00"), True),  # chosen version 0
        (b"\x04\x05\x01", True),  # truncated value
        (b"\x40", True),  # truncated id
        (b"\x04", True),  # missing length
    ],
)
def test_invalid_parameters(wire: bytes, from_server: bool) -> None:
    with pytest.raises(DecodeError) as exc:
        TransportParameters.decode(wire, from_server=from_server)
    assert exc.value.code == TPE


def test_server_only_params_accepted_from_server() -> None:
    wire = _param(0x00, b"odcid") + _param(0x02, bytes(16)) + _param(0x10, b"rscid")
    tp = TransportParameters.decode(wire, from_server=True)
    assert tp.original_destination_connection_id == b"odcid"
    assert tp.retry_source_connection_id == b"rscid" and tp.stateless_reset_token == bytes(16)


def test_encode_rejects_out_of_range() -> None:
    for tp in (
        TransportParameters(max_udp_payload_size=1000),
        TransportParameters(ack_delay_exponent=21),
        TransportParameters(stateless_reset_token=b"short"),
        TransportParameters(initial_source_connection_id=bytes(21)),
        TransportParameters(unknown={0x04: b"x"}),
    ):
        with pytest.raises(ValueError):
            tp.encode()


def test_interop_with_aioquic() -> None:
    from aioquic._buffer import Buffer as AioBuffer
    from aioquic.quic.packet import (
        QuicPreferredAddress,
        QuicTransportParameters,
        pull_quic_transport_parameters,
        push_quic_transport_parameters,
    )

    ours = TransportParameters(
        original_destination_connection_id=b"odcid",
        max_idle_timeout=30000,
        stateless_reset_token=bytes(range(16)),
        max_udp_payload_size=1452,
        initial_max_data=1 << 24,
        initial_max_stream_data_bidi_local=1 << 20,
        initial_max_streams_bidi=100,
        ack_delay_exponent=4,
        max_ack_delay=30,
        disable_active_migration=True,
        preferred_address=PreferredAddress(("10.0.0.1", 4433), ("::1", 4434), b"pref", bytes(16)),
        active_connection_id_limit=8,
        initial_source_connection_id=b"iscid",
        max_datagram_frame_size=1200,
    )
    theirs = pull_quic_transport_parameters(AioBuffer(data=ours.encode()))
    assert theirs.max_idle_timeout == 30000 and theirs.max_udp_payload_size == 1452
    assert theirs.initial_max_streams_bidi == 100 and theirs.ack_delay_exponent == 4
    assert theirs.disable_active_migration and theirs.active_connection_id_limit == 8
    assert theirs.initial_source_connection_id == b"iscid"
    assert theirs.preferred_address is not None
    assert theirs.preferred_address.ipv4_address == ("10.0.0.1", 4433)
    assert theirs.preferred_address.ipv6_address == ("::1", 4434)
    assert theirs.max_datagram_frame_size == 1200

    aio = QuicTransportParameters(
        initial_max_data=12345,
        max_ack_delay=40,
        initial_source_connection_id=b"abc",
        preferred_address=QuicPreferredAddress(
            ipv4_address=("127.0.0.1", 1),
            ipv6_address=None,
            connection_id=b"xyz",
            stateless_reset_token=bytes(16),
        ),
    )
    buf = AioBuffer(capacity=512)
    push_quic_transport_parameters(buf, aio)
    decoded = TransportParameters.decode(buf.data, from_server=True)
    assert decoded.initial_max_data == 12345 and decoded.max_ack_delay == 40
    assert decoded.preferred_address == PreferredAddress(("127.0.0.1", 1), None, b"xyz", bytes(16))


def test_find_parameter_reads_one_raw_value() -> None:
    """``find_parameter`` returns the raw value of the first parameter with the id (one-
    and multi-byte varint ids and lengths alike), None when absent, and DecodeError when
    the encoding is truncated before it."""
    tp = TransportParameters(
        initial_source_connection_id=b"\x01" * 8,
        initial_max_data=1 << 20,
        min_ack_delay=1000,
        version_information=VersionInformation(1, [1, 0x6B3343CF]),
    )
    raw = tp.encode()
    assert find_parameter(raw, 0x11) == VersionInformation(1, [1, 0x6B3343CF]).encode()
    assert find_parameter(raw, 0x0F) == b"\x01" * 8
    assert find_parameter(raw, 0x04) == encode_varint(1 << 20)
    assert find_parameter(raw, 0xFF04DE1B) == encode_varint(1000)  # an 8-byte varint id
    assert find_parameter(raw, 0x10) is None
    assert find_parameter(b"", 0x11) is None
    first = find_parameter(raw, 0x0F)
    assert first is not None and raw.startswith(b"\x0f\x08" + first)
    assert find_parameter(raw[:-1], 0x0F) == first  # cut short after it: not looked at
    with pytest.raises(DecodeError):
        find_parameter(b"\x0f\x08\x01\x02", 0x11)  # the CID's value is cut short
    big = b"\x40\x41\x40\x41" + bytes(65) + b"\x11\x04\x00\x00\x00\x01"  # 2-byte id, length
    assert find_parameter(big, 0x11) == b"\x00\x00\x00\x01"
    assert find_parameter(big, 0x41) == bytes(65)

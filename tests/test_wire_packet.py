"""Packet headers, packet numbers and varints (RFC 9000 sections 16, 17, Appendix A)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from quicish.errors import DecodeError, ErrorCode
from quicish.wire.buffer import decode_varint, encode_varint
from quicish.wire.packet import (
    QUIC_V1,
    QUIC_V2,
    PacketType,
    check_reserved_bits,
    decode_packet_number,
    encode_long_header,
    encode_packet_number,
    encode_retry,
    encode_short_header,
    encode_version_negotiation,
    iter_packets,
    long_type_bits,
    packet_type_from_bits,
    parse_header,
    verify_retry,
)

VECTORS = Path(__file__).resolve().parent / "vectors"
A9000: dict[str, Any] = json.loads((VECTORS / "rfc9000_appendix_a.json").read_text())
A9001: dict[str, Any] = json.loads((VECTORS / "rfc9001_appendix_a.json").read_text())
PV = ErrorCode.PROTOCOL_VIOLATION
FAST = settings(max_examples=200, deadline=None)

cids = st.binary(max_size=20)
LONG_TYPES = [PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE]


# ---- RFC 9000 Appendix A ------------------------------------------------------------------------
@pytest.mark.parametrize("sample", A9000["varint_samples"], ids=lambda s: s["hex"])
def test_varint_examples(sample: dict[str, Any]) -> None:
    data = bytes.fromhex(sample["hex"])
    assert decode_varint(data, 0) == (sample["value"], len(data))
    if sample["hex"] != "4025":  # the non-minimal two-byte encoding of 37
        assert encode_varint(sample["value"]) == data


@pytest.mark.parametrize("ex", A9000["pn_encoding"], ids=lambda e: str(e["full_pn"]))
def test_packet_number_encoding_examples(ex: dict[str, Any]) -> None:
    truncated, length = encode_packet_number(ex["full_pn"], ex["largest_acked"])
    assert length == ex["bytes"]
    assert truncated == ex["full_pn"] & ((1 << (8 * length)) - 1)


@pytest.mark.parametrize("ex", A9000["pn_decoding"], ids=lambda e: str(e["full_pn"]))
def test_packet_number_decoding_examples(ex: dict[str, Any]) -> None:
    got = decode_packet_number(ex["truncated"], ex["bits"], ex["largest_received"])
    assert got == ex["full_pn"]


def test_packet_number_edges() -> None:
    assert encode_packet_number(0, None) == (0, 1)
    assert encode_packet_number(127, None) == (127, 1)  # 128 unacked: 1 byte is enough
    assert encode_packet_number(128, None) == (128, 2)
    assert encode_packet_number(300, 299) == (300 & 0xFF, 1)
    assert decode_packet_number(0, 8, None) == 0
    assert decode_packet_number(0xFF, 8, 0x100) == 0xFF  # just below the window
    assert decode_packet_number(0x00, 8, 0x1FF) == 0x200
    with pytest.raises(ValueError):
        encode_packet_number(5, 5)
    with pytest.raises(ValueError):
        encode_packet_number(1 << 40, 0)  # more than 2^31 unacked


@FAST
@given(
    st.one_of(st.none(), st.integers(0, (1 << 62) - (1 << 32))),
    st.integers(1, (1 << 31) - 1),
    st.data(),
)
def test_packet_number_roundtrip(largest_acked: int | None, gap: int, data: st.DataObject) -> None:
    base = -1 if largest_acked is None else largest_acked
    full = base + gap
    truncated, length = encode_packet_number(full, largest_acked)
    assert 1 <= length <= 4
    largest_received = data.draw(st.integers(base, full - 1))
    rx = None if largest_received == -1 else largest_received
    assert decode_packet_number(truncated, 8 * length, rx) == full


# ---- RFC 9001 Appendix A headers ----------------------------------------------------------------
def test_client_initial_header_vector() -> None:
    vec = A9001["client_initial_packet"]
    dcid = bytes.fromhex(A9001["client_dcid"]) if "client_dcid" in A9001 else b""
    header = encode_long_header(PacketType.INITIAL, QUIC_V1, dcid, b"", b"", 1182 - 4, 2, 4)
    assert header.hex() == vec["plain_header"]
    protected = bytes.fromhex(vec["protected_packet"])
    h = parse_header(protected)
    assert (h.is_long, h.version, h.packet_type) == (True, QUIC_V1, PacketType.INITIAL)
    assert h.dcid == dcid and h.scid == b"" and h.token == b""
    assert (h.pn_offset, h.packet_end) == (18, 1200) == (18, len(protected))


def test_server_initial_header_vector() -> None:
    vec = A9001["server_initial_packet"]
    scid = bytes.fromhex("f067a5502a4262b5")
    header = encode_long_header(PacketType.INITIAL, QUIC_V1, b"", scid, b"", 0x75 - 2, 1, 2)
    assert header.hex() == vec["plain_header"]
    h = parse_header(bytes.fromhex(vec["protected_packet"]))
    assert h.scid == scid and h.dcid == b""
    assert h.pn_offset == len(header) - 2
    assert h.packet_end == len(bytes.fromhex(vec["protected_packet"]))


def test_chacha_short_header_vector() -> None:
    vec = A9001["chacha20_short_header"]
    assert encode_short_header(b"", vec["packet_number"], 3).hex() == vec["plain_header"]
    packet = bytes.fromhex(vec["protected_packet"])
    h = parse_header(packet, short_dcid_len=0)
    assert (h.is_long, h.packet_type, h.dcid, h.version) == (False, PacketType.ONE_RTT, b"", None)
    assert (h.pn_offset, h.packet_end) == (1, len(packet))


def _retry_tag_independent(pseudo: bytes) -> bytes:
    key = bytes.fromhex(A9001["retry_integrity_key_v1"])
    nonce = bytes.fromhex(A9001["retry_integrity_nonce_v1"])
    return AESGCM(key).encrypt(nonce, b"", pseudo)


def test_retry_vector_v1() -> None:
    vec = A9001["retry_packet"]
    odcid = bytes.fromhex(vec["original_dcid"])
    scid = bytes.fromhex(vec["scid"])
    token = bytes.fromhex(vec["token"])
    packet = encode_retry(QUIC_V1, b"", scid, odcid, token)
    assert packet.hex() == vec["packet"]
    # the tag, computed independently of quicish.wire.protection
    body = packet[:-16]
    assert _retry_tag_independent(bytes([len(odcid)]) + odcid + body) == packet[-16:]
    assert verify_retry(packet, odcid)
    assert not verify_retry(packet, odcid[:-1] + b"\x00")
    assert not verify_retry(packet[:-1] + bytes([packet[-1] ^ 1]), odcid)
    h = parse_header(packet)
    assert h.packet_type == PacketType.RETRY and h.version == QUIC_V1
    assert (h.scid, h.retry_token, h.integrity_tag.hex()) == (scid, token, vec["integrity_tag"])


def test_retry_vector_v2() -> None:
    # RFC 9369 Appendix A.4
    odcid = bytes.fromhex("8394c8f03e515708")
    packet = encode_retry(QUIC_V2, b"", bytes.fromhex("f067a5502a4262b5"), odcid, b"token")
    expected = "cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6"
    assert packet.hex() == expected
    assert verify_retry(packet, odcid)
    assert parse_header(packet).packet_type == PacketType.RETRY


@FAST
@given(st.sampled_from([QUIC_V1, QUIC_V2]), cids, cids, cids, st.binary(min_size=1, max_size=64))
def test_retry_roundtrip(
    version: int, dcid: bytes, scid: bytes, odcid: bytes, token: bytes
) -> None:
    packet = encode_retry(version, dcid, scid, odcid, token)
    h = parse_header(packet)
    assert (h.packet_type, h.version, h.dcid, h.scid) == (PacketType.RETRY, version, dcid, scid)
    assert h.retry_token == token and h.packet_end == len(packet)
    assert verify_retry(packet, odcid)
    assert not verify_retry(packet, odcid + b"x")


def test_retry_with_empty_token_rejected() -> None:
    packet = bytes.fromhex(A9001["retry_packet"]["packet"])
    without_token = packet[: -16 - 5] + packet[-16:]
    with pytest.raises(DecodeError) as exc:
        parse_header(without_token)
    assert exc.value.code == PV
    with pytest.raises(ValueError):
        encode_retry(QUIC_V1, b"", b"", b"", b"")


# ---- long and short header round trips ----------------------------------------------------------
def test_long_type_bits_v1_v2() -> None:
    v1 = [long_type_bits(t, QUIC_V1) for t in (*LONG_TYPES, PacketType.RETRY)]
    v2 = [long_type_bits(t, QUIC_V2) for t in (*LONG_TYPES, PacketType.RETRY)]
    assert v1 == [0, 1, 2, 3]
    assert v2 == [1, 2, 3, 0]
    for bits in range(4):
        assert long_type_bits(packet_type_from_bits(bits, QUIC_V2), QUIC_V2) == bits
    with pytest.raises(ValueError):
        long_type_bits(PacketType.ONE_RTT, QUIC_V1)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(LONG_TYPES),
    st.sampled_from([QUIC_V1, QUIC_V2]),
    cids,
    cids,
    st.binary(max_size=40),
    st.integers(0, 20000),
    st.integers(0, (1 << 32) - 1),
    st.integers(1, 4),
    st.binary(max_size=8),
)
def test_long_header_roundtrip(
    ptype: PacketType,
    version: int,
    dcid: bytes,
    scid: bytes,
    token: bytes,
    payload_length: int,
    pn: int,
    pn_length: int,
    trailer: bytes,
) -> None:
    if ptype != PacketType.INITIAL:
        token = b""
    header = encode_long_header(ptype, version, dcid, scid, token, payload_length, pn, pn_length)
    assert header[0] & 0xC0 == 0xC0 and header[0] & 0x03 == pn_length - 1
    assert (header[0] >> 4) & 3 == long_type_bits(ptype, version)
    datagram = header + bytes(payload_length) + trailer
    h = parse_header(datagram)
    assert (h.is_long, h.version, h.packet_type) == (True, version, ptype)
    assert (h.dcid, h.scid, h.token) == (dcid, scid, token)
    assert h.pn_offset == len(header) - pn_length
    assert h.packet_end == len(header) + payload_length
    pn_bytes = datagram[h.pn_offset : h.pn_offset + pn_length]
    assert int.from_bytes(pn_bytes, "big") == pn & ((1 << (8 * pn_length)) - 1)
    assert h.first_byte == header[0]


@FAST
@given(st.binary(max_size=20), st.integers(0, (1 << 32) - 1), st.integers(1, 4), st.booleans(),
       st.booleans(), st.binary(max_size=50))  # fmt: skip
def test_short_header_roundtrip(
    dcid: bytes, pn: int, pn_length: int, spin: bool, key_phase: bool, payload: bytes
) -> None:
    header = encode_short_header(dcid, pn, pn_length, spin=spin, key_phase=key_phase)
    assert header[0] & 0xC0 == 0x40
    assert bool(header[0] & 0x20) == spin and bool(header[0] & 0x04) == key_phase
    assert header[0] & 0x03 == pn_length - 1
    packet = header + payload
    h = parse_header(packet, short_dcid_len=len(dcid))
    assert (h.is_long, h.packet_type, h.dcid, h.spin_bit) == (False, PacketType.ONE_RTT, dcid, spin)
    assert (h.pn_offset, h.packet_end) == (1 + len(dcid), len(packet))
    assert int.from_bytes(packet[h.pn_offset : h.pn_offset + pn_length], "big") == pn % (
        1 << (8 * pn_length)
    )


@FAST
@given(st.binary(max_size=255), st.binary(max_size=255),
       st.lists(st.integers(0, (1 << 32) - 1), min_size=1, max_size=10))  # fmt: skip
def test_version_negotiation_roundtrip(dcid: bytes, scid: bytes, versions: list[int]) -> None:
    packet = encode_version_negotiation(dcid, scid, versions)
    assert packet[0] & 0xC0 == 0xC0 and packet[1:5] == b"\x00\x00\x00\x00"
    h = parse_header(packet)
    assert (h.packet_type, h.version) == (PacketType.VERSION_NEGOTIATION, 0)
    assert (h.dcid, h.scid, list(h.supported_versions)) == (dcid, scid, versions)
    assert h.packet_end == len(packet)


def test_version_negotiation_fixed_bit_ignored_and_bad_length() -> None:
    packet = bytearray(encode_version_negotiation(b"ab", b"cd", [QUIC_V1]))
    packet[0] = 0x80
    assert parse_header(bytes(packet)).supported_versions == (QUIC_V1,)
    for bad in (bytes(packet) + b"\x01", bytes(packet[:-4])):
        with pytest.raises(DecodeError) as exc:
            parse_header(bad)
        assert exc.value.code == PV


# ---- coalescing and invariants ------------------------------------------------------------------
def _packet(ptype: PacketType, dcid: bytes, body: int, version: int = QUIC_V1) -> bytes:
    token = b"tok" if ptype == PacketType.INITIAL else b""
    return encode_long_header(ptype, version, dcid, b"s", token, body, 7, 2) + bytes([0xAA]) * body


def test_coalesced_packets() -> None:
    dcid = b"12345678"
    initial = _packet(PacketType.INITIAL, dcid, 30)
    handshake = _packet(PacketType.HANDSHAKE, dcid, 25)
    short = encode_short_header(dcid, 9, 1) + b"\xbb" * 30
    datagram = initial + handshake + short
    headers = list(iter_packets(datagram, short_dcid_len=8))
    assert [h.packet_type for h in headers] == [
        PacketType.INITIAL,
        PacketType.HANDSHAKE,
        PacketType.ONE_RTT,
    ]
    assert [h.packet_end for h in headers] == [
        len(initial),
        len(initial) + len(handshake),
        len(datagram),
    ]
    second = parse_header(datagram, headers[0].packet_end)
    assert second == headers[1]
    assert headers[0].token == b"tok"


def test_coalesced_packet_with_other_dcid_skipped() -> None:
    datagram = _packet(PacketType.INITIAL, b"aaaa", 20) + _packet(PacketType.HANDSHAKE, b"bbbb", 20)
    datagram += _packet(PacketType.HANDSHAKE, b"aaaa", 21)
    headers = list(iter_packets(datagram, 4))
    assert [(h.packet_type, h.dcid) for h in headers] == [
        (PacketType.INITIAL, b"aaaa"),
        (PacketType.HANDSHAKE, b"aaaa"),
    ]
    assert headers[1].packet_end == len(datagram)


def test_malformed_coalesced_tail_raises_after_good_packets() -> None:
    datagram = _packet(PacketType.HANDSHAKE, b"aaaa", 20) + b"\x00\x00\x00"
    it = iter_packets(datagram, 4)
    assert next(it).packet_type == PacketType.HANDSHAKE
    with pytest.raises(DecodeError):
        next(it)


def test_fixed_bit_clear_rejected_unless_greased() -> None:
    short = bytearray(encode_short_header(b"abcd", 1, 1) + b"x" * 20)
    short[0] &= ~0x40
    long = bytearray(_packet(PacketType.HANDSHAKE, b"abcd", 20))
    long[0] &= ~0x40
    for packet in (bytes(short), bytes(long)):
        with pytest.raises(DecodeError) as exc:
            parse_header(packet, short_dcid_len=4)
        assert exc.value.code == PV
        assert parse_header(packet, short_dcid_len=4, grease_quic_bit=True).dcid == b"abcd"


def test_cid_longer_than_20_rejected_for_v1_but_parsed_for_unknown_versions() -> None:
    long_cid = b"c" * 21
    v1 = b"\xc0" + QUIC_V1.to_bytes(4, "big") + bytes([21]) + long_cid + b"\x00\x00\x01\x00"
    with pytest.raises(DecodeError) as exc:
        parse_header(v1)
    assert exc.value.code == PV
    for n in (21, 255):
        cid = bytes(range(n))
        unknown = b"\xc0\x1a\x2a\x3a\x4a" + bytes([n]) + cid + bytes([n]) + cid + bytes(1200)
        h = parse_header(unknown)
        assert (h.packet_type, h.version) == (PacketType.UNKNOWN, 0x1A2A3A4A)
        assert (h.dcid, h.scid, h.packet_end) == (cid, cid, len(unknown))
    with pytest.raises(ValueError):
        encode_long_header(PacketType.INITIAL, QUIC_V1, long_cid, b"", b"", 20, 0, 1)


def test_length_beyond_datagram_rejected() -> None:
    packet = _packet(PacketType.HANDSHAKE, b"abcd", 20)
    with pytest.raises(DecodeError) as exc:
        parse_header(packet[:-1])
    assert exc.value.code == PV


def test_every_truncation_of_a_long_header_is_a_decode_error() -> None:
    packet = _packet(PacketType.INITIAL, b"abcdefgh", 20)
    header_len = parse_header(packet).pn_offset
    for n in range(header_len):
        with pytest.raises(DecodeError):
            parse_header(packet[:n])


def test_offset_past_end_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        parse_header(b"\x40abc", offset=4)
    with pytest.raises(DecodeError):
        parse_header(b"\x40abc", short_dcid_len=8)


def test_encoder_argument_checks() -> None:
    with pytest.raises(ValueError):
        encode_long_header(PacketType.HANDSHAKE, QUIC_V1, b"", b"", b"tok", 20, 0, 1)
    with pytest.raises(ValueError):
        encode_long_header(PacketType.RETRY, QUIC_V1, b"", b"", b"", 20, 0, 1)
    with pytest.raises(ValueError):
        encode_long_header(PacketType.INITIAL, QUIC_V1, b"", b"", b"", 20, 0, 5)
    with pytest.raises(ValueError):
        encode_short_header(b"", 0, 0)
    with pytest.raises(ValueError):
        encode_version_negotiation(b"", b"", [])


def test_header_parse_agrees_with_aioquic() -> None:
    from aioquic._buffer import Buffer as AioBuffer
    from aioquic.quic.packet import QuicPacketType, pull_quic_header

    dcid = bytes(range(8))
    for version in (QUIC_V1, QUIC_V2):
        packet = encode_long_header(PacketType.INITIAL, version, dcid, b"srcid", b"token", 40, 3, 2)
        packet += bytes(40)
        ours = parse_header(packet)
        theirs = pull_quic_header(AioBuffer(data=packet), host_cid_length=8)
        assert theirs.packet_type == QuicPacketType.INITIAL
        assert (theirs.destination_cid, theirs.source_cid, theirs.token) == (
            ours.dcid,
            ours.scid,
            ours.token,
        )
        assert theirs.version == ours.version


def test_reserved_bits_check() -> None:
    for ok in (0xC3, 0xF0, 0x47, 0x64, 0x40):
        check_reserved_bits(ok)
    for bad in (0xC4, 0xC8, 0x48, 0x50):
        with pytest.raises(DecodeError) as exc:
            check_reserved_bits(bad)
        assert exc.value.code == PV

"""Packet target: header parsing and the unprotect path (header protection removal,
packet number decoding, AEAD open), C packet cipher against the Python path.

Input: one selector byte, then the bytes.

* Selector bit 7 clear (open): the bytes are a datagram. ``parse_header`` walks its
  coalesced packets (with a short-header DCID length of ``selector & 0x1f`` mod 21); each
  Initial is opened with the Initial keys derived from its own DCID, every other packet
  with fixed keys of the suite ``(selector >> 5) & 3`` (AES-128, AES-256, ChaCha20, and
  AES-128 again with a largest received packet number of 0x12345 instead of none).
  Acceptable: DecodeError from the parser, DecryptionError from the open; the C and the
  Python path must give the same result, and an opened payload goes to the frame decoder.
* Selector bit 7 set (seal): the bytes are ``first, header length, 4 pn bytes, rest``; a
  header and payload built from them are sealed and opened again on both paths. Acceptable:
  ValueError from seal for a payload too short to sample (the sender pads); otherwise both
  paths give the same bytes and the open returns the header, payload and packet number.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from quicish.errors import DecodeError, DecryptionError
from quicish.wire.frames import CryptoFrame, PaddingFrame, PingFrame, StreamFrame, encode_frames
from quicish.wire.packet import (
    QUIC_V1,
    QUIC_V2,
    PacketType,
    check_reserved_bits,
    encode_long_header,
    encode_retry,
    encode_short_header,
    encode_version_negotiation,
    parse_header,
)
from quicish.wire.protection import CipherSuite, PacketProtector, initial_secrets

from . import frames as frames_target
from .common import wire_inputs

SUITES = (CipherSuite.AES_128_GCM_SHA256, CipherSuite.AES_256_GCM_SHA384,
          CipherSuite.CHACHA20_POLY1305_SHA256)  # fmt: skip
SECRET: dict[int, bytes] = {CipherSuite.AES_256_GCM_SHA384: bytes(range(48))}
Pair = tuple[PacketProtector, PacketProtector]  # (C path if available, Python path)


def _pair(suite: int, secret: bytes, version: int) -> Pair:
    return (
        PacketProtector.from_secret(suite, secret, version),
        PacketProtector.from_secret(suite, secret, version, accelerate=False),
    )


@functools.lru_cache(maxsize=8)
def fixed_keys(suite: int, version: int = QUIC_V1) -> Pair:
    """The fixed (1-RTT, Handshake, 0-RTT) keys of the target."""
    return _pair(suite, SECRET.get(suite, bytes(range(32))), version)


@functools.lru_cache(maxsize=64)
def initial_keys(dcid: bytes, version: int) -> Pair:
    """A server's Initial read keys for a client Initial to ``dcid``."""
    return _pair(CipherSuite.AES_128_GCM_SHA256, initial_secrets(dcid, version)[0], version)


def _open(p: PacketProtector, packet: memoryview, pn_offset: int, largest: int) -> object:
    try:
        return p.open_packet(packet, pn_offset, largest)
    except DecryptionError:
        return DecryptionError


def _unmask(p: PacketProtector, packet: memoryview, pn_offset: int) -> object:
    try:
        return p.remove_header_protection(packet, pn_offset)
    except DecryptionError:
        return DecryptionError


def _open_mode(selector: int, data: bytes) -> None:
    dcid_len = (selector & 0x1F) % 21
    suite = SUITES[((selector >> 5) & 3) % len(SUITES)]
    largest = 0x12345 if (selector >> 5) & 3 == 3 else -1
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        try:
            header = parse_header(data, offset, dcid_len)
        except DecodeError:
            return
        start, offset = offset, header.packet_end
        assert start < header.pn_offset <= header.packet_end <= len(data), header
        assert header.is_long == bool(data[start] & 0x80)
        if header.packet_type is PacketType.INITIAL:
            assert header.version is not None
            keys = initial_keys(header.dcid, header.version)
        elif header.packet_type in (PacketType.HANDSHAKE, PacketType.ZERO_RTT):
            assert header.version is not None
            keys = fixed_keys(suite, header.version)
        elif header.packet_type is PacketType.ONE_RTT:
            keys = fixed_keys(suite)
        else:
            continue  # Retry, Version Negotiation, unknown versions: nothing to open
        packet = view[start:offset]
        pn_offset = header.pn_offset - start
        c_path, py_path = keys
        unmasked = _unmask(c_path, packet, pn_offset)
        assert unmasked == _unmask(py_path, packet, pn_offset), "header protection differs"
        opened = _open(c_path, packet, pn_offset, largest)
        assert opened == _open(py_path, packet, pn_offset, largest), "C and Python open differ"
        if isinstance(opened, tuple):
            plain_header, payload, _ = opened
            try:
                check_reserved_bits(plain_header[0])
            except DecodeError:
                continue
            frames_target.one_input(frames_target.encode(PacketType(header.packet_type), payload))


def _seal(p: PacketProtector, header: bytes, payload: bytes, pn: int) -> object:
    try:
        return p.seal_packet(header, payload, pn)
    except ValueError:
        return ValueError


def _seal_mode(selector: int, data: bytes) -> None:
    if len(data) < 6:
        return
    c_path, py_path = fixed_keys(SUITES[selector % len(SUITES)])
    first, hlen, pn_bytes, rest = data[0], data[1] % 48, data[2:6], data[6:]
    pn_len = (first & 3) + 1
    header = bytes((first,)) + rest[:hlen] + pn_bytes[4 - pn_len :]
    payload = rest[hlen:]
    pn = int.from_bytes(pn_bytes[4 - pn_len :], "big")
    sealed = _seal(c_path, header, payload, pn)
    assert sealed == _seal(py_path, header, payload, pn), "C and Python seal differ"
    if not isinstance(sealed, bytes):
        assert len(payload) < 4 - pn_len, "seal refused a payload long enough to sample"
        return
    pn_offset = len(header) - pn_len
    for p in (c_path, py_path):
        assert p.open_packet(sealed, pn_offset, pn - 1) == (header, payload, pn), "round trip"


def one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] & 0x80:
        _seal_mode(data[0], data[1:])
    else:
        _open_mode(data[0], data[1:])


def encode_open(datagram: bytes, dcid_len: int = 8, suite: int = 0) -> bytes:
    """An open-mode input of this target."""
    return bytes((dcid_len | suite << 5,)) + datagram


def _sealed(ptype: PacketType, version: int, dcid: bytes, payload: bytes, pn: int) -> bytes:
    c_path = (initial_keys(dcid, version) if ptype is PacketType.INITIAL
              else fixed_keys(SUITES[0], version))[0]  # fmt: skip
    if ptype is PacketType.ONE_RTT:
        header = encode_short_header(dcid, pn & 0xFF, 1)
    else:
        token = b"" if ptype is not PacketType.INITIAL else b"tok"
        header = encode_long_header(ptype, version, dcid, b"scid", token, len(payload) + 16,
                                    pn & 0xFFFF, 2)  # fmt: skip
    return c_path.seal_packet(header, payload, pn)


def seeds() -> Iterator[tuple[str, bytes]]:
    dcid = bytes(range(8))
    hello = encode_frames([CryptoFrame(0, b"\x01\x00\x00\x10" + bytes(16)), PaddingFrame(40)])
    app = encode_frames([StreamFrame(0, 0, b"GET /\r\n", True), PingFrame()])
    for version in (QUIC_V1, QUIC_V2):
        tag = "v1" if version == QUIC_V1 else "v2"
        initial = _sealed(PacketType.INITIAL, version, dcid, hello, 0)
        yield f"seed-initial-{tag}", encode_open(initial)
        handshake = _sealed(PacketType.HANDSHAKE, version, dcid, app[:-1] + b"\x01", 3)
        yield f"seed-initial-handshake-{tag}", encode_open(initial + handshake)
    yield "seed-short", encode_open(_sealed(PacketType.ONE_RTT, QUIC_V1, dcid, app, 7))
    yield "seed-vn", encode_open(encode_version_negotiation(b"abc", dcid, [QUIC_V1, QUIC_V2]))
    yield "seed-retry", encode_open(encode_retry(QUIC_V1, b"abc", dcid, b"odcid123", b"token"))
    yield "seed-seal-short", bytes((0x80,)) + bytes((0x41, 8)) + (7).to_bytes(4, "big") + dcid + app
    yield "seed-seal-long", bytes((0x81,)) + bytes((0xE3, 20)) + bytes(4) + bytes(20) + app


def from_wire() -> Iterator[tuple[str, bytes]]:
    """Inputs made from the ``tests/corpus/wire`` regression files."""
    for name, _, data in wire_inputs(("header", "packets")):
        yield f"wire-{name}", encode_open(data)

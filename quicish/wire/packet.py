"""Packet headers (RFC 9000 sections 12.2, 17; RFC 8999 invariants; RFC 9369 v2 type bits).

:func:`parse_header` reads the unprotected part of a header: the packet number and the
low bits of the first byte are still under header protection, so it reports where the
packet number starts (``pn_offset``) and where the packet ends (``packet_end``); both are
absolute offsets into the datagram. For coalesced packets call it again at ``packet_end``,
or use :func:`iter_packets`.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

from ..errors import DecodeError, ErrorCode
from .buffer import encode_varint

# re-exported: the one definition is in pn.py (protection.py needs it without this module)
from .pn import decode_packet_number as decode_packet_number
from .pn import encode_packet_number as encode_packet_number

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF
SUPPORTED_VERSIONS = (QUIC_V1, QUIC_V2)

MAX_CID_LENGTH = 20  # RFC 9000 section 17.2 (v1 and v2)
RETRY_TAG_SIZE = 16

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!L")
_HEADER_FORM = 0x80
_FIXED_BIT = 0x40
_SPIN_BIT = 0x20
_KEY_PHASE_BIT = 0x04
LONG_RESERVED_BITS = 0x0C
"""Reserved bits of a long header's unprotected first byte (RFC 9000 section 17.2)."""
SHORT_RESERVED_BITS = 0x18
"""Reserved bits of a short header's unprotected first byte (RFC 9000 section 17.3.1)."""
_PV = ErrorCode.PROTOCOL_VIOLATION

BytesLike = bytes | bytearray | memoryview


class PacketType(IntEnum):
    """Packet types; long-header type bits depend on the version (:func:`long_type_bits`)."""

    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    RETRY = 3
    ONE_RTT = 4
    VERSION_NEGOTIATION = 5
    #: Long header of a version this codec cannot interpret: only the RFC 8999 invariant
    #: fields (version, CIDs) are parsed, e.g. to answer with Version Negotiation.
    UNKNOWN = 6


# long header type bits (first byte bits 0x30 >> 4) per version
_V1_TYPES = (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE, PacketType.RETRY)
_V2_TYPES = (PacketType.RETRY, PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE)
_V1_BITS = {t: bits for bits, t in enumerate(_V1_TYPES)}
_V2_BITS = {t: bits for bits, t in enumerate(_V2_TYPES)}


def long_type_bits(packet_type: PacketType, version: int) -> int:
    """The 2-bit long packet type of ``packet_type`` in ``version`` (v2 per RFC 9369)."""
    table = _V2_BITS if version == QUIC_V2 else _V1_BITS
    try:
        return table[packet_type]
    except KeyError:
        raise ValueError(f"{packet_type!r} has no long header type") from None


def packet_type_from_bits(bits: int, version: int) -> PacketType:
    """Inverse of :func:`long_type_bits`."""
    return (_V2_TYPES if version == QUIC_V2 else _V1_TYPES)[bits & 3]


@dataclass(slots=True)
class PacketHeader:
    """The unprotected fields of one packet.

    ``first_byte`` is as received (still header-protected for Initial/0-RTT/Handshake/1-RTT).
    ``version`` is None for short headers. For Retry: ``retry_token`` and ``integrity_tag``;
    for Version Negotiation: ``supported_versions``. For Retry, Version Negotiation and
    unknown versions ``pn_offset`` is where the type-specific payload starts.
    """

    is_long: bool
    version: int | None
    packet_type: PacketType
    dcid: bytes
    scid: bytes = b""
    token: bytes = b""
    pn_offset: int = 0
    packet_end: int = 0
    first_byte: int = 0
    supported_versions: tuple[int, ...] = ()
    retry_token: bytes = b""
    integrity_tag: bytes = b""

    @property
    def spin_bit(self) -> bool:
        """Latency spin bit of a short header (not header-protected)."""
        return not self.is_long and bool(self.first_byte & _SPIN_BIT)


def _read_cid(data: BytesLike, pos: int, end: int, limit: int) -> tuple[bytes, int]:
    if pos >= end:
        raise DecodeError("truncated connection ID length", _PV)
    n = data[pos]
    pos += 1
    if n > limit:
        raise DecodeError(f"connection ID of {n} bytes", _PV)
    if pos + n > end:
        raise DecodeError("truncated connection ID", _PV)
    return bytes(data[pos : pos + n]), pos + n


def _read_varint(data: BytesLike, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise DecodeError("truncated varint", _PV)
    first = data[pos]
    if first < 0x40:  # one byte: an empty token's length, a short Length
        return first, pos + 1
    n = 1 << (first >> 6)
    if pos + n > end:
        raise DecodeError("truncated varint", _PV)
    value = first & 0x3F
    for i in range(pos + 1, pos + n):
        value = (value << 8) | data[i]
    return value, pos + n


def parse_header(
    data: BytesLike, offset: int = 0, short_dcid_len: int = 8, *, grease_quic_bit: bool = False
) -> PacketHeader:
    """Parse the header of the packet starting at ``offset`` in ``data``.

    ``short_dcid_len`` is the length of our connection IDs (short headers do not carry it).
    ``grease_quic_bit=True`` accepts a clear fixed bit (we advertised RFC 9287 grease_quic_bit).
    Raises :class:`DecodeError` (PROTOCOL_VIOLATION) on malformed or truncated headers.
    """
    end = len(data)
    if offset < 0 or offset >= end:
        raise DecodeError("empty packet", _PV)
    first = data[offset]
    if not first & _HEADER_FORM:
        if not first & _FIXED_BIT and not grease_quic_bit:
            raise DecodeError("fixed bit is clear", _PV)
        pn_offset = offset + 1 + short_dcid_len
        if pn_offset > end:
            raise DecodeError("truncated short header", _PV)
        return PacketHeader(
            False, None, PacketType.ONE_RTT, bytes(data[offset + 1 : pn_offset]), b"", b"",
            pn_offset, end, first,
        )  # fmt: skip

    if offset + 5 > end:
        raise DecodeError("truncated long header", _PV)
    version = int(_U32.unpack_from(data, offset + 1)[0])
    known = version in SUPPORTED_VERSIONS
    limit = MAX_CID_LENGTH if known else 255
    dcid, pos = _read_cid(data, offset + 5, end, limit)
    scid, pos = _read_cid(data, pos, end, limit)

    if version == 0:
        count, rest = divmod(end - pos, 4)
        if rest or not count:
            raise DecodeError("malformed Version Negotiation", _PV)
        versions = tuple(int(_U32.unpack_from(data, pos + 4 * i)[0]) for i in range(count))
        return PacketHeader(
            True, 0, PacketType.VERSION_NEGOTIATION, dcid, scid, b"", pos, end, first, versions
        )
    if not known:
        return PacketHeader(True, version, PacketType.UNKNOWN, dcid, scid, b"", pos, end, first)
    if not first & _FIXED_BIT and not grease_quic_bit:
        raise DecodeError("fixed bit is clear", _PV)

    packet_type = (_V2_TYPES if version == QUIC_V2 else _V1_TYPES)[(first >> 4) & 3]
    if packet_type is PacketType.RETRY:
        tag_pos = end - RETRY_TAG_SIZE
        if tag_pos <= pos:
            raise DecodeError("Retry without token", _PV)
        return PacketHeader(
            True, version, packet_type, dcid, scid, b"", pos, end, first, (),
            bytes(data[pos:tag_pos]), bytes(data[tag_pos:end]),
        )  # fmt: skip

    token = b""
    if packet_type is PacketType.INITIAL:
        token_length, pos = _read_varint(data, pos, end)
        if pos + token_length > end:
            raise DecodeError("truncated token", _PV)
        token = bytes(data[pos : pos + token_length])
        pos += token_length
    length, pos = _read_varint(data, pos, end)
    packet_end = pos + length
    if packet_end > end:
        raise DecodeError("Length exceeds datagram", _PV)
    return PacketHeader(True, version, packet_type, dcid, scid, token, pos, packet_end, first)


def check_reserved_bits(first_byte: int) -> None:
    """Raise PROTOCOL_VIOLATION if reserved bits are set in an unprotected first byte.

    Call after header protection is removed (RFC 9000 sections 17.2 and 17.3.1).
    """
    if first_byte & (LONG_RESERVED_BITS if first_byte & _HEADER_FORM else SHORT_RESERVED_BITS):
        raise DecodeError("reserved header bits set", _PV)


def iter_packets(
    datagram: BytesLike, short_dcid_len: int = 8, *, grease_quic_bit: bool = False
) -> Iterator[PacketHeader]:
    """Headers of the coalesced packets in ``datagram``, in order.

    Packets whose destination CID differs from the first packet's are skipped
    (RFC 9000 section 12.2). A malformed packet raises :class:`DecodeError` when reached,
    after the packets before it have been yielded.
    """
    offset = 0
    end = len(datagram)
    first_dcid: bytes | None = None
    while offset < end:
        header = parse_header(datagram, offset, short_dcid_len, grease_quic_bit=grease_quic_bit)
        if first_dcid is None:
            first_dcid = header.dcid
        if header.dcid == first_dcid:
            yield header
        offset = header.packet_end


def _check_cid(cid: BytesLike) -> None:
    if len(cid) > MAX_CID_LENGTH:
        raise ValueError(f"connection ID of {len(cid)} bytes (max {MAX_CID_LENGTH})")


def encode_long_header(
    packet_type: PacketType,
    version: int,
    dcid: BytesLike,
    scid: BytesLike,
    token: BytesLike,
    payload_length: int,
    pn: int,
    pn_length: int,
) -> bytes:
    """An unprotected Initial, 0-RTT or Handshake header ending with the packet number.

    ``payload_length`` counts the bytes after the packet number field, AEAD tag included;
    ``pn`` is truncated to ``pn_length`` (1-4) bytes. The Length field is always at least
    2 bytes, so the header size does not depend on the payload size below 16 KiB.
    """
    if packet_type not in (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE):
        raise ValueError(f"encode_long_header cannot build {packet_type!r}")
    if not 1 <= pn_length <= 4:
        raise ValueError("pn_length must be 1..4")
    if token and packet_type != PacketType.INITIAL:
        raise ValueError("only Initial packets carry a token")
    _check_cid(dcid)
    _check_cid(scid)
    first = 0xC0 | (long_type_bits(packet_type, version) << 4) | (pn_length - 1)
    out = bytearray((first,))
    out += _U32.pack(version)
    out.append(len(dcid))
    out += dcid
    out.append(len(scid))
    out += scid
    if packet_type == PacketType.INITIAL:
        out += encode_varint(len(token))
        out += token
    length = pn_length + payload_length
    out += _U16.pack(0x4000 | length) if length < 0x4000 else encode_varint(length)
    out += (pn & ((1 << (8 * pn_length)) - 1)).to_bytes(pn_length, "big")
    return bytes(out)


def encode_short_header(
    dcid: BytesLike, pn: int, pn_length: int, spin: bool = False, key_phase: bool = False
) -> bytes:
    """An unprotected 1-RTT header ending with the packet number (truncated to ``pn_length``)."""
    if not 1 <= pn_length <= 4:
        raise ValueError("pn_length must be 1..4")
    if len(dcid) > MAX_CID_LENGTH:  # (_check_cid inlined: per-packet path)
        _check_cid(dcid)
    first = 0x40 | (pn_length - 1)
    if spin:
        first |= _SPIN_BIT
    if key_phase:
        first |= _KEY_PHASE_BIT
    # (bytes + any buffer is bytes: no copy of the CID first; per-packet path)
    return bytes((first,)) + dcid + (pn & _PN_MASK[pn_length]).to_bytes(pn_length, "big")


_PN_MASK = (0, 0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF)


def encode_version_negotiation(dcid: BytesLike, scid: BytesLike, versions: Sequence[int]) -> bytes:
    """A Version Negotiation packet (``dcid``/``scid`` echo the client's SCID/DCID).

    The unused first-byte bits are random, with 0x40 set (RFC 9000 section 17.2.1).
    """
    if len(dcid) > 255 or len(scid) > 255:
        raise ValueError("connection ID longer than 255 bytes")
    if not versions:
        raise ValueError("Version Negotiation needs at least one version")
    out = bytearray((0xC0 | (os.urandom(1)[0] & 0x3F),))
    out += b"\x00\x00\x00\x00"
    out.append(len(dcid))
    out += dcid
    out.append(len(scid))
    out += scid
    for v in versions:
        out += _U32.pack(v)
    return bytes(out)


def _retry_without_tag(version: int, dcid: BytesLike, scid: BytesLike, token: BytesLike) -> bytes:
    _check_cid(dcid)
    _check_cid(scid)
    if not token:
        raise ValueError("Retry token must not be empty")
    out = bytearray((0xC0 | (long_type_bits(PacketType.RETRY, version) << 4) | 0x0F,))
    out += _U32.pack(version)
    out.append(len(dcid))
    out += dcid
    out.append(len(scid))
    out += scid
    out += token
    return bytes(out)


def _pseudo_packet(odcid: BytesLike, retry: BytesLike) -> bytes:
    return bytes((len(odcid),)) + bytes(odcid) + bytes(retry)


def encode_retry(
    version: int, dcid: BytesLike, scid: BytesLike, odcid: BytesLike, token: BytesLike
) -> bytes:
    """A Retry packet with its integrity tag (RFC 9001 section 5.8).

    ``dcid`` is the client's SCID, ``scid`` the server's new CID, ``odcid`` the DCID of the
    client's Initial.
    """
    from .protection import retry_integrity_tag

    body = _retry_without_tag(version, dcid, scid, token)
    return body + retry_integrity_tag(_pseudo_packet(odcid, body), version)


def verify_retry(packet: BytesLike, odcid: BytesLike) -> bool:
    """True when the Retry ``packet``'s integrity tag is valid for ``odcid``."""
    from .protection import retry_integrity_tag

    if len(packet) < 5 + RETRY_TAG_SIZE:
        return False
    version = int(_U32.unpack_from(packet, 1)[0])
    if version not in SUPPORTED_VERSIONS:
        return False
    body = packet[:-RETRY_TAG_SIZE]
    expected = retry_integrity_tag(_pseudo_packet(odcid, body), version)
    return hmac.compare_digest(expected, bytes(packet[-RETRY_TAG_SIZE:]))

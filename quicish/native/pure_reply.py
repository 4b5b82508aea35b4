"""Pure twins of the C core's request/response entries (py_cipher.c): the decoding of an
ACK + STREAM payload that ``PacketCipher.open_stream`` does with the packet it opens, and
``PacketCipher.seal_reply``, which writes and seals such a packet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .pure import VARINT_MAX, _varint, lone_stream_fields

StreamFields = tuple[int, int, memoryview, bool, bool]
AckFields = tuple[list[tuple[int, int]], int, tuple[int, int, int] | None]


def _read_varint(payload: bytes, pos: int) -> tuple[int, int]:
    """A varint at ``payload[pos]`` and the position after it; -1 when truncated."""
    if pos >= len(payload):
        return -1, pos
    n = 1 << (payload[pos] >> 6)
    if len(payload) - pos < n:
        return -1, pos
    return int.from_bytes(payload[pos : pos + n], "big") & ((1 << (8 * n - 2)) - 1), pos + n


def ack_stream_fields(payload: bytes) -> tuple[StreamFields | None, AckFields | None]:
    """The twin of the C ``PacketCipher.open_stream``'s decoding of an ACK frame followed by
    one STREAM frame that ends the payload (a request's or a response's): ``(stream fields,
    (ranges, delay, ecn))`` as ``wire.frames``' decoders give them (ranges half-open,
    highest first), a lone STREAM frame's ``(fields, None)``, ``(None, None)`` for
    anything else, malformed included."""
    if len(payload) < 2 or not 0x02 <= payload[0] <= 0x03:
        return lone_stream_fields(payload), None
    values = []
    pos = 1
    for _ in range(4):  # largest, delay, range count, first range
        value, pos = _read_varint(payload, pos)
        if value < 0:
            return None, None
        values.append(value)
    largest, delay, count, first = values
    smallest = largest - first
    if smallest < 0:
        return None, None
    ranges = [(smallest, largest + 1)]
    for _ in range(count):  # (each range takes >= 2 bytes: a huge count ends quickly)
        gap, pos = _read_varint(payload, pos)
        length, pos = _read_varint(payload, pos) if gap >= 0 else (-1, pos)
        if length < 0:
            return None, None
        largest = smallest - gap - 2
        smallest = largest - length
        if smallest < 0:
            return None, None
        ranges.append((smallest, largest + 1))
    ecn: tuple[int, int, int] | None = None
    if payload[0] == 0x03:
        counts = []
        for _ in range(3):
            value, pos = _read_varint(payload, pos)
            if value < 0:
                return None, None
            counts.append(value)
        ecn = (counts[0], counts[1], counts[2])
    fields = lone_stream_fields(payload, pos) if pos < len(payload) else None
    if fields is None:
        return None, None
    return fields, (ranges, delay, ecn)


def reply_payload(ack: bytes, stream_id: int, offset: int, data: Any, fin: bool) -> bytes:
    """The payload ``PacketCipher.seal_reply`` seals: ``ack`` (an ACK frame's bytes, maybe
    none) and one STREAM frame with a Length field, as ``wire.frames.push_stream_frame``
    writes it. ValueError beyond the varint range."""
    n = len(data)
    if not 0 <= stream_id <= VARINT_MAX or not offset >= 0 or offset + n > VARINT_MAX:
        raise ValueError("seal_reply: CID, packet number or STREAM frame out of range")
    head = bytes((0x0A | (0x04 if offset else 0) | (0x01 if fin else 0),)) + _varint(stream_id)
    return bytes(ack) + head + (_varint(offset) if offset else b"") + _varint(n) + bytes(data)


def seal_reply(
    seal: Callable[[bytes, bytes, int], bytes],
    dcid: Any,
    first: int,
    pn: int,
    pn_len: int,
    ack: bytes,
    stream_id: int,
    offset: int,
    data: Any,
    fin: bool,
) -> bytes:
    """The twin of ``PacketCipher.seal_reply`` (py_cipher.c), sealing with ``seal`` (a
    ``PacketProtector.seal_packet``): the same bytes and the same ValueErrors."""
    if len(dcid) > 20 or not 1 <= pn_len <= 4 or not 0 <= first <= 0xFF or pn > VARINT_MAX:
        raise ValueError("seal_reply: CID, packet number or STREAM frame out of range")
    payload = reply_payload(ack, stream_id, offset, data, fin)
    mask = (1 << (8 * pn_len)) - 1
    header = bytes((first | (pn_len - 1),)) + bytes(dcid) + (pn & mask).to_bytes(pn_len, "big")
    return seal(header, payload, pn)

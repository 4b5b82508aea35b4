"""Frames (RFC 9000 sections 12.4, 19; RFC 9221 DATAGRAM).

Decoded STREAM, CRYPTO and DATAGRAM ``data`` fields are zero-copy ``memoryview`` slices of
the payload passed to :func:`decode_frames` (call ``bytes()`` on them to keep a copy that does
not pin the payload); every other bytes field (tokens, CIDs, reset tokens, path data) is
``bytes``. Encoders accept ``bytes``, ``bytearray`` or ``memoryview``.

Hot path: :func:`push_stream_frame`, :func:`stream_frame_overhead` and :func:`push_ack_frame`
write straight into a :class:`~quicish.wire.buffer.Buffer` without building frame objects.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias

from ..errors import DecodeError, ErrorCode
from . import ack_frequency as _af
from .ack_frequency import AckFrequencyFrame as AckFrequencyFrame
from .ack_frequency import ImmediateAckFrame as ImmediateAckFrame
from .buffer import VARINT_MAX, Buffer
from .packet import PacketType

BytesLike: TypeAlias = bytes | bytearray | memoryview

_FEE = ErrorCode.FRAME_ENCODING_ERROR
_PV = ErrorCode.PROTOCOL_VIOLATION
MAX_STREAMS_LIMIT = 1 << 60
MAX_CID_LENGTH = 20
STATELESS_RESET_TOKEN_SIZE = 16


class FrameType(IntEnum):
    PADDING = 0x00
    PING = 0x01
    ACK = 0x02
    ACK_ECN = 0x03
    RESET_STREAM = 0x04
    STOP_SENDING = 0x05
    CRYPTO = 0x06
    NEW_TOKEN = 0x07
    STREAM = 0x08  # 0x08-0x0f: | 0x04 OFF | 0x02 LEN | 0x01 FIN
    STREAM_FIN = 0x09
    STREAM_LEN = 0x0A
    STREAM_LEN_FIN = 0x0B
    STREAM_OFF = 0x0C
    STREAM_OFF_FIN = 0x0D
    STREAM_OFF_LEN = 0x0E
    STREAM_OFF_LEN_FIN = 0x0F
    MAX_DATA = 0x10
    MAX_STREAM_DATA = 0x11
    MAX_STREAMS_BIDI = 0x12
    MAX_STREAMS_UNI = 0x13
    DATA_BLOCKED = 0x14
    STREAM_DATA_BLOCKED = 0x15
    STREAMS_BLOCKED_BIDI = 0x16
    STREAMS_BLOCKED_UNI = 0x17
    NEW_CONNECTION_ID = 0x18
    RETIRE_CONNECTION_ID = 0x19
    PATH_CHALLENGE = 0x1A
    PATH_RESPONSE = 0x1B
    CONNECTION_CLOSE = 0x1C
    CONNECTION_CLOSE_APP = 0x1D
    HANDSHAKE_DONE = 0x1E
    DATAGRAM = 0x30
    DATAGRAM_LEN = 0x31


# ---- frame objects ---------------------------------------------------------------------------
@dataclass(slots=True)
class PaddingFrame:
    length: int = 1  # a run of PADDING bytes


@dataclass(slots=True)
class PingFrame:
    pass


@dataclass(slots=True)
class AckFrame:
    ranges: list[tuple[int, int]]  # descending, half-open [start, stop)
    delay: int = 0  # as encoded (scaled by the ack_delay_exponent)
    ecn: tuple[int, int, int] | None = None  # ECT(0), ECT(1), ECN-CE counts (type 0x03)


@dataclass(slots=True)
class ResetStreamFrame:
    stream_id: int
    error_code: int
    final_size: int


@dataclass(slots=True)
class StopSendingFrame:
    stream_id: int
    error_code: int


@dataclass(slots=True)
class CryptoFrame:
    offset: int
    data: BytesLike


@dataclass(slots=True)
class NewTokenFrame:
    token: bytes


@dataclass(slots=True)
class StreamFrame:
    stream_id: int
    offset: int
    data: BytesLike
    fin: bool = False
    with_length: bool = True  # False: the frame runs to the end of the packet


@dataclass(slots=True)
class MaxDataFrame:
    maximum: int


@dataclass(slots=True)
class MaxStreamDataFrame:
    stream_id: int
    maximum: int


@dataclass(slots=True)
class MaxStreamsFrame:
    bidi: bool
    limit: int


@dataclass(slots=True)
class DataBlockedFrame:
    limit: int


@dataclass(slots=True)
class StreamDataBlockedFrame:
    stream_id: int
    limit: int


@dataclass(slots=True)
class StreamsBlockedFrame:
    bidi: bool
    limit: int


@dataclass(slots=True)
class NewConnectionIdFrame:
    seq: int
    retire_prior_to: int
    cid: bytes
    reset_token: bytes


@dataclass(slots=True)
class RetireConnectionIdFrame:
    seq: int


@dataclass(slots=True)
class PathChallengeFrame:
    data: bytes  # 8 bytes


@dataclass(slots=True)
class PathResponseFrame:
    data: bytes  # 8 bytes


@dataclass(slots=True)
class ConnectionCloseFrame:
    error_code: int
    frame_type: int | None = None  # transport close only; None encodes as 0
    reason: str = ""
    application: bool = False  # True: type 0x1d


@dataclass(slots=True)
class HandshakeDoneFrame:
    pass


@dataclass(slots=True)
class DatagramFrame:
    data: BytesLike
    with_length: bool = True  # False: type 0x30, runs to the end of the packet


Frame: TypeAlias = (
    PaddingFrame | PingFrame | AckFrame | ResetStreamFrame | StopSendingFrame | CryptoFrame
    | NewTokenFrame | StreamFrame | MaxDataFrame | MaxStreamDataFrame | MaxStreamsFrame
    | DataBlockedFrame | StreamDataBlockedFrame | StreamsBlockedFrame | NewConnectionIdFrame
    | RetireConnectionIdFrame | PathChallengeFrame | PathResponseFrame | ConnectionCloseFrame
    | HandshakeDoneFrame | DatagramFrame | AckFrequencyFrame | ImmediateAckFrame
)  # fmt: skip


# ---- varint encoding (local, table-driven for the hot path) ------------------------------------
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!L")
_U64 = struct.Struct("!Q")
_ONE_BYTE = [bytes((i,)) for i in range(64)]
# STREAM header with OFF|LEN: type, stream id (1 or 2 bytes), 4-byte offset, 2-byte length
_HEAD_ID1 = struct.Struct("!BBLH")
_HEAD_ID2 = struct.Struct("!BHLH")


def _enc(v: int) -> bytes:
    if v < 0x40:
        if v < 0:
            raise ValueError(f"{v} does not fit in a QUIC varint")
        return _ONE_BYTE[v]
    if v < 0x4000:
        return _U16.pack(v | 0x4000)
    if v < 0x40000000:
        return _U32.pack(v | 0x80000000)
    if v <= VARINT_MAX:
        return _U64.pack(v | 0xC000000000000000)
    raise ValueError(f"{v} does not fit in a QUIC varint")


def _vsize(v: int) -> int:
    if v < 0x40:
        return 1
    if v < 0x4000:
        return 2
    if v < 0x40000000:
        return 4
    return 8


# ---- hot-path encoders ---------------------------------------------------------------------
def push_stream_frame(
    buf: Buffer,
    stream_id: int,
    offset: int,
    data: BytesLike,
    fin: bool,
    with_length: bool = True,
) -> None:
    """Write one STREAM frame (OFF bit only when ``offset`` > 0)."""
    n = len(data)
    if with_length and 0x40 <= n < 0x4000 and 0x4000 <= offset < 0x40000000:
        # bulk-transfer fast path: one precompiled struct for the whole header
        t = 0x0F if fin else 0x0E
        if 0 <= stream_id < 0x40:
            buf.push_bytes(_HEAD_ID1.pack(t, stream_id, offset | 0x80000000, n | 0x4000))
            buf.push_bytes(data)
            return
        if 0x40 <= stream_id < 0x4000:
            buf.push_bytes(_HEAD_ID2.pack(t, stream_id | 0x4000, offset | 0x80000000, n | 0x4000))
            buf.push_bytes(data)
            return
    if offset + n > VARINT_MAX:
        raise ValueError("stream offset + length exceeds 2^62-1")
    t = 0x08
    if fin:
        t = 0x09
    if offset:
        t |= 0x04
        head = _ONE_BYTE[t | 2 if with_length else t] + _enc(stream_id) + _enc(offset)
    else:
        head = _ONE_BYTE[t | 2 if with_length else t] + _enc(stream_id)
    if with_length:
        head += _enc(n)
    buf.push_bytes(head)
    buf.push_bytes(data)


def stream_frame_overhead(stream_id: int, offset: int, length: int) -> int:
    """Bytes a STREAM frame with a Length field adds on top of ``length`` bytes of data."""
    if stream_id < 0x40 and 0x40 <= length < 0x4000 and 0x4000 <= offset < 0x40000000:
        return 8  # the bulk case push_stream_frame also takes its fast path for
    size = 1 + _vsize(stream_id) + _vsize(length)
    if offset:
        size += _vsize(offset)
    return size


def push_ack_frame(
    buf: Buffer,
    ranges: Sequence[tuple[int, int]],
    delay: int,
    ecn: tuple[int, int, int] | None = None,
) -> None:
    """Write an ACK (or ACK_ECN when ``ecn`` is given) frame.

    ``ranges``: non-empty, descending, disjoint, non-adjacent half-open ``(start, stop)``.
    """
    if not ranges:
        raise ValueError("ACK needs at least one range")
    start, stop = ranges[0]
    largest = stop - 1
    if len(ranges) == 1 and ecn is None:
        if start > largest:
            raise ValueError("empty ACK range")
        buf.push_bytes(b"\x02" + _enc(largest) + _enc(delay) + b"\x00" + _enc(largest - start))
        return
    parts = [
        b"\x03" if ecn is not None else b"\x02",
        _enc(largest),
        _enc(delay),
        _enc(len(ranges) - 1),
        _enc(largest - start),
    ]
    prev = start
    for i in range(1, len(ranges)):
        start, stop = ranges[i]
        gap = prev - stop - 1
        if gap < 0:
            raise ValueError("ACK ranges must be descending and non-adjacent")
        parts.append(_enc(gap))
        parts.append(_enc(stop - 1 - start))
        prev = start
    if ecn is not None:
        parts.append(_enc(ecn[0]))
        parts.append(_enc(ecn[1]))
        parts.append(_enc(ecn[2]))
    buf.push_bytes(b"".join(parts))


# ---- generic encoder -------------------------------------------------------------------------
def _e_padding(buf: Buffer, f: PaddingFrame) -> None:
    if f.length < 1:
        raise ValueError("PADDING length must be >= 1")
    buf.push_bytes(bytes(f.length))


def _e_ack(buf: Buffer, f: AckFrame) -> None:
    push_ack_frame(buf, f.ranges, f.delay, f.ecn)


def _e_reset(buf: Buffer, f: ResetStreamFrame) -> None:
    buf.push_bytes(b"\x04" + _enc(f.stream_id) + _enc(f.error_code) + _enc(f.final_size))


def _e_stop(buf: Buffer, f: StopSendingFrame) -> None:
    buf.push_bytes(b"\x05" + _enc(f.stream_id) + _enc(f.error_code))


def _e_crypto(buf: Buffer, f: CryptoFrame) -> None:
    if f.offset + len(f.data) > VARINT_MAX:
        raise ValueError("crypto offset + length exceeds 2^62-1")
    buf.push_bytes(b"\x06" + _enc(f.offset) + _enc(len(f.data)))
    buf.push_bytes(f.data)


def _e_new_token(buf: Buffer, f: NewTokenFrame) -> None:
    if not f.token:
        raise ValueError("NEW_TOKEN token must not be empty")
    buf.push_bytes(b"\x07" + _enc(len(f.token)) + f.token)


def _e_stream(buf: Buffer, f: StreamFrame) -> None:
    push_stream_frame(buf, f.stream_id, f.offset, f.data, f.fin, f.with_length)


def _e_max_data(buf: Buffer, f: MaxDataFrame) -> None:
    buf.push_bytes(b"\x10" + _enc(f.maximum))


def _e_max_stream_data(buf: Buffer, f: MaxStreamDataFrame) -> None:
    buf.push_bytes(b"\x11" + _enc(f.stream_id) + _enc(f.maximum))


def _e_max_streams(buf: Buffer, f: MaxStreamsFrame) -> None:
    if f.limit > MAX_STREAMS_LIMIT:
        raise ValueError("stream limit exceeds 2^60")
    buf.push_bytes((b"\x12" if f.bidi else b"\x13") + _enc(f.limit))


def _e_data_blocked(buf: Buffer, f: DataBlockedFrame) -> None:
    buf.push_bytes(b"\x14" + _enc(f.limit))


def _e_stream_data_blocked(buf: Buffer, f: StreamDataBlockedFrame) -> None:
    buf.push_bytes(b"\x15" + _enc(f.stream_id) + _enc(f.limit))


def _e_streams_blocked(buf: Buffer, f: StreamsBlockedFrame) -> None:
    if f.limit > MAX_STREAMS_LIMIT:
        raise ValueError("stream limit exceeds 2^60")
    buf.push_bytes((b"\x16" if f.bidi else b"\x17") + _enc(f.limit))


def _e_new_cid(buf: Buffer, f: NewConnectionIdFrame) -> None:
    if not 1 <= len(f.cid) <= MAX_CID_LENGTH:
        raise ValueError("connection ID length must be 1..20")
    if len(f.reset_token) != STATELESS_RESET_TOKEN_SIZE:
        raise ValueError("stateless reset token must be 16 bytes")
    if f.retire_prior_to > f.seq:
        raise ValueError("retire_prior_to > sequence number")
    buf.push_bytes(
        b"\x18" + _enc(f.seq) + _enc(f.retire_prior_to) + bytes((len(f.cid),)) + f.cid
        + f.reset_token
    )  # fmt: skip


def _e_retire_cid(buf: Buffer, f: RetireConnectionIdFrame) -> None:
    buf.push_bytes(b"\x19" + _enc(f.seq))


def _path_data(data: bytes) -> bytes:
    if len(data) != 8:
        raise ValueError("path challenge data must be 8 bytes")
    return data


def _e_path_challenge(buf: Buffer, f: PathChallengeFrame) -> None:
    buf.push_bytes(b"\x1a" + _path_data(f.data))


def _e_path_response(buf: Buffer, f: PathResponseFrame) -> None:
    buf.push_bytes(b"\x1b" + _path_data(f.data))


def _e_close(buf: Buffer, f: ConnectionCloseFrame) -> None:
    reason = f.reason.encode("utf-8")
    if f.application:
        buf.push_bytes(b"\x1d" + _enc(f.error_code) + _enc(len(reason)) + reason)
    else:
        ft = f.frame_type or 0
        buf.push_bytes(b"\x1c" + _enc(f.error_code) + _enc(ft) + _enc(len(reason)) + reason)


def _e_datagram(buf: Buffer, f: DatagramFrame) -> None:
    if f.with_length:
        buf.push_bytes(b"\x31" + _enc(len(f.data)))
    else:
        buf.push_bytes(b"\x30")
    buf.push_bytes(f.data)


_ENCODERS: dict[type, Callable[[Buffer, Any], None]] = {
    PaddingFrame: _e_padding,
    PingFrame: lambda buf, f: buf.push_bytes(b"\x01"),
    AckFrame: _e_ack,
    ResetStreamFrame: _e_reset,
    StopSendingFrame: _e_stop,
    CryptoFrame: _e_crypto,
    NewTokenFrame: _e_new_token,
    StreamFrame: _e_stream,
    MaxDataFrame: _e_max_data,
    MaxStreamDataFrame: _e_max_stream_data,
    MaxStreamsFrame: _e_max_streams,
    DataBlockedFrame: _e_data_blocked,
    StreamDataBlockedFrame: _e_stream_data_blocked,
    StreamsBlockedFrame: _e_streams_blocked,
    NewConnectionIdFrame: _e_new_cid,
    RetireConnectionIdFrame: _e_retire_cid,
    PathChallengeFrame: _e_path_challenge,
    PathResponseFrame: _e_path_response,
    ConnectionCloseFrame: _e_close,
    HandshakeDoneFrame: lambda buf, f: buf.push_bytes(b"\x1e"),
    DatagramFrame: _e_datagram,
    **_af.ENCODERS,  # draft-ietf-quic-ack-frequency
}


def encode_frame(buf: Buffer, frame: Frame) -> None:
    """Append ``frame`` to ``buf``. Invalid field values raise ``ValueError``."""
    _ENCODERS[type(frame)](buf, frame)


def encode_frames(frames: Sequence[Frame]) -> bytes:
    """Convenience: the concatenated encoding of ``frames``."""
    buf = Buffer()
    for frame in frames:
        encode_frame(buf, frame)
    return buf.data()


def frame_type_of(frame: Frame) -> int:
    """The frame type :func:`encode_frame` would write for ``frame``."""
    if isinstance(frame, StreamFrame):
        t = 0x08 | (0x04 if frame.offset else 0) | (0x02 if frame.with_length else 0)
        return t | (0x01 if frame.fin else 0)
    if isinstance(frame, AckFrame):
        return 0x03 if frame.ecn is not None else 0x02
    if isinstance(frame, MaxStreamsFrame):
        return 0x12 if frame.bidi else 0x13
    if isinstance(frame, StreamsBlockedFrame):
        return 0x16 if frame.bidi else 0x17
    if isinstance(frame, ConnectionCloseFrame):
        return 0x1D if frame.application else 0x1C
    if isinstance(frame, DatagramFrame):
        return 0x31 if frame.with_length else 0x30
    return _SIMPLE_TYPES[type(frame)]


_SIMPLE_TYPES: dict[type, int] = {
    PaddingFrame: 0x00,
    PingFrame: 0x01,
    ResetStreamFrame: 0x04,
    StopSendingFrame: 0x05,
    CryptoFrame: 0x06,
    NewTokenFrame: 0x07,
    MaxDataFrame: 0x10,
    MaxStreamDataFrame: 0x11,
    DataBlockedFrame: 0x14,
    StreamDataBlockedFrame: 0x15,
    NewConnectionIdFrame: 0x18,
    RetireConnectionIdFrame: 0x19,
    PathChallengeFrame: 0x1A,
    PathResponseFrame: 0x1B,
    HandshakeDoneFrame: 0x1E,
    **_af.FRAME_TYPES,
}


# ---- decoding --------------------------------------------------------------------------------
# Decoders read a memoryview ``d`` of the whole payload from ``p`` and return (frame, new p).
# Reads past the end raise IndexError/struct.error, which decode_frames turns into DecodeError;
# slices (which never raise) are bounds-checked explicitly.
_ZEROS = re.compile(b"\x00*")


def _varint(d: memoryview, p: int) -> tuple[int, int]:
    b = d[p]
    if b < 0x40:
        return b, p + 1
    if b < 0x80:
        return ((b & 0x3F) << 8) | d[p + 1], p + 2
    v: int
    if b < 0xC0:
        v = _U32.unpack_from(d, p)[0]
        return v & 0x3FFFFFFF, p + 4
    v = _U64.unpack_from(d, p)[0]
    return v & VARINT_MAX, p + 8


def _slice(d: memoryview, p: int, n: int, t: int) -> tuple[memoryview, int]:
    q = p + n
    if q > len(d):
        raise DecodeError("truncated frame", _FEE, t)
    return d[p:q], q


_DecodeResult: TypeAlias = tuple[Frame, int]


def _d_ping(d: memoryview, p: int, t: int) -> _DecodeResult:
    return PingFrame(), p


def decode_ack_at(d: memoryview, p: int, t: int) -> _DecodeResult:
    """The ACK frame of type ``t`` whose fields start at ``d[p]``, and the end position."""
    largest, p = _varint(d, p)
    delay, p = _varint(d, p)
    count, p = _varint(d, p)
    first, p = _varint(d, p)
    smallest = largest - first
    if smallest < 0:
        raise DecodeError("ACK range below zero", _FEE, t)
    ranges = [(smallest, largest + 1)]
    for _ in range(count):  # each range takes >= 2 bytes: a huge count hits the end quickly
        b = d[p]
        if b < 0x40:
            gap = b
            p += 1
        else:
            gap, p = _varint(d, p)
        b = d[p]
        if b < 0x40:
            length = b
            p += 1
        else:
            length, p = _varint(d, p)
        largest = smallest - gap - 2
        smallest = largest - length
        if smallest < 0:
            raise DecodeError("ACK range below zero", _FEE, t)
        ranges.append((smallest, largest + 1))
    if t == 0x03:
        ect0, p = _varint(d, p)
        ect1, p = _varint(d, p)
        ce, p = _varint(d, p)
        return AckFrame(ranges, delay, (ect0, ect1, ce)), p
    return AckFrame(ranges, delay, None), p


def _d_reset(d: memoryview, p: int, t: int) -> _DecodeResult:
    stream_id, p = _varint(d, p)
    error_code, p = _varint(d, p)
    final_size, p = _varint(d, p)
    return ResetStreamFrame(stream_id, error_code, final_size), p


def _d_stop(d: memoryview, p: int, t: int) -> _DecodeResult:
    stream_id, p = _varint(d, p)
    error_code, p = _varint(d, p)
    return StopSendingFrame(stream_id, error_code), p


def _d_crypto(d: memoryview, p: int, t: int) -> _DecodeResult:
    offset, p = _varint(d, p)
    length, p = _varint(d, p)
    if offset + length > VARINT_MAX:
        raise DecodeError("CRYPTO offset + length exceeds 2^62-1", _FEE, t)
    data, p = _slice(d, p, length, t)
    return CryptoFrame(offset, data), p


def _d_new_token(d: memoryview, p: int, t: int) -> _DecodeResult:
    length, p = _varint(d, p)
    if not length:
        raise DecodeError("empty NEW_TOKEN", _FEE, t)
    token, p = _slice(d, p, length, t)
    return NewTokenFrame(bytes(token)), p


def decode_stream_at(
    d: memoryview, p: int, t: int, _u32: Any = _U32.unpack_from
) -> tuple[StreamFrame, int]:
    """The STREAM frame of type ``t`` whose fields start at ``d[p]``, and the end position."""
    # the hottest decoder: common varint sizes inlined
    b = d[p]
    if b < 0x40:
        stream_id = b
        p += 1
    else:
        stream_id, p = _varint(d, p)
    offset = 0
    if t & 0x04:
        b = d[p]
        if b < 0x40:
            offset = b
            p += 1
        elif 0x80 <= b < 0xC0:
            offset = _u32(d, p)[0] & 0x3FFFFFFF
            p += 4
        else:
            offset, p = _varint(d, p)
    if t & 0x02:
        b = d[p]
        if b < 0x40:
            length = b
            p += 1
        elif b < 0x80:
            length = ((b & 0x3F) << 8) | d[p + 1]
            p += 2
        else:
            length, p = _varint(d, p)
        q = p + length
        if q > len(d):
            raise DecodeError("truncated STREAM data", _FEE, t)
    else:
        q = len(d)
    if offset + q - p > VARINT_MAX:
        raise DecodeError("STREAM offset + length exceeds 2^62-1", _FEE, t)
    return StreamFrame(stream_id, offset, d[p:q], t & 0x01 == 1, t & 0x02 == 2), q


def _d_max_data(d: memoryview, p: int, t: int) -> _DecodeResult:
    maximum, p = _varint(d, p)
    return MaxDataFrame(maximum), p


def _d_max_stream_data(d: memoryview, p: int, t: int) -> _DecodeResult:
    stream_id, p = _varint(d, p)
    maximum, p = _varint(d, p)
    return MaxStreamDataFrame(stream_id, maximum), p


def _d_streams(d: memoryview, p: int, t: int) -> _DecodeResult:
    limit, p = _varint(d, p)
    if limit > MAX_STREAMS_LIMIT:
        raise DecodeError("stream limit exceeds 2^60", _FEE, t)
    if t <= 0x13:
        return MaxStreamsFrame(t == 0x12, limit), p
    return StreamsBlockedFrame(t == 0x16, limit), p


def _d_data_blocked(d: memoryview, p: int, t: int) -> _DecodeResult:
    limit, p = _varint(d, p)
    return DataBlockedFrame(limit), p


def _d_stream_data_blocked(d: memoryview, p: int, t: int) -> _DecodeResult:
    stream_id, p = _varint(d, p)
    limit, p = _varint(d, p)
    return StreamDataBlockedFrame(stream_id, limit), p


def _d_new_cid(d: memoryview, p: int, t: int) -> _DecodeResult:
    seq, p = _varint(d, p)
    retire_prior_to, p = _varint(d, p)
    n = d[p]
    if not 1 <= n <= MAX_CID_LENGTH:
        raise DecodeError(f"NEW_CONNECTION_ID with a {n}-byte CID", _FEE, t)
    if retire_prior_to > seq:
        raise DecodeError("retire_prior_to > sequence number", _FEE, t)
    cid, p = _slice(d, p + 1, n, t)
    token, p = _slice(d, p, STATELESS_RESET_TOKEN_SIZE, t)
    return NewConnectionIdFrame(seq, retire_prior_to, bytes(cid), bytes(token)), p


def _d_retire_cid(d: memoryview, p: int, t: int) -> _DecodeResult:
    seq, p = _varint(d, p)
    return RetireConnectionIdFrame(seq), p


def _d_path(d: memoryview, p: int, t: int) -> _DecodeResult:
    data, p = _slice(d, p, 8, t)
    if t == 0x1A:
        return PathChallengeFrame(bytes(data)), p
    return PathResponseFrame(bytes(data)), p


def _d_close(d: memoryview, p: int, t: int) -> _DecodeResult:
    error_code, p = _varint(d, p)
    frame_type: int | None = None
    if t == 0x1C:
        frame_type, p = _varint(d, p)
    length, p = _varint(d, p)
    reason, p = _slice(d, p, length, t)
    text = bytes(reason).decode("utf-8", errors="replace")
    return ConnectionCloseFrame(error_code, frame_type, text, t == 0x1D), p


def _d_handshake_done(d: memoryview, p: int, t: int) -> _DecodeResult:
    return HandshakeDoneFrame(), p


def _d_datagram(d: memoryview, p: int, t: int) -> _DecodeResult:
    if t == 0x31:
        length, p = _varint(d, p)
        data, p = _slice(d, p, length, t)
        return DatagramFrame(data, True), p
    return DatagramFrame(d[p:], False), len(d)


_DECODERS: dict[int, Callable[[memoryview, int, int], _DecodeResult]] = {
    0x01: _d_ping,
    0x02: decode_ack_at,
    0x03: decode_ack_at,
    0x04: _d_reset,
    0x05: _d_stop,
    0x06: _d_crypto,
    0x07: _d_new_token,
    **dict.fromkeys(range(0x08, 0x10), decode_stream_at),
    0x10: _d_max_data,
    0x11: _d_max_stream_data,
    0x12: _d_streams,
    0x13: _d_streams,
    0x14: _d_data_blocked,
    0x15: _d_stream_data_blocked,
    0x16: _d_streams,
    0x17: _d_streams,
    0x18: _d_new_cid,
    0x19: _d_retire_cid,
    0x1A: _d_path,
    0x1B: _d_path,
    0x1C: _d_close,
    0x1D: _d_close,
    0x1E: _d_handshake_done,
    0x30: _d_datagram,
    0x31: _d_datagram,
    **_af.DECODERS,
}


def decode_lone_stream_frame(payload: BytesLike) -> StreamFrame | None:
    """The STREAM frame that makes up the whole ``payload`` (a bulk-transfer packet), or
    None when the payload is anything else (use :func:`decode_frames`). A malformed
    STREAM frame raises :class:`DecodeError` as :func:`decode_frames` would."""
    if not payload:
        return None
    t = payload[0]
    if not 0x08 <= t <= 0x0F:
        return None
    d = payload if isinstance(payload, memoryview) else memoryview(payload)
    try:
        frame, end = decode_stream_at(d, 1, t)
    except (IndexError, struct.error):
        raise DecodeError(f"truncated frame {t:#x}", _FEE, t) from None
    return frame if end == len(d) else None


def decode_frames(payload: BytesLike, packet_type: PacketType | None = None) -> list[Frame]:
    """Decode every frame of a packet payload (runs of PADDING become one PaddingFrame).

    Raises :class:`DecodeError` with FRAME_ENCODING_ERROR (and ``frame_type``) for malformed
    frames and unknown types, PROTOCOL_VIOLATION for an empty payload or, when ``packet_type``
    is given, a frame not allowed in that packet type (RFC 9000 section 12.4).
    """
    d = payload if isinstance(payload, memoryview) else memoryview(payload)
    end = len(d)
    if not end:
        raise DecodeError("packet without frames", _PV)
    allowed = _ALLOWED_BY_PACKET.get(packet_type) if packet_type is not None else None
    frames: list[Frame] = []
    decoders = _DECODERS
    p = 0
    t = 0
    try:
        while p < end:
            t = d[p]
            if t < 0x40:
                p += 1
            else:
                t, p = _varint(d, p)
            # (an unknown type is a FRAME_ENCODING_ERROR below, RFC 9000 12.4)
            if allowed is not None and t not in allowed and t in _PACKETS_FOR_FRAME:
                raise DecodeError(f"frame type {t:#x} not allowed in {packet_type!r}", _PV, t)
            if t == 0:
                m = _ZEROS.match(d, p)
                q = m.end() if m is not None else p
                if frames and isinstance(frames[-1], PaddingFrame):  # after a long-form PADDING
                    frames[-1].length += q - p + 1
                else:
                    frames.append(PaddingFrame(q - p + 1))
                p = q
                continue
            decoder = decoders.get(t)
            if decoder is None:
                raise DecodeError(f"unknown frame type {t:#x}", _FEE, t)
            frame, p = decoder(d, p, t)
            frames.append(frame)
    except (IndexError, struct.error):
        raise DecodeError(f"truncated frame {t:#x}", _FEE, t) from None
    return frames


# ---- RFC 9000 Table 3 ------------------------------------------------------------------------
_I = 1 << PacketType.INITIAL
_Z = 1 << PacketType.ZERO_RTT
_H = 1 << PacketType.HANDSHAKE
_O = 1 << PacketType.ONE_RTT
_PACKETS_FOR_FRAME: dict[int, int] = {
    0x00: _I | _H | _Z | _O,
    0x01: _I | _H | _Z | _O,
    0x02: _I | _H | _O,
    0x03: _I | _H | _O,
    0x04: _Z | _O,
    0x05: _Z | _O,
    0x06: _I | _H | _O,
    0x07: _O,
    **{t: _Z | _O for t in range(0x08, 0x1A)},  # STREAM .. RETIRE_CONNECTION_ID
    0x1A: _Z | _O,
    0x1B: _O,
    0x1C: _I | _H | _Z | _O,
    0x1D: _Z | _O,
    0x1E: _O,
    0x30: _Z | _O,
    0x31: _Z | _O,
    **dict.fromkeys(_af.DECODERS, _O),  # ACK_FREQUENCY, IMMEDIATE_ACK: 1-RTT only
}
_ALLOWED_BY_PACKET: dict[PacketType, frozenset[int]] = {
    pt: frozenset(t for t, mask in _PACKETS_FOR_FRAME.items() if mask & (1 << pt))
    for pt in PacketType
}

# What a packet's frames make of it, by frame class (what the engine's receive loop
# checks, on decoded frames) and, derived from these, by frame type (the functions below).
NON_ACK_ELICITING_FRAMES: frozenset[type[Frame]] = frozenset(
    (PaddingFrame, AckFrame, ConnectionCloseFrame)
)
"""ACK, PADDING and CONNECTION_CLOSE do not elicit an ACK (RFC 9000 section 13.2.1)."""
PROBING_FRAMES: frozenset[type[Frame]] = frozenset(
    (PaddingFrame, NewConnectionIdFrame, PathChallengeFrame, PathResponseFrame)
)
"""Frames that leave a packet a probing packet (RFC 9000 section 9.1)."""
_TYPES_OF_CLASS: dict[type[Frame], tuple[int, ...]] = {
    PaddingFrame: (FrameType.PADDING,),
    AckFrame: (FrameType.ACK, FrameType.ACK_ECN),
    ConnectionCloseFrame: (FrameType.CONNECTION_CLOSE, FrameType.CONNECTION_CLOSE_APP),
    NewConnectionIdFrame: (FrameType.NEW_CONNECTION_ID,),
    PathChallengeFrame: (FrameType.PATH_CHALLENGE,),
    PathResponseFrame: (FrameType.PATH_RESPONSE,),
}
_NOT_ACK_ELICITING = frozenset(int(t) for c in NON_ACK_ELICITING_FRAMES for t in _TYPES_OF_CLASS[c])
_PROBING = frozenset(int(t) for c in PROBING_FRAMES for t in _TYPES_OF_CLASS[c])


def frame_allowed(frame_type: int, packet_type: PacketType) -> bool:
    """Whether ``frame_type`` may appear in a ``packet_type`` packet (RFC 9000 Table 3)."""
    return frame_type in _ALLOWED_BY_PACKET.get(packet_type, ())


def is_ack_eliciting(frame_type: int) -> bool:
    """Everything except ACK, PADDING and CONNECTION_CLOSE elicits an ACK."""
    return frame_type not in _NOT_ACK_ELICITING


def is_probing(frame_type: int) -> bool:
    """PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID and PADDING (RFC 9000 section 9.1)."""
    return frame_type in _PROBING

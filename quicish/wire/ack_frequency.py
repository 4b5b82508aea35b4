"""ACK_FREQUENCY and IMMEDIATE_ACK frames (draft-ietf-quic-ack-frequency-14, sections 4-5).

Their codecs and table entries; :mod:`quicish.wire.frames` merges these into its own tables,
so :func:`~quicish.wire.frames.encode_frame` and :func:`~quicish.wire.frames.decode_frames`
handle them like every other frame. Both are ack-eliciting and allowed in 1-RTT packets only
(section 3: the extension is never remembered, so never used in 0-RTT).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .buffer import Buffer, encode_varint

ACK_FREQUENCY = 0xAF
IMMEDIATE_ACK = 0x1F
_ACK_FREQUENCY_TYPE = encode_varint(ACK_FREQUENCY)  # two bytes: 0x40 0xaf
_U32 = struct.Struct("!L")
_U64 = struct.Struct("!Q")


@dataclass(slots=True)
class AckFrequencyFrame:
    sequence: int  # receivers ignore a frame whose sequence number is not above the last
    ack_eliciting_threshold: int  # ack-eliciting packets received without an ACK at most
    request_max_ack_delay: int  # microseconds
    reordering_threshold: int  # 0: reordering never elicits an immediate ACK


@dataclass(slots=True)
class ImmediateAckFrame:
    pass


def _e_ack_frequency(buf: Buffer, f: AckFrequencyFrame) -> None:
    buf.push_bytes(
        _ACK_FREQUENCY_TYPE
        + encode_varint(f.sequence)
        + encode_varint(f.ack_eliciting_threshold)
        + encode_varint(f.request_max_ack_delay)
        + encode_varint(f.reordering_threshold)
    )


def _e_immediate_ack(buf: Buffer, f: ImmediateAckFrame) -> None:
    buf.push_bytes(b"\x1f")


def _varint(d: memoryview, p: int) -> tuple[int, int]:
    """One varint of ``d`` at ``p`` (past the end: IndexError / struct.error, which the
    frame decoder turns into FRAME_ENCODING_ERROR)."""
    b = d[p]
    prefix = b >> 6
    if prefix == 0:
        return b, p + 1
    if prefix == 1:
        return ((b & 0x3F) << 8) | d[p + 1], p + 2
    if prefix == 2:
        return _U32.unpack_from(d, p)[0] & 0x3FFFFFFF, p + 4
    return _U64.unpack_from(d, p)[0] & 0x3FFFFFFFFFFFFFFF, p + 8


def _d_ack_frequency(d: memoryview, p: int, t: int) -> tuple[AckFrequencyFrame, int]:
    sequence, p = _varint(d, p)
    threshold, p = _varint(d, p)
    delay, p = _varint(d, p)
    reordering, p = _varint(d, p)
    return AckFrequencyFrame(sequence, threshold, delay, reordering), p


def _d_immediate_ack(d: memoryview, p: int, t: int) -> tuple[ImmediateAckFrame, int]:
    return ImmediateAckFrame(), p


#: Frame class -> encoder, frame type -> decoder, frame class -> type: merged into the
#: tables of :mod:`quicish.wire.frames`.
ENCODERS: dict[type, Callable[[Buffer, Any], None]] = {
    AckFrequencyFrame: _e_ack_frequency,
    ImmediateAckFrame: _e_immediate_ack,
}
DECODERS: dict[int, Callable[[memoryview, int, int], tuple[Any, int]]] = {
    ACK_FREQUENCY: _d_ack_frequency,
    IMMEDIATE_ACK: _d_immediate_ack,
}
FRAME_TYPES: dict[type, int] = {AckFrequencyFrame: ACK_FREQUENCY, ImmediateAckFrame: IMMEDIATE_ACK}

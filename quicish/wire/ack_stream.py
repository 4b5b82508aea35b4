"""The payload of a request or a response: one ACK frame, then one STREAM frame, decoded
without the general decoder's loop (``frames.decode_frames``' decoders, the same frames)."""

from __future__ import annotations

import struct

from ..errors import DecodeError
from .frames import AckFrame, BytesLike, StreamFrame, decode_ack_at, decode_stream_at


def decode_ack_stream(payload: BytesLike) -> tuple[AckFrame, StreamFrame] | None:
    """The ACK frame and the one STREAM frame after it that make up the whole ``payload``,
    as :func:`~quicish.wire.frames.decode_frames` decodes them; None for anything else, a
    malformed frame included (``decode_frames`` then says what is wrong)."""
    if len(payload) < 2 or not 0x02 <= payload[0] <= 0x03:
        return None
    d = payload if isinstance(payload, memoryview) else memoryview(payload)
    try:
        ack, p = decode_ack_at(d, 1, d[0])
        if p >= len(d) or not 0x08 <= d[p] <= 0x0F:
            return None  # (an ACK alone, say: a bulk sender's case)
        kind = d[p]
        stream, end = decode_stream_at(d, p + 1, kind)
    except (DecodeError, IndexError, struct.error):
        return None
    if end != len(d):
        return None
    assert isinstance(ack, AckFrame)
    return ack, stream

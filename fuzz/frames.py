"""Frame decoder target: ``decode_frames`` (per packet type) and the bulk path's
``decode_lone_stream_frame``.

Input: one selector byte (packet type), then the payload. Acceptable: a list of frames
that re-encodes to an equal list, or ProtocolError (not INTERNAL_ERROR). The lean decoder
must agree with the general one: a frame it returns is what ``decode_frames`` returns, and
it raises only where ``decode_frames`` raises.
"""

from __future__ import annotations

from collections.abc import Iterator

from quicish.errors import ErrorCode, ProtocolError
from quicish.wire.frames import (
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DatagramFrame,
    Frame,
    MaxStreamDataFrame,
    NewConnectionIdFrame,
    PathChallengeFrame,
    PingFrame,
    ResetStreamFrame,
    StreamFrame,
    decode_frames,
    decode_lone_stream_frame,
    encode_frames,
)
from quicish.wire.packet import PacketType

from .common import wire_inputs

PACKET_TYPES: list[PacketType | None] = [
    None, PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE, PacketType.ONE_RTT,
]  # fmt: skip


def _expected(exc: ProtocolError) -> None:
    if exc.code == ErrorCode.INTERNAL_ERROR:
        raise AssertionError(f"INTERNAL_ERROR from a decoder: {exc}") from exc


def one_input(data: bytes) -> None:
    if not data:
        return
    packet_type = PACKET_TYPES[data[0] % len(PACKET_TYPES)]
    payload = data[1:]
    try:
        frames = decode_frames(payload, packet_type)
    except ProtocolError as exc:
        _expected(exc)
        frames = None
    if frames is not None:
        assert frames, "decode_frames returned no frame"
        assert decode_frames(encode_frames(frames), packet_type) == frames, "round trip"
    if packet_type is not PacketType.ONE_RTT:
        return
    try:
        lone = decode_lone_stream_frame(payload)
    except ProtocolError as exc:
        _expected(exc)
        assert frames is None, "lean decoder raised where decode_frames did not"
        return
    if lone is not None:
        assert frames == [lone], f"lean decoder {lone!r} != {frames!r}"


def encode(packet_type: PacketType | None, payload: bytes) -> bytes:
    """An input of this target."""
    return bytes((PACKET_TYPES.index(packet_type),)) + payload


SAMPLES: list[list[Frame]] = [
    [StreamFrame(0, 0, b"GET /index.html\r\n", True)],
    [StreamFrame(4, 1 << 20, b"x" * 40, False, with_length=False)],
    [AckFrame([(100, 105), (50, 60), (0, 1)], 10, None), PingFrame()],
    [AckFrame([(7, 9)], 1000, (1, 2, 3))],
    [CryptoFrame(0, b"\x04\x00\x00\x05hello")],
    [ResetStreamFrame(4, 1, 1000), MaxStreamDataFrame(4, 1 << 16)],
    [NewConnectionIdFrame(5, 2, b"12345678", bytes(range(16)))],
    [PathChallengeFrame(b"abcdefgh"), DatagramFrame(b"dgram")],
    [ConnectionCloseFrame(0x0A, 0x08, "bad stream")],
]


def seeds() -> Iterator[tuple[str, bytes]]:
    for i, frames in enumerate(SAMPLES):
        yield f"seed-{i:02d}", encode(PacketType.ONE_RTT, encode_frames(frames))


def from_wire() -> Iterator[tuple[str, bytes]]:
    """Inputs made from the ``tests/corpus/wire`` regression files."""
    for name, meta, data in wire_inputs(("frames",)):
        _, _, ptype = meta["decoder"].partition("@")
        yield f"wire-{name}", encode(PacketType[ptype] if ptype else None, data)

"""HTTP/3 decoders target: the frame decoder (``quicish.h3.frames``), SETTINGS and the
single-varint frames, and QPACK decoding (``quicish.h3.qpack`` over pylsqpack) followed by
request/response field validation.

Input: one selector byte, then the payload.
- selector % 3 == 0: a request stream's bytes, fed to a ``FrameDecoder`` whole and split
  at a point the second byte picks. Acceptable: the same frames both ways (DATA pieces
  joined), frames that re-encode and decode to the same, H3_EXCESSIVE_LOAD (nothing else);
  SETTINGS, GOAWAY, MAX_PUSH_ID, CANCEL_PUSH payloads parse or raise H3_FRAME_ERROR /
  H3_SETTINGS_ERROR.
- 1: QPACK: two length bytes, encoder stream bytes, then a header block. Acceptable:
  QPACK_ENCODER_STREAM_ERROR / QPACK_DECOMPRESSION_FAILED, a blocked block, or field lines
  that re-encode and decode to the same and that validate or raise H3_MESSAGE_ERROR.
- 2: QPACK decoder stream bytes into an encoder: accepted or QPACK_DECODER_STREAM_ERROR.
"""

from __future__ import annotations

from collections.abc import Iterator

import pylsqpack

from quicish.h3.errors import H3Error, H3ErrorCode, H3StreamError
from quicish.h3.frames import (
    FrameDecoder,
    FrameType,
    Setting,
    data_frame_header,
    encode_frame,
    encode_settings,
    encode_varint,
    parse_settings,
    parse_single_varint,
)
from quicish.h3.headers import validate_request, validate_response
from quicish.h3.qpack import Qpack

Frames = list[tuple[int, bytes]]
MAX_PAYLOAD = 4096
PARSE_CODES = {H3ErrorCode.H3_FRAME_ERROR, H3ErrorCode.H3_SETTINGS_ERROR}
QPACK_CODES = {H3ErrorCode.QPACK_ENCODER_STREAM_ERROR, H3ErrorCode.QPACK_DECOMPRESSION_FAILED}


def _decode(pieces: list[bytes]) -> tuple[Frames, H3ErrorCode | None]:
    """Frames (adjacent DATA joined) and the error that stopped the decoder, if any."""
    decoder = FrameDecoder(MAX_PAYLOAD)
    frames: Frames = []
    try:
        for piece in pieces:
            decoder.feed(piece)
            while (frame := decoder.next()) is not None:
                if frame[0] == FrameType.DATA and frames and frames[-1][0] == FrameType.DATA:
                    frames[-1] = (FrameType.DATA, frames[-1][1] + frame[1])
                else:
                    frames.append(frame)
    except H3Error as exc:
        return frames, exc.code
    return frames, None


def _encode(frames: Frames) -> bytes:
    return b"".join(
        data_frame_header(len(p)) + p if t == FrameType.DATA else encode_frame(t, p)
        for t, p in frames
    )


def _check_payload(frame_type: int, payload: bytes) -> None:
    try:
        if frame_type == FrameType.SETTINGS:
            settings = parse_settings(payload)
            frames, error = _decode([encode_settings(settings)])
            assert error is None and len(frames) == 1, "SETTINGS re-encoding"
            assert parse_settings(frames[0][1]) == settings, "SETTINGS round trip"
        elif frame_type in (FrameType.GOAWAY, FrameType.MAX_PUSH_ID, FrameType.CANCEL_PUSH):
            value = parse_single_varint(payload, "frame")
            assert parse_single_varint(encode_varint(value), "frame") == value
    except H3Error as exc:
        if exc.code not in PARSE_CODES:
            raise AssertionError(f"unexpected code {exc.code.name}") from exc


def _frames(data: bytes) -> None:
    if not data:
        return
    split, data = data[0], data[1:]
    split %= len(data) + 1
    whole, error = _decode([data])
    parts, part_error = _decode([data[:split], data[split:]])
    if error is not None:
        assert error == H3ErrorCode.H3_EXCESSIVE_LOAD, error
        assert part_error == error, "split input: a different error"
        return
    assert part_error is None, "split input raised"
    assert [f for f in parts if f != (FrameType.DATA, b"")] == [
        f for f in whole if f != (FrameType.DATA, b"")
    ], "split input: different frames"
    again, again_error = _decode([_encode(whole)])
    assert again_error is None and again == whole, "round trip"
    for frame_type, payload in whole:
        _check_payload(frame_type, payload)


def _qpack(data: bytes) -> None:
    if len(data) < 2:
        return
    split = 2 + int.from_bytes(data[:2], "big") % (len(data) - 1)
    encoder_bytes, block = data[2:split], data[split:]
    qpack = Qpack(4096, 16)
    try:
        qpack.feed_encoder_stream(encoder_bytes)
        headers = qpack.decode_now(4, block)
    except H3Error as exc:
        if exc.code not in QPACK_CODES:
            raise AssertionError(f"unexpected code {exc.code.name}") from exc
        return
    if headers is None:
        return  # blocked on inserts that never came
    encoder_out, encoded = pylsqpack.Encoder().encode(0, headers)
    assert not encoder_out
    assert pylsqpack.Decoder(0, 0).feed_header(0, encoded)[1] == headers, "round trip"
    for validate in (validate_request, validate_response):
        try:
            validate(headers)
        except H3StreamError as exc:
            assert exc.code == H3ErrorCode.H3_MESSAGE_ERROR, exc.code


def _decoder_stream(data: bytes) -> None:
    qpack = Qpack(4096, 16)
    qpack.apply_peer_settings(4096, 16)
    qpack.encode(0, [(b":status", b"200"), (b"x-custom", b"value")])
    try:
        qpack.feed_decoder_stream(data)
    except H3Error as exc:
        assert exc.code == H3ErrorCode.QPACK_DECODER_STREAM_ERROR, exc.code


def one_input(data: bytes) -> None:
    if not data:
        return
    selector, payload = data[0] % 3, data[1:]
    (_frames, _qpack, _decoder_stream)[selector](payload)


GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")]


def seeds() -> Iterator[tuple[str, bytes]]:
    block = bytes(pylsqpack.Encoder().encode(0, GET)[1])
    request = encode_frame(FrameType.HEADERS, block) + data_frame_header(5) + b"hello"
    settings = encode_settings({Setting.MAX_FIELD_SECTION_SIZE: 1 << 16, 0x21: 1})
    samples = [
        b"\x00\x07" + request,
        b"\x00\x02" + settings + encode_frame(FrameType.GOAWAY, b"\x04"),
        b"\x00\x00" + encode_frame(0x21, b"grease") + data_frame_header(0),
        b"\x01\x00\x00" + block,
        b"\x01\x00\x00\x00\x00\xff\x24",  # a static index out of range
        b"\x02\x80",  # a Section Acknowledgment
    ]
    for i, sample in enumerate(samples):
        yield f"seed-{i:02d}", sample

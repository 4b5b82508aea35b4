"""Frame codecs (RFC 9000 section 19, RFC 9221): round trips, fast paths, errors, Table 3."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicish.errors import DecodeError, ErrorCode
from quicish.wire.buffer import Buffer
from quicish.wire.frames import (
    NON_ACK_ELICITING_FRAMES,
    PROBING_FRAMES,
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    Frame,
    FrameType,
    HandshakeDoneFrame,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
    decode_frames,
    decode_lone_stream_frame,
    encode_frame,
    encode_frames,
    frame_allowed,
    frame_type_of,
    is_ack_eliciting,
    is_probing,
    push_ack_frame,
    push_stream_frame,
    stream_frame_overhead,
)
from quicish.wire.packet import PacketType

FEE = ErrorCode.FRAME_ENCODING_ERROR
PV = ErrorCode.PROTOCOL_VIOLATION
MAXV = (1 << 62) - 1
FAST = settings(max_examples=150, deadline=None)

varints = st.one_of(
    st.integers(0, 63), st.integers(0, 16383), st.integers(0, (1 << 30) - 1), st.integers(0, MAXV)
)
small_data = st.binary(max_size=64)


@st.composite
def ack_ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Descending, disjoint, non-adjacent half-open ranges, built upwards from the smallest."""
    start = draw(st.one_of(st.integers(0, 1000), st.integers(0, 1 << 61)))
    ranges: list[tuple[int, int]] = []
    for _ in range(draw(st.integers(1, 12))):
        stop = start + 1 + draw(st.one_of(st.integers(0, 100), st.integers(0, 1 << 40)))
        if stop > MAXV:
            break
        ranges.append((start, stop))
        start = stop + 1 + draw(st.one_of(st.integers(0, 100), st.integers(0, 1 << 40)))
    return ranges[::-1] or [(0, 1)]


def stream_frames(with_length: bool | None = True) -> st.SearchStrategy[StreamFrame]:
    return st.builds(
        StreamFrame,
        stream_id=varints,
        offset=st.one_of(st.just(0), st.integers(0, MAXV - 100)),
        data=small_data,
        fin=st.booleans(),
        with_length=st.just(True) if with_length else st.booleans(),
    )


def close_frames() -> st.SearchStrategy[ConnectionCloseFrame]:
    transport = st.builds(ConnectionCloseFrame, varints, varints, st.text(max_size=30),
                          st.just(False))  # fmt: skip
    app = st.builds(ConnectionCloseFrame, varints, st.none(), st.text(max_size=30), st.just(True))
    return st.one_of(transport, app)


LENGTH_DELIMITED: dict[str, st.SearchStrategy[Any]] = {
    "padding": st.builds(PaddingFrame, st.integers(1, 1500)),
    "ping": st.just(PingFrame()),
    "ack": st.builds(AckFrame, ack_ranges(), varints, st.none()),
    "ack_ecn": st.builds(AckFrame, ack_ranges(), varints, st.tuples(varints, varints, varints)),
    "reset_stream": st.builds(ResetStreamFrame, varints, varints, varints),
    "stop_sending": st.builds(StopSendingFrame, varints, varints),
    "crypto": st.builds(CryptoFrame, st.integers(0, 1 << 40), small_data),
    "new_token": st.builds(NewTokenFrame, st.binary(min_size=1, max_size=64)),
    "stream": stream_frames(),
    "max_data": st.builds(MaxDataFrame, varints),
    "max_stream_data": st.builds(MaxStreamDataFrame, varints, varints),
    "max_streams": st.builds(MaxStreamsFrame, st.booleans(), st.integers(0, 1 << 60)),
    "data_blocked": st.builds(DataBlockedFrame, varints),
    "stream_data_blocked": st.builds(StreamDataBlockedFrame, varints, varints),
    "streams_blocked": st.builds(StreamsBlockedFrame, st.booleans(), st.integers(0, 1 << 60)),
    "new_connection_id": st.integers(0, MAXV).flatmap(
        lambda seq: st.builds(
            NewConnectionIdFrame,
            st.just(seq),
            st.integers(0, seq),
            st.binary(min_size=1, max_size=20),
            st.binary(min_size=16, max_size=16),
        )
    ),
    "retire_connection_id": st.builds(RetireConnectionIdFrame, varints),
    "path_challenge": st.builds(PathChallengeFrame, st.binary(min_size=8, max_size=8)),
    "path_response": st.builds(PathResponseFrame, st.binary(min_size=8, max_size=8)),
    "connection_close": close_frames(),
    "handshake_done": st.just(HandshakeDoneFrame()),
    "datagram": st.builds(DatagramFrame, small_data, st.just(True)),
}
TAIL_ONLY: dict[str, st.SearchStrategy[Any]] = {
    "stream_no_length": st.builds(
        StreamFrame, varints, st.integers(0, 1 << 40), small_data, st.booleans(), st.just(False)
    ),
    "datagram_no_length": st.builds(DatagramFrame, small_data, st.just(False)),
}
ALL_FRAMES = {**LENGTH_DELIMITED, **TAIL_ONLY}


def one(frame: Frame) -> bytes:
    buf = Buffer()
    encode_frame(buf, frame)
    return buf.data()


# ---- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ALL_FRAMES))
def test_roundtrip_each_frame_type(name: str) -> None:
    @FAST
    @given(ALL_FRAMES[name])
    def check(frame: Frame) -> None:
        data = one(frame)
        assert decode_frames(data) == [frame]
        assert frame_type_of(frame) == data[0]  # every type here fits in one byte

    check()


@st.composite
def frame_sequences(draw: st.DrawFn) -> list[Frame]:
    frames: list[Frame] = draw(st.lists(st.one_of(*LENGTH_DELIMITED.values()), max_size=8))
    if draw(st.booleans()):
        frames.append(draw(st.one_of(*TAIL_ONLY.values())))
    merged: list[Frame] = []
    for f in frames:  # adjacent PADDING runs decode as one frame
        if merged and isinstance(f, PaddingFrame) and isinstance(merged[-1], PaddingFrame):
            merged[-1] = PaddingFrame(merged[-1].length + f.length)
        else:
            merged.append(f)
    return merged or [PingFrame()]


@settings(max_examples=300, deadline=None)
@given(frame_sequences())
def test_roundtrip_frame_sequences(frames: list[Frame]) -> None:
    assert decode_frames(encode_frames(frames)) == frames


def test_stream_ids_and_types_cover_0x08_to_0x0f() -> None:
    seen = set()
    for offset in (0, 5):
        for fin in (False, True):
            for with_length in (False, True):
                frame = StreamFrame(4, offset, b"abc", fin, with_length)
                data = one(frame)
                seen.add(data[0])
                assert decode_frames(data) == [frame]
    assert seen == set(range(0x08, 0x10))


def test_stream_offset_bit_set_with_zero_offset_is_accepted() -> None:
    assert decode_frames(b"\x0e\x04\x00\x02hi") == [StreamFrame(4, 0, b"hi", False, True)]


def test_decoded_data_is_zero_copy_memoryview() -> None:
    payload = bytes(one(StreamFrame(0, 10, b"hello", True)) + one(CryptoFrame(0, b"tls")))
    payload += one(DatagramFrame(b"dgram"))
    frames = decode_frames(payload)
    for f in frames:
        assert isinstance(f, StreamFrame | CryptoFrame | DatagramFrame)
        assert isinstance(f.data, memoryview)
        assert f.data.obj is payload
    assert [
        bytes(f.data) for f in frames if isinstance(f, StreamFrame | CryptoFrame | DatagramFrame)
    ] == [
        b"hello",
        b"tls",
        b"dgram",
    ]


def test_known_encodings() -> None:
    assert one(PingFrame()) == b"\x01"
    assert one(PaddingFrame(3)) == b"\x00\x00\x00"
    assert one(MaxDataFrame(16384)) == b"\x10\x80\x00\x40\x00"
    assert one(StreamFrame(1, 0, b"ab", fin=True)) == b"\x0b\x01\x02ab"
    assert one(StreamFrame(1, 64, b"ab", fin=False, with_length=False)) == b"\x0c\x01\x40\x40ab"
    assert one(ConnectionCloseFrame(0x0A, 0x08, "x")) == b"\x1c\x0a\x08\x01x"
    assert one(ConnectionCloseFrame(7, None, "", application=True)) == b"\x1d\x07\x00"
    assert one(ConnectionCloseFrame(1, None, "")) == b"\x1c\x01\x00\x00"  # unknown frame type: 0
    assert one(DatagramFrame(b"z", with_length=False)) == b"\x30z"
    assert one(MaxStreamsFrame(False, 3)) == b"\x13\x03"
    assert one(StreamsBlockedFrame(True, 3)) == b"\x16\x03"


def test_padding_runs_coalesce() -> None:
    assert decode_frames(b"\x00" * 5 + b"\x01" + b"\x00" * 3) == [
        PaddingFrame(5),
        PingFrame(),
        PaddingFrame(3),
    ]
    assert decode_frames(bytes(1200)) == [PaddingFrame(1200)]


def test_non_minimal_frame_type_accepted() -> None:
    assert decode_frames(b"\x40\x01") == [PingFrame()]
    assert decode_frames(b"\x80\x00\x00\x1e") == [HandshakeDoneFrame()]


def test_invalid_utf8_reason_is_replaced() -> None:
    frames = decode_frames(b"\x1d\x00\x02\xff\xfe")
    assert frames == [ConnectionCloseFrame(0, None, "\ufffd\ufffd", True)]


# ---- ACK ----------------------------------------------------------------------------------------
def test_ack_wire_arithmetic() -> None:
    # packets {18,19}, {10..14}, {0}
    buf = Buffer()
    push_ack_frame(buf, [(18, 20), (10, 15), (0, 1)], delay=5)
    # largest=19 delay=5 count=2 first=1 | gap=18-15-1=2 len=14-10=4 | gap=10-1-1=8 len=0
    assert buf.data() == bytes([0x02, 19, 5, 2, 1, 2, 4, 8, 0])
    assert decode_frames(buf.data()) == [AckFrame([(18, 20), (10, 15), (0, 1)], 5, None)]
    buf = Buffer()
    push_ack_frame(buf, [(0, 1)], 0, (1, 2, 3))
    assert buf.data() == bytes([0x03, 0, 0, 0, 0, 1, 2, 3])


def test_ack_encoder_rejects_bad_ranges() -> None:
    for ranges in ([], [(5, 10), (10, 12)], [(5, 10), (3, 5)], [(5, 5)], [(5, 10), (3, 2)]):
        with pytest.raises(ValueError):
            push_ack_frame(Buffer(), ranges, 0)


@pytest.mark.parametrize(
    "payload",
    [
        bytes([0x02, 5, 0, 0, 6]),  # first range below zero
        bytes([0x02, 5, 0, 1, 0, 4, 0]),  # gap takes largest below zero
        bytes([0x02, 5, 0, 1, 0, 3, 1]),  # range length takes smallest below zero
    ],
)
def test_ack_ranges_below_zero(payload: bytes) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_frames(payload)
    assert (exc.value.code, exc.value.frame_type) == (FEE, 0x02)


def test_ack_matches_aioquic() -> None:
    from aioquic._buffer import Buffer as AioBuffer
    from aioquic.quic.packet import pull_ack_frame
    from aioquic.quic.rangeset import RangeSet as AioRangeSet

    ranges = [(1000, 1003), (500, 900), (7, 8), (0, 5)]
    buf = Buffer()
    push_ack_frame(buf, ranges, 77)
    theirs, delay = pull_ack_frame(AioBuffer(data=buf.data()[1:]))
    assert delay == 77
    assert sorted((r.start, r.stop) for r in theirs) == sorted(ranges)

    from aioquic.quic.packet import push_ack_frame as aio_push

    rs = AioRangeSet()
    for start, stop in ranges:
        rs.add(start, stop)
    out = AioBuffer(capacity=100)
    out.push_uint_var(0x02)
    assert aio_push(out, rs, 77, 90) == len(ranges)
    assert decode_frames(out.data) == [AckFrame(ranges, 77, None)]


# ---- hot-path helpers ---------------------------------------------------------------------------
@FAST
@given(
    st.one_of(varints, st.integers(0, 0x3FFF)),
    st.one_of(st.integers(0, MAXV - 2000), st.integers(0x4000, 0x3FFFFFFF)),
    st.binary(max_size=1500),
    st.booleans(),
    st.booleans(),
)
def test_push_stream_frame_roundtrip_and_overhead(
    stream_id: int, offset: int, data: bytes, fin: bool, with_length: bool
) -> None:
    buf = Buffer()
    push_stream_frame(buf, stream_id, offset, data, fin, with_length)
    assert decode_frames(buf.data()) == [StreamFrame(stream_id, offset, data, fin, with_length)]
    if with_length:
        assert buf.written == stream_frame_overhead(stream_id, offset, len(data)) + len(data)


def test_push_stream_frame_fast_path_bytes() -> None:
    buf = Buffer()
    push_stream_frame(buf, 4, 0x10000, b"x" * 100, True)
    assert buf.data() == b"\x0f\x04\x80\x01\x00\x00\x40\x64" + b"x" * 100
    buf = Buffer()
    push_stream_frame(buf, 0x44, 0x10000, b"x" * 100, False)
    assert buf.data()[:9] == b"\x0e\x40\x44\x80\x01\x00\x00\x40\x64"


def test_push_stream_frame_limits() -> None:
    with pytest.raises(ValueError):
        push_stream_frame(Buffer(), 0, MAXV, b"x", False)
    with pytest.raises(ValueError):
        push_stream_frame(Buffer(), -1, 0, b"x", False)


# ---- decoding errors ----------------------------------------------------------------------------
def _err(payload: bytes, packet_type: PacketType | None = None) -> DecodeError:
    with pytest.raises(DecodeError) as exc:
        decode_frames(payload, packet_type)
    return exc.value


@pytest.mark.parametrize(
    ("payload", "frame_type"),
    [
        (b"\x2f", 0x2F),  # unknown type (0x1f is IMMEDIATE_ACK, draft-ietf-quic-ack-frequency)
        (b"\x40\x20", 0x20),  # unknown type, 2-byte encoding
        (b"\x21", 0x21),
        (b"\x07\x00", 0x07),  # empty NEW_TOKEN
        (b"\x12" + ((1 << 60) + 1 | 0xC0 << 56).to_bytes(8, "big"), 0x12),
        (b"\x13" + ((1 << 60) + 1 | 0xC0 << 56).to_bytes(8, "big"), 0x13),
        (b"\x16" + ((1 << 60) + 1 | 0xC0 << 56).to_bytes(8, "big"), 0x16),
        (b"\x17" + ((1 << 60) + 1 | 0xC0 << 56).to_bytes(8, "big"), 0x17),
        (b"\x18\x01\x00\x00" + bytes(16), 0x18),  # zero-length CID
        (b"\x18\x01\x00\x15" + bytes(21 + 16), 0x18),  # 21-byte CID
        (b"\x18\x01\x02\x04abcd" + bytes(16), 0x18),  # retire_prior_to > seq
        (b"\x0e\x00" + (MAXV | 0xC0 << 56).to_bytes(8, "big") + b"\x01x", 0x0E),  # off+len > max
        (b"\x0c\x00" + (MAXV | 0xC0 << 56).to_bytes(8, "big") + b"x", 0x0C),
        (b"\x06" + (MAXV | 0xC0 << 56).to_bytes(8, "big") + b"\x01x", 0x06),
        (b"\x06\x00\x05abc", 0x06),  # truncated data
        (b"\x1a\x01\x02", 0x1A),  # short PATH_CHALLENGE
        (b"\x1c\x00\x00\x05ab", 0x1C),  # truncated reason
        (b"\x31\x05ab", 0x31),
        (b"\x02\x00", 0x02),  # truncated ACK
        (b"\x03\x00\x00\x00\x00\x01\x02", 0x03),  # ECN counts truncated
        (b"\x01\x04", 0x04),  # PING then truncated RESET_STREAM
    ],
)
def test_malformed_frames(payload: bytes, frame_type: int) -> None:
    err = _err(payload)
    assert err.code == FEE
    assert err.frame_type == frame_type


def test_empty_payload_is_protocol_violation() -> None:
    assert _err(b"").code == PV


def test_frame_not_allowed_in_packet_type() -> None:
    ack = one(AckFrame([(0, 1)]))
    err = _err(ack, PacketType.ZERO_RTT)
    assert (err.code, err.frame_type) == (PV, 0x02)
    assert decode_frames(ack, PacketType.INITIAL) == [AckFrame([(0, 1)])]
    err = _err(b"\x01" + one(StreamFrame(0, 0, b"x")), PacketType.HANDSHAKE)
    assert (err.code, err.frame_type) == (PV, 0x0A)
    assert _err(one(ConnectionCloseFrame(0, None, "", True)), PacketType.INITIAL).code == PV


# ---- RFC 9000 Table 3 ---------------------------------------------------------------------------
TABLE_3 = {  # frame type -> packet types in "IH01" notation, written out from the RFC
    0x00: "IH01", 0x01: "IH01", 0x02: "IH_1", 0x03: "IH_1", 0x04: "__01", 0x05: "__01",
    0x06: "IH_1", 0x07: "___1", **dict.fromkeys(range(0x08, 0x10), "__01"), 0x10: "__01",
    0x11: "__01", 0x12: "__01", 0x13: "__01", 0x14: "__01", 0x15: "__01", 0x16: "__01",
    0x17: "__01", 0x18: "__01", 0x19: "__01", 0x1A: "__01", 0x1B: "___1", 0x1C: "IH01",
    0x1D: "__01", 0x1E: "___1", 0x30: "__01", 0x31: "__01",
    0x1F: "___1",  # IMMEDIATE_ACK (draft-ietf-quic-ack-frequency-14: never in 0-RTT)
}  # fmt: skip
COLUMNS = [PacketType.INITIAL, PacketType.HANDSHAKE, PacketType.ZERO_RTT, PacketType.ONE_RTT]


def test_frame_allowed_matches_table_3() -> None:
    for frame_type in range(0x40):
        spec = TABLE_3.get(frame_type, "____")
        for column, packet_type in enumerate(COLUMNS):
            assert frame_allowed(frame_type, packet_type) == (spec[column] != "_"), (
                hex(frame_type),
                packet_type,
            )
        for packet_type in (PacketType.RETRY, PacketType.VERSION_NEGOTIATION):
            assert not frame_allowed(frame_type, packet_type)


def test_ack_eliciting_and_probing() -> None:
    non_eliciting = {t for t in FrameType if not is_ack_eliciting(t)}
    assert non_eliciting == {
        FrameType.PADDING,
        FrameType.ACK,
        FrameType.ACK_ECN,
        FrameType.CONNECTION_CLOSE,
        FrameType.CONNECTION_CLOSE_APP,
    }
    assert {t for t in FrameType if is_probing(t)} == {
        FrameType.PADDING,
        FrameType.NEW_CONNECTION_ID,
        FrameType.PATH_CHALLENGE,
        FrameType.PATH_RESPONSE,
    }


@pytest.mark.parametrize("name", sorted(ALL_FRAMES))
def test_frame_classes_and_frame_types_agree(name: str) -> None:
    """The class sets (what the engine checks on decoded frames) and the type functions
    say the same of every frame."""

    @FAST
    @given(ALL_FRAMES[name])
    def check(frame: Frame) -> None:
        frame_type = frame_type_of(frame)
        assert (type(frame) in NON_ACK_ELICITING_FRAMES) == (not is_ack_eliciting(frame_type))
        assert (type(frame) in PROBING_FRAMES) == is_probing(frame_type)

    check()


def test_frame_type_enum_values() -> None:
    assert len(FrameType) == 33
    values = {t.name: int(t) for t in FrameType}
    assert values["DATAGRAM"] == 0x30 and values["DATAGRAM_LEN"] == 0x31
    assert values["STREAM_OFF_LEN_FIN"] == 0x0F and values["HANDSHAKE_DONE"] == 0x1E


def test_encoder_rejects_invalid_frames() -> None:
    bad: list[Frame] = [
        PaddingFrame(0),
        NewTokenFrame(b""),
        NewConnectionIdFrame(1, 2, b"abcd", bytes(16)),
        NewConnectionIdFrame(1, 0, b"", bytes(16)),
        NewConnectionIdFrame(1, 0, b"abcd", bytes(15)),
        PathChallengeFrame(b"1234567"),
        MaxStreamsFrame(True, (1 << 60) + 1),
        StreamsBlockedFrame(False, (1 << 60) + 1),
        MaxDataFrame(1 << 62),
        CryptoFrame(MAXV, b"x"),
    ]
    for frame in bad:
        with pytest.raises(ValueError):
            one(frame)


def test_lone_stream_frame_matches_decode_frames() -> None:
    """A payload that is one STREAM frame decodes to what decode_frames gives; anything
    else (another frame first, a second frame, padding after it, empty) is None."""
    for frame in (
        StreamFrame(4, 70_000, bytes(range(200)), fin=True),
        StreamFrame(0, 0, b"x", with_length=False),
        StreamFrame(1 << 20, 1 << 40, b""),
    ):
        payload = encode_frame_bytes(frame)
        lone = decode_lone_stream_frame(payload)
        assert lone is not None
        (expected,) = decode_frames(payload, PacketType.ONE_RTT)
        assert lone == expected
    stream = encode_frame_bytes(StreamFrame(4, 0, b"abc"))
    assert decode_lone_stream_frame(stream + b"\x00") is None
    assert decode_lone_stream_frame(stream + stream) is None
    assert decode_lone_stream_frame(b"\x01" + stream) is None
    assert decode_lone_stream_frame(b"") is None


def test_lone_stream_frame_truncated_is_frame_encoding_error() -> None:
    whole = encode_frame_bytes(StreamFrame(4, 70_000, bytes(50)))
    for cut in (1, 2, 5, len(whole) - 1):
        with pytest.raises(DecodeError) as info:
            decode_lone_stream_frame(whole[:cut])
        assert info.value.code == FEE and info.value.frame_type == whole[0]


def encode_frame_bytes(frame: Frame) -> bytes:
    buf = Buffer()
    encode_frame(buf, frame)
    return bytes(buf.take())

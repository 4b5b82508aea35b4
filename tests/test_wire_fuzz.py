"""Fuzz every wire decoder: random bytes and mutated valid encodings must either decode or raise
``DecodeError``/``ProtocolError``; successful decodes must re-encode to an equal value.
``tests/corpus/wire/*.hex`` is a regression corpus replayed with its expected outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import tparams
from fuzz.common import load_hex
from quicish.errors import ErrorCode, ProtocolError
from quicish.wire.buffer import Buffer
from quicish.wire.frames import (
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    Frame,
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
    encode_frames,
    push_ack_frame,
)
from quicish.wire.packet import (
    QUIC_V1,
    QUIC_V2,
    PacketType,
    encode_long_header,
    encode_short_header,
    encode_version_negotiation,
    iter_packets,
    parse_header,
)
from quicish.wire.transport_params import TransportParameters

MAXV = (1 << 62) - 1
CORPUS = Path(__file__).resolve().parent / "corpus" / "wire"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PACKET_TYPES = [None, PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE,
                PacketType.ONE_RTT]  # fmt: skip


# ---- decoders with their oracles ----------------------------------------------------------------
def check_frames(data: bytes, packet_type: PacketType | None = None) -> None:
    try:
        frames = decode_frames(data, packet_type)
    except ProtocolError:
        return
    assert frames
    for frame in frames:
        _check_semantics(frame)
    assert decode_frames(encode_frames(frames), packet_type) == frames


def _check_semantics(frame: Frame) -> None:
    """Invariants a decoded frame must satisfy (beyond what re-encoding checks)."""
    if isinstance(frame, AckFrame):
        stop = 1 << 62
        for start, end in frame.ranges:
            assert 0 <= start < end < stop  # descending, disjoint, non-adjacent, non-negative
            stop = start
    elif isinstance(frame, StreamFrame | CryptoFrame):
        assert frame.offset + len(frame.data) <= MAXV
    elif isinstance(frame, MaxStreamsFrame | StreamsBlockedFrame):
        assert frame.limit <= 1 << 60
    elif isinstance(frame, NewConnectionIdFrame):
        assert 1 <= len(frame.cid) <= 20 and frame.retire_prior_to <= frame.seq


def check_header(data: bytes, short_dcid_len: int = 8) -> None:
    try:
        h = parse_header(data, 0, short_dcid_len)
    except ProtocolError:
        return
    assert 0 < h.pn_offset <= h.packet_end <= len(data)
    assert h.is_long == bool(data[0] & 0x80)


def check_packets(data: bytes, short_dcid_len: int = 8) -> None:
    ends = []
    try:
        for h in iter_packets(data, short_dcid_len):
            ends.append(h.packet_end)
    except ProtocolError:
        pass
    assert ends == sorted(set(ends))  # always progresses
    assert all(end <= len(data) for end in ends)


def check_tp(data: bytes, from_server: bool) -> None:
    try:
        tp = TransportParameters.decode(data, from_server)
    except ProtocolError as exc:
        assert exc.code == ErrorCode.TRANSPORT_PARAMETER_ERROR
        return
    assert TransportParameters.decode(tp.encode(), from_server) == tp


# ---- random bytes -------------------------------------------------------------------------------
FRAME_TYPE_BYTES = [*range(0x00, 0x1F), 0x30, 0x31]
typed_random = st.lists(
    st.tuples(st.sampled_from(FRAME_TYPE_BYTES), st.binary(max_size=24)), min_size=1, max_size=4
).map(lambda parts: b"".join(bytes([t]) + rest for t, rest in parts))


@FUZZ
@given(st.one_of(st.binary(max_size=300), typed_random), st.sampled_from(PACKET_TYPES))
def test_random_bytes_frames(data: bytes, packet_type: PacketType | None) -> None:
    check_frames(data, packet_type)


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 20))
def test_random_bytes_headers(data: bytes, short_dcid_len: int) -> None:
    check_header(data, short_dcid_len)
    check_packets(data, short_dcid_len)


@FUZZ
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_transport_parameters(data: bytes, from_server: bool) -> None:
    check_tp(data, from_server)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 0x3FFF), st.binary(max_size=30)), max_size=8),
       st.booleans())  # fmt: skip
def test_random_parameter_lists(items: list[tuple[int, bytes]], from_server: bool) -> None:
    """Well-framed (id, length, value) lists reach every parameter's value checks."""
    buf = Buffer()
    for param_id, value in items:
        buf.push_varint(param_id % 0x22 if param_id < 0x3000 else param_id)
        buf.push_varint_bytes(value)
    check_tp(buf.data(), from_server)


# ---- mutations of valid encodings ---------------------------------------------------------------
SAMPLE_FRAMES: list[Frame] = [
    PaddingFrame(3),
    PingFrame(),
    AckFrame([(100, 105), (50, 60), (0, 1)], 10, None),
    AckFrame([(7, 9)], 1000, (1, 2, 3)),
    ResetStreamFrame(4, 1, 1000),
    StopSendingFrame(8, 2),
    CryptoFrame(0, b"client hello"),
    NewTokenFrame(b"token"),
    StreamFrame(4, 0, b"data", False),
    StreamFrame(1 << 20, 77, b"more data", True),
    MaxDataFrame(1 << 30),
    MaxStreamDataFrame(4, 1 << 16),
    MaxStreamsFrame(True, 100),
    MaxStreamsFrame(False, 1 << 60),
    DataBlockedFrame(5),
    StreamDataBlockedFrame(4, 6),
    StreamsBlockedFrame(True, 7),
    StreamsBlockedFrame(False, 8),
    NewConnectionIdFrame(5, 2, b"12345678", bytes(range(16))),
    RetireConnectionIdFrame(3),
    PathChallengeFrame(b"abcdefgh"),
    PathResponseFrame(b"hgfedcba"),
    ConnectionCloseFrame(0x0A, 0x08, "bad stream"),
    ConnectionCloseFrame(0x100, None, "app", application=True),
    HandshakeDoneFrame(),
    DatagramFrame(b"dgram"),
]
TAIL_FRAMES: list[Frame] = [
    StreamFrame(0, 9, b"tail", True, with_length=False),
    DatagramFrame(b"tail", with_length=False),
]


def _sample_packets() -> list[bytes]:
    dcid = b"12345678"
    out = []
    for version in (QUIC_V1, QUIC_V2):
        for ptype in (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE):
            token = b"tok" if ptype == PacketType.INITIAL else b""
            out.append(
                encode_long_header(ptype, version, dcid, b"srv", token, 24, 9, 2) + bytes(24)
            )
    out.append(encode_short_header(dcid, 3, 2, spin=True) + bytes(30))
    out.append(encode_version_negotiation(b"abc", dcid, [QUIC_V1, QUIC_V2, 0x0A0A0A0A]))
    retry = b"\xf0" + QUIC_V1.to_bytes(4, "big") + b"\x00\x08" + dcid + b"tok" + bytes(16)
    out.append(retry)
    out.append(out[0] + out[2] + out[6])  # coalesced
    return out


SAMPLE_PACKETS = _sample_packets()
SAMPLE_TP = [tparams.FULL_SAMPLE.encode(), tparams.CLIENT_SAMPLE.encode()]

INTERESTING = [0x00, 0x01, 0x3F, 0x40, 0x7F, 0x80, 0xBF, 0xC0, 0xFF]


@st.composite
def mutated(draw: st.DrawFn, seed: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(seed))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 5))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == 0 and data:  # bit flip
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:  # truncate
            del data[pos:]
        elif op == 2 and data:  # interesting byte
            data[pos] = draw(st.sampled_from(INTERESTING))
        elif op == 3:  # insert
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == 4:  # delete a slice
            del data[pos : pos + draw(st.integers(1, 8))]
        elif data:  # duplicate a slice
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


@st.composite
def frame_payloads(draw: st.DrawFn) -> bytes:
    frames = draw(st.lists(st.sampled_from(SAMPLE_FRAMES), min_size=1, max_size=6))
    if draw(st.booleans()):
        frames.append(draw(st.sampled_from(TAIL_FRAMES)))
    return encode_frames(frames)


@FUZZ
@given(mutated(frame_payloads()), st.sampled_from(PACKET_TYPES))
def test_mutated_frames(data: bytes, packet_type: PacketType | None) -> None:
    check_frames(data, packet_type)


@FUZZ
@given(mutated(st.sampled_from(SAMPLE_PACKETS)), st.sampled_from([0, 8]))
def test_mutated_headers(data: bytes, short_dcid_len: int) -> None:
    check_header(data, short_dcid_len)
    check_packets(data, short_dcid_len)


@FUZZ
@given(mutated(st.sampled_from(SAMPLE_TP)), st.booleans())
def test_mutated_transport_parameters(data: bytes, from_server: bool) -> None:
    check_tp(data, from_server)


def test_every_truncation_of_valid_encodings() -> None:
    payload = encode_frames([*SAMPLE_FRAMES, TAIL_FRAMES[0]])
    for n in range(len(payload)):
        check_frames(payload[:n])
    for packet in SAMPLE_PACKETS:
        for n in range(len(packet)):
            check_header(packet[:n])
            check_packets(packet[:n])
    for tp in SAMPLE_TP:
        for n in range(len(tp)):
            check_tp(tp[:n], True)


def test_large_ack_range_count_does_not_hang() -> None:
    buf = Buffer()
    push_ack_frame(buf, [(10_000 - 2 * i, 10_000 - 2 * i + 1) for i in range(1000)], 0)
    frames = decode_frames(buf.data())
    assert isinstance(frames[0], AckFrame) and len(frames[0].ranges) == 1000


# ---- regression corpus --------------------------------------------------------------------------
def _run(decoder: str, data: bytes) -> Any:
    name, _, packet_type = decoder.partition("@")
    runners: dict[str, Callable[[], Any]] = {
        "frames": lambda: decode_frames(data, PacketType[packet_type] if packet_type else None),
        "header": lambda: parse_header(data),
        "packets": lambda: list(iter_packets(data)),
        "tp_client": lambda: TransportParameters.decode(data, from_server=False),
        "tp_server": lambda: TransportParameters.decode(data, from_server=True),
    }
    return runners[name]()


_load = load_hex  # the corpus format the fuzzer writes


CORPUS_FILES = sorted(CORPUS.glob("*.hex"))


def test_corpus_is_present() -> None:
    assert len(CORPUS_FILES) >= 40


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.stem)
def test_corpus(path: Path) -> None:
    meta, data = _load(path)
    expect = meta["expect"]
    if expect == "ok":
        _run(meta["decoder"], data)
        return
    with pytest.raises(ProtocolError) as exc:
        _run(meta["decoder"], data)
    assert exc.value.code == ErrorCode[expect], str(exc.value)

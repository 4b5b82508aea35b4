"""HTTP/3 frame, SETTINGS and field coding (sans-IO): varints, the incremental frame
decoder under any split of its input (hypothesis), SETTINGS errors, pseudo-header rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz import h3 as h3_fuzz
from quicish.h3.errors import H3Error, H3ErrorCode, H3StreamError
from quicish.h3.frames import (
    FrameDecoder,
    FrameType,
    data_frame_header,
    decode_varint,
    encode_frame,
    encode_settings,
    encode_varint,
    is_reserved,
    parse_settings,
    parse_single_varint,
)
from quicish.h3.headers import content_length, field_section_size, validate_request

GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"h"), (b":path", b"/")]


@pytest.mark.parametrize(
    ("value", "wire"),
    [(0, "00"), (63, "3f"), (64, "4040"), (16383, "7fff"), (16384, "80004000"),
     (1 << 30, "c000000040000000"), ((1 << 62) - 1, "ffffffffffffffff")],
)  # fmt: skip
def test_varint_encoding(value: int, wire: str) -> None:
    assert encode_varint(value).hex() == wire
    assert decode_varint(bytes.fromhex(wire), 0) == (value, len(wire) // 2)
    assert decode_varint(bytes.fromhex(wire)[:-1], 0) is None  # one byte short


def test_varint_out_of_range() -> None:
    with pytest.raises(ValueError):
        encode_varint(1 << 62)


def test_reserved_types() -> None:
    assert [v for v in range(0x100) if is_reserved(v)] == [0x21, 0x40, 0x5F, 0x7E, 0x9D, 0xBC,
                                                            0xDB, 0xFA]  # fmt: skip
    assert is_reserved(0x1F * 1000 + 0x21)


def decode_all(pieces: list[bytes], max_payload: int = 1 << 16) -> list[tuple[int, bytes]]:
    decoder = FrameDecoder(max_payload)
    out = []
    for piece in pieces:
        decoder.feed(piece)
        while (frame := decoder.next()) is not None:
            out.append(frame)
    assert not decoder.mid_frame
    return out


def test_data_frames_come_out_in_pieces_as_bytes_arrive() -> None:
    wire = data_frame_header(10) + b"0123456789" + encode_frame(FrameType.HEADERS, b"hh")
    assert decode_all([wire]) == [(0, b"0123456789"), (1, b"hh")]
    assert decode_all([wire[:5], wire[5:9], wire[9:]]) == [
        (0, b"012"), (0, b"3456"), (0, b"789"), (1, b"hh"),
    ]  # fmt: skip
    assert decode_all([data_frame_header(0)]) == [(0, b"")]


def test_frame_over_the_limit_is_excessive_load_before_its_payload_arrives() -> None:
    decoder = FrameDecoder(max_payload=100)
    decoder.feed(encode_varint(FrameType.HEADERS) + encode_varint(101))
    with pytest.raises(H3Error) as info:
        decoder.next()
    assert info.value.code == H3ErrorCode.H3_EXCESSIVE_LOAD
    unknown = FrameDecoder(max_payload=100)  # skipped as it arrives, never buffered
    unknown.feed(encode_varint(0x21) + encode_varint(1 << 20) + b"x" * 500)
    assert unknown.next() is None and not unknown.buffer and unknown.mid_frame
    http2 = FrameDecoder(max_payload=100)
    http2.feed(encode_frame(0x6, bytes(8)))  # HTTP/2 PING: out, so that it is refused
    assert http2.next() == (0x6, b"")
    big_data = FrameDecoder(max_payload=100)
    big_data.feed(data_frame_header(1 << 20) + b"x" * 200)  # DATA is never buffered whole
    assert big_data.next() == (0, b"x" * 200)


frame_strategy = st.tuples(
    st.sampled_from([0x0, 0x1, 0x4, 0x7, 0xD, 0x21, 0x40, 0x1234, (1 << 40) + 5]),
    st.binary(max_size=300),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(frame_strategy, max_size=8), st.lists(st.integers(0, 4000), max_size=6))
def test_any_split_gives_the_same_frames(frames: list[tuple[int, bytes]], cuts: list[int]) -> None:
    wire = b"".join(encode_frame(t, p) for t, p in frames)
    points = sorted({c % (len(wire) + 1) for c in cuts})
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    decoded = decode_all(pieces)
    # known non-DATA frames whole and in order (unknown ones skipped); DATA in pieces that
    # join up to each frame's bytes
    known = [f for f in frames if f[0] in (0x1, 0x4, 0x7, 0xD)]
    assert [f for f in decoded if f[0] != 0] == known
    assert b"".join(p for t, p in decoded if t == 0) == b"".join(p for t, p in frames if t == 0)
    if len(pieces) == 1:
        expected = [f for f in frames if f[0] in (0x0, 0x1, 0x4, 0x7, 0xD) and f != (0, b"")]
        assert [f for f in decoded if f != (0, b"")] == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_target_invariants_hold_on_random_input(data: bytes) -> None:
    for selector in (b"\x00", b"\x01", b"\x02"):
        h3_fuzz.one_input(selector + data)  # raises only on a broken invariant


def test_settings_round_trip_and_errors() -> None:
    settings_frame = encode_settings({0x1: 4096, 0x6: 1 << 16, 0x7: 16})
    assert decode_all([settings_frame]) == [(FrameType.SETTINGS, settings_frame[2:])]
    assert parse_settings(settings_frame[2:]) == {0x1: 4096, 0x6: 1 << 16, 0x7: 16}
    cases = [
        (b"\x06\x01\x06\x01", H3ErrorCode.H3_SETTINGS_ERROR),  # twice
        (b"\x04\x00", H3ErrorCode.H3_SETTINGS_ERROR),  # HTTP/2's INITIAL_WINDOW_SIZE
        (b"\x08\x02", H3ErrorCode.H3_SETTINGS_ERROR),  # ENABLE_CONNECT_PROTOCOL = 2
        (b"\x06", H3ErrorCode.H3_FRAME_ERROR),  # truncated
        (b"\x06\x40", H3ErrorCode.H3_FRAME_ERROR),
    ]
    for payload, code in cases:
        with pytest.raises(H3Error) as info:
            parse_settings(payload)
        assert info.value.code == code, payload
    assert parse_single_varint(b"\x44\x00", "GOAWAY") == 0x400
    for bad in (b"", b"\x00\x00", b"\x40"):
        with pytest.raises(H3Error) as info:
            parse_single_varint(bad, "GOAWAY")
        assert info.value.code == H3ErrorCode.H3_FRAME_ERROR


def test_request_validation() -> None:
    head = validate_request([*GET, (b"accept", b"*/*")])
    assert (head.method, head.scheme, head.authority, head.path) == ("GET", "https", "h", "/")
    assert head.fields == [(b"accept", b"*/*")]
    connect = validate_request([(b":method", b"CONNECT"), (b":authority", b"h:443")])
    assert (connect.method, connect.path, connect.protocol) == ("CONNECT", "", None)
    wt = [(b":method", b"CONNECT"), *GET[1:], (b":protocol", b"webtransport")]
    assert validate_request(wt).protocol == "webtransport"  # extended CONNECT (RFC 9220)
    bad = [
        GET[1:],
        [*GET, (b":path", b"/again")],
        [*GET, (b"Accept", b"x")],
        [*GET, (b"te", b"gzip")],
        [*GET, (b"x", b"a\r\nb")],
        [*GET, (b"host", b"other")],
        [(b":method", b"CONNECT"), (b":authority", b"h"), (b":path", b"/")],
        [*GET, (b":protocol", b"webtransport")],
    ]
    for headers in bad:
        with pytest.raises(H3StreamError) as info:
            validate_request(headers)
        assert info.value.code == H3ErrorCode.H3_MESSAGE_ERROR, headers


def test_sizes_and_content_length() -> None:
    assert field_section_size(GET) == sum(len(n) + len(v) + 32 for n, v in GET) == 167
    assert content_length([(b"content-length", b"12")]) == 12
    assert content_length([(b"content-length", b"12"), (b"content-length", b"12")]) == 12
    assert content_length([]) is None
    for bad in (
        [(b"content-length", b"1x")],
        [(b"content-length", b"1"), (b"content-length", b"2")],
    ):
        with pytest.raises(H3StreamError):
            content_length(bad)

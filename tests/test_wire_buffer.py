"""Buffer and varint codec: RFC 9000 section 16 / Appendix A.1 samples and bad input."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicish.errors import DecodeError, ErrorCode
from quicish.wire.buffer import VARINT_MAX, Buffer, decode_varint, encode_varint, varint_size

VECTORS = Path(__file__).resolve().parent / "vectors" / "rfc9000_appendix_a.json"


def test_rfc9000_varint_samples() -> None:
    samples = json.loads(VECTORS.read_text())["varint_samples"]
    assert len(samples) == 5
    for sample in samples:
        raw = bytes.fromhex(sample["hex"])
        assert decode_varint(raw) == (sample["value"], len(raw))
    # The shortest encodings, except the deliberately long 0x4025 form of 37.
    assert encode_varint(151288809941952652).hex() == "c2197c5eff14e88c"
    assert encode_varint(494878333).hex() == "9d7f3e7d"
    assert encode_varint(15293).hex() == "7bbd"
    assert encode_varint(37).hex() == "25"


@given(st.integers(min_value=0, max_value=VARINT_MAX))
def test_varint_round_trip(value: int) -> None:
    raw = encode_varint(value)
    assert len(raw) == varint_size(value)
    assert decode_varint(raw) == (value, len(raw))


@pytest.mark.parametrize("value", [-1, VARINT_MAX + 1])
def test_varint_out_of_range(value: int) -> None:
    with pytest.raises(ValueError):
        encode_varint(value)


@pytest.mark.parametrize("raw", ["", "40", "80ff", "c0000000000000"])
def test_truncated_varint_is_a_decode_error(raw: str) -> None:
    with pytest.raises(DecodeError) as info:
        Buffer(bytes.fromhex(raw)).pull_varint()
    assert info.value.code == ErrorCode.FRAME_ENCODING_ERROR


def test_pull_past_end_raises_decode_error_not_index_error() -> None:
    buf = Buffer(b"\x01\x02\x03")
    assert buf.pull_uint16() == 0x0102
    with pytest.raises(DecodeError):
        buf.pull_uint16()
    assert buf.pull_uint8() == 3
    assert buf.eof()
    with pytest.raises(DecodeError):
        buf.pull_bytes(1)


def test_writer_round_trip() -> None:
    out = Buffer()
    out.push_uint8(1)
    out.push_uint16(0x0203)
    out.push_uint24(0x040506)
    out.push_uint32(0x0708090A)
    out.push_uint64(0x0B0C0D0E0F101112)
    out.push_varint(300)
    out.push_varint_bytes(b"abc")
    reader = Buffer(out.data())
    assert reader.pull_uint8() == 1
    assert reader.pull_uint16() == 0x0203
    assert reader.pull_uint24() == 0x040506
    assert reader.pull_uint32() == 0x0708090A
    assert reader.pull_uint64() == 0x0B0C0D0E0F101112
    assert reader.pull_varint() == 300
    assert reader.pull_varint_bytes() == b"abc"
    assert reader.eof()

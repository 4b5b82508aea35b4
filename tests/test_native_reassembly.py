"""ReassemblyBuffer unit tests, run against both the C core and the pure-Python twin."""

from __future__ import annotations

import random
from types import ModuleType

import pytest

from quicish.errors import ErrorCode, ProtocolError
from quicish.native import accelerated, pure

MAX = 1 << 62
FLOW = ErrorCode.FLOW_CONTROL_ERROR
FINAL = ErrorCode.FINAL_SIZE_ERROR


def make(impl: ModuleType, max_offset: int = 1000) -> pure.ReassemblyBuffer:
    buf: pure.ReassemblyBuffer = impl.ReassemblyBuffer(max_offset)
    return buf


def state(buf: pure.ReassemblyBuffer) -> tuple[int, int, int | None, int, int, bool]:
    return (
        buf.read_offset,
        buf.highest_offset,
        buf.final_size,
        buf.readable,
        buf.buffered,
        buf.finished,
    )


def expect_error(code: int, fn: object, *args: object) -> ProtocolError:
    assert callable(fn)
    with pytest.raises(ProtocolError) as info:
        fn(*args)
    assert info.value.code == code
    return info.value


def test_fresh_buffer(impl: ModuleType) -> None:
    buf = make(impl)
    assert state(buf) == (0, 0, None, 0, 0, False)
    assert buf.max_offset == 1000
    assert buf.read() == b""


def test_in_order(impl: ModuleType) -> None:
    buf = make(impl)
    assert buf.insert(0, b"hello ") == 6
    assert buf.insert(6, b"world") == 5
    assert state(buf) == (0, 11, None, 11, 11, False)
    out = buf.read()
    assert out == b"hello world"
    assert type(out) is bytes
    assert state(buf) == (11, 11, None, 0, 0, False)


def test_partial_reads(impl: ModuleType) -> None:
    buf = make(impl)
    buf.insert(0, b"abcdef")
    buf.insert(6, b"ghij")
    assert buf.read(0) == b""
    assert buf.read(2) == b"ab"
    assert buf.read(5) == b"cdefg"  # spans two inserts
    assert buf.readable == 3
    assert buf.read(100) == b"hij"
    assert buf.read_offset == 10
    assert buf.read() == b""


def test_out_of_order_gap(impl: ModuleType) -> None:
    buf = make(impl)
    assert buf.insert(10, b"klmno") == 15
    assert buf.readable == 0
    assert buf.buffered == 5
    assert buf.read() == b""
    assert buf.insert(0, b"abcde") == 0
    assert buf.readable == 5
    assert buf.read() == b"abcde"
    assert buf.insert(5, b"fghij") == 0
    assert buf.read() == b"fghijklmno"
    assert state(buf) == (15, 15, None, 0, 0, False)


def test_duplicates_and_overlaps(impl: ModuleType) -> None:
    buf = make(impl)
    assert buf.insert(0, b"0123") == 4
    assert buf.insert(0, b"0123") == 0
    assert buf.insert(2, b"234567") == 4
    assert buf.buffered == 8
    assert buf.insert(1, b"1") == 0
    assert buf.read() == b"01234567"
    assert buf.insert(3, b"34567") == 0  # entirely below read_offset
    assert buf.insert(6, b"6789") == 2  # straddles read_offset
    assert buf.read() == b"89"


def test_overlap_with_conflicting_bytes_first_copy_wins(impl: ModuleType) -> None:
    buf = make(impl)
    buf.insert(4, b"EEEE")
    buf.insert(10, b"KK")
    assert buf.insert(0, b"abcdefghijkl") == 0
    assert buf.buffered == 12
    assert buf.read() == b"abcdEEEEijKK"


def test_fill_many_gaps_in_one_insert(impl: ModuleType) -> None:
    buf = make(impl)
    for off in range(1, 40, 4):
        buf.insert(off, b"X" * 2)
    assert buf.buffered == 20
    assert buf.highest_offset == 39
    assert buf.insert(0, bytes(range(48))) == 9
    expected = bytearray(range(48))
    for off in range(1, 40, 4):
        expected[off : off + 2] = b"XX"
    assert buf.read() == bytes(expected)


def test_buffer_types_are_copied(impl: ModuleType) -> None:
    buf = make(impl)
    src = bytearray(b"abcdef")
    buf.insert(0, src)
    buf.insert(6, memoryview(b"__ghij")[2:])
    src[:] = b"XXXXXX"
    assert buf.read() == b"abcdefghij"


def test_flow_control_limit(impl: ModuleType) -> None:
    buf = make(impl, 10)
    assert buf.insert(5, b"fghij") == 10  # exactly at max_offset
    before = state(buf)
    err = expect_error(FLOW, buf.insert, 6, b"ghijk")
    assert "flow-control limit 10" in err.reason
    assert state(buf) == before
    buf.max_offset = 20
    assert buf.max_offset == 20
    assert buf.insert(6, b"ghijk") == 1
    expect_error(FLOW, buf.insert, 20, b"x")
    assert buf.insert(20, b"") == 9  # an empty frame at the limit is fine


def test_flow_control_counts_empty_frames_beyond_limit(impl: ModuleType) -> None:
    buf = make(impl, 10)
    expect_error(FLOW, buf.insert, 11, b"")


def test_zero_window(impl: ModuleType) -> None:
    buf = make(impl, 0)
    assert buf.insert(0, b"") == 0
    expect_error(FLOW, buf.insert, 0, b"a")
    assert buf.insert(0, b"", True) == 0
    assert buf.finished


def test_fin_and_final_size(impl: ModuleType) -> None:
    buf = make(impl)
    assert buf.insert(5, b"world", True) == 10
    assert buf.final_size == 10
    assert not buf.finished
    assert buf.insert(5, b"world", True) == 0  # repeated FIN, same size
    assert buf.insert(0, b"hello") == 0
    assert buf.read(7) == b"hellowo"
    assert not buf.finished
    assert buf.read() == b"rld"
    assert buf.finished
    assert buf.insert(10, b"", True) == 0  # empty FIN at the final size


def test_fin_at_zero(impl: ModuleType) -> None:
    buf = make(impl)
    assert buf.insert(0, b"", True) == 0
    assert buf.final_size == 0
    assert buf.finished
    assert buf.read() == b""
    expect_error(FINAL, buf.insert, 0, b"a")


def test_empty_fin_frame_after_data(impl: ModuleType) -> None:
    buf = make(impl)
    buf.insert(0, b"abc")
    assert buf.insert(3, b"", True) == 0
    assert buf.final_size == 3
    assert buf.read() == b"abc"
    assert buf.finished


def test_empty_fin_frame_ahead_of_data(impl: ModuleType) -> None:
    buf = make(impl)
    assert buf.insert(8, b"", True) == 8
    assert buf.highest_offset == 8
    assert buf.readable == 0
    buf.insert(0, b"01234567")
    assert buf.read() == b"01234567"
    assert buf.finished


def test_data_beyond_final_size(impl: ModuleType) -> None:
    buf = make(impl)
    buf.insert(0, b"abc", True)
    err = expect_error(FINAL, buf.insert, 2, b"cd")
    assert "beyond final size 3" in err.reason
    expect_error(FINAL, buf.insert, 3, b"d")
    assert buf.insert(1, b"bc") == 0  # inside the final size is fine


def test_fin_changes_final_size(impl: ModuleType) -> None:
    buf = make(impl)
    buf.insert(0, b"abc", True)
    err = expect_error(FINAL, buf.insert, 0, b"ab", True)
    assert "changed from 3 to 2" in err.reason
    expect_error(FINAL, buf.insert, 3, b"d", True)
    assert state(buf) == (0, 3, 3, 3, 3, False)


def test_fin_below_highest_offset(impl: ModuleType) -> None:
    buf = make(impl)
    buf.insert(10, b"xyz")
    err = expect_error(FINAL, buf.insert, 0, b"abc", True)
    assert "below highest received offset 13" in err.reason
    assert buf.final_size is None


def test_fin_below_highest_offset_rejected(impl: ModuleType) -> None:
    buf = make(impl)
    buf.insert(10, b"xyz")
    expect_error(FINAL, buf.insert, 0, b"abcdefghij", True)
    assert buf.insert(0, b"abcdefghijxyz", True) == 0
    assert buf.final_size == 13


def test_set_final_size(impl: ModuleType) -> None:
    buf = make(impl, 100)
    buf.insert(0, b"abc")
    assert buf.set_final_size(50) == 47  # RESET_STREAM: counts toward flow control
    assert buf.final_size == 50
    assert buf.highest_offset == 50
    assert buf.set_final_size(50) == 0
    expect_error(FINAL, buf.set_final_size, 49)
    expect_error(FINAL, buf.set_final_size, 51)
    with pytest.raises(ValueError):
        buf.set_final_size(-1)


def test_set_final_size_checks(impl: ModuleType) -> None:
    buf = make(impl, 100)
    buf.insert(10, b"abc")
    expect_error(FINAL, buf.set_final_size, 12)
    expect_error(FLOW, buf.set_final_size, 101)
    assert buf.set_final_size(13) == 0


def test_bad_arguments(impl: ModuleType) -> None:
    buf = make(impl)
    with pytest.raises(ValueError):
        buf.insert(-1, b"a")
    with pytest.raises(ValueError):
        impl.ReassemblyBuffer(-1)
    with pytest.raises(ValueError):
        impl.ReassemblyBuffer(MAX + 1)
    with pytest.raises(ValueError):
        buf.max_offset = -5
    assert buf.max_offset == 1000


@pytest.mark.parametrize("offset", [MAX, MAX + 1, 1 << 64, (1 << 64) + 7, 1 << 100])
def test_huge_offsets(impl: ModuleType, offset: int) -> None:
    buf = make(impl, MAX)
    err = expect_error(FLOW, buf.insert, offset, b"ab")
    assert str(offset + 2) in err.reason
    buf.insert(0, b"a", True)
    err = expect_error(FINAL, buf.insert, offset, b"ab")
    assert str(offset + 2) in err.reason


def test_window_at_value_max(impl: ModuleType) -> None:
    buf = make(impl, MAX)
    assert buf.insert(MAX - 3, b"xyz", True) == MAX
    assert buf.final_size == MAX


def test_shuffled_stream(impl: ModuleType) -> None:
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(20_000))
    pieces = []
    for off in range(0, len(data), 700):
        pieces.append((off, data[off : off + 700]))
        pieces.append((off + 350, data[off + 350 : off + 1000]))  # overlapping retransmits
    rng.shuffle(pieces)
    buf = make(impl, len(data))
    out = bytearray()
    grown = 0
    for off, piece in pieces:
        grown += buf.insert(off, piece, off + len(piece) == len(data))
        out += buf.read(rng.randrange(0, 2000))
    out += buf.read()
    assert bytes(out) == data
    assert grown == len(data)
    assert buf.finished
    assert buf.buffered == 0


def test_reverse_order_single_bytes(impl: ModuleType) -> None:
    data = bytes(range(256)) * 2
    buf = make(impl, len(data))
    for off in range(len(data) - 1, -1, -1):
        assert buf.insert(off, data[off : off + 1]) == (len(data) if off == len(data) - 1 else 0)
        assert buf.buffered == len(data) - off
        assert buf.readable == (len(data) if off == 0 else 0)
    assert buf.read() == data


def test_c_memory_follows_data_and_window() -> None:
    # Sparse data far ahead in a huge window costs only its own bytes.
    buf = accelerated.ReassemblyBuffer(MAX)
    assert buf.insert(MAX - 3, b"xyz") == MAX
    assert buf.insert(1 << 40, b"abc") == 0
    assert buf.memory() < 1024
    # A full window never needs more than about twice the window.
    buf = accelerated.ReassemblyBuffer(100_000)
    for off in range(99_000, -1, -1000):  # reverse order: many segments
        buf.insert(off, bytes(1000))
    assert buf.buffered == 100_000
    assert buf.memory() <= 2 * 100_000
    assert len(buf.read()) == 100_000
    # In-order streaming reuses one allocation.
    stream = accelerated.ReassemblyBuffer(MAX)
    for i in range(200):
        stream.insert(i * 1200, b"q" * 1200)
        if i % 3 == 2:
            assert stream.read() == b"q" * 3600
    assert stream.memory() <= 4 * 3600


def test_pure_read_hands_back_the_inserted_chunk_without_copy() -> None:
    buf = pure.ReassemblyBuffer(10_000)
    data = bytes(range(200))
    buf.insert(0, data)
    assert buf.read() is data
    second = b"y" * 300
    buf.insert(200, second)
    buf.insert(500, b"z" * 10)
    assert buf.read(300) is second


# ---- out-of-order fragments (issue 15): counted, capped, and cheap


def test_fragments_count_runs_beyond_the_first_gap(impl: ModuleType) -> None:
    buf = make(impl, 1000)
    assert buf.fragments == 0
    buf.insert(10, b"a")  # [10, 11)
    assert buf.fragments == 1
    buf.insert(12, b"b")  # a second run
    assert buf.fragments == 2
    buf.insert(11, b"c")  # joins both: one run [10, 13)
    assert buf.fragments == 1
    buf.insert(9, b"d")  # extends it downward
    buf.insert(13, b"e")  # and upward
    assert buf.fragments == 1
    buf.insert(20, b"f")
    buf.insert(30, b"g")
    assert buf.fragments == 3
    buf.insert(0, b"x" * 9)  # fills the first gap: that run becomes readable
    assert buf.fragments == 2
    assert buf.readable == 14
    assert buf.read() == b"x" * 9 + b"dacbe"
    assert buf.fragments == 2
    buf.insert(14, bytes(30))  # covers everything up to 44 in one insert
    assert buf.fragments == 0
    assert buf.readable == 30


def test_max_fragments_is_enforced(impl: ModuleType) -> None:
    buf = make(impl, 1000)
    assert buf.max_fragments == MAX  # unlimited unless set
    buf.max_fragments = 2
    buf.insert(10, b"a")
    buf.insert(20, b"b")
    buf.insert(11, b"c")  # extends a run: still 2
    err = expect_error(ErrorCode.PROTOCOL_VIOLATION, buf.insert, 30, b"d")
    assert err.reason == "3 out-of-order fragments exceed the limit of 2"
    with pytest.raises(ValueError):
        buf.max_fragments = -1


def test_c_descending_fragments_cost_little_memory() -> None:
    # 1-byte pieces at descending contiguous offsets: one run, so about one allocation.
    buf = accelerated.ReassemblyBuffer(1 << 20)
    size = 1 << 16
    for off in range(size, 0, -1):
        buf.insert(off, b"z")
    assert buf.fragments == 1
    assert buf.memory() <= 2 * size + 4096
    buf.insert(0, b"a")
    assert buf.read() == b"a" + b"z" * size


def test_c_descending_holes_are_linear() -> None:
    # 1-byte pieces with 1-byte holes, highest first (each lands in front of all others).
    import time

    window = 1 << 17
    start = time.process_time()
    buf = accelerated.ReassemblyBuffer(window)
    for off in range(window - 2, -1, -2):
        buf.insert(off, b"h")
    spent = time.process_time() - start
    assert buf.fragments == window // 2 - 1
    assert spent < 0.3, spent


def test_c_filled_holes_do_not_pile_up_segments() -> None:
    # Rounds of 1000 one-byte holes, each then filled: the fragments never exceed 1000,
    # and the segments stay about that many (joins), not one per piece ever received.
    buf = accelerated.ReassemblyBuffer(1 << 20)
    buf.insert(0, b"s")  # an unread prefix: nothing is ever consumed
    base = 1
    for _ in range(16):
        for k in range(1000):
            buf.insert(base + 1 + 2 * k, b"a")
        assert buf.fragments == 1000
        for k in range(1000):
            buf.insert(base + 2 * k, b"b")
        assert buf.fragments == 0
        base += 2000
    assert buf.readable == base
    assert buf.memory() < 300_000
    assert buf.read() == b"s" + b"ba" * 16_000


def test_pure_pieces_do_not_pile_up_chunks() -> None:
    # 1-byte pieces highest first (one run), or in order and never read: the twin merges
    # adjacent chunks once they outnumber twice the fragments by 256, so a run holds few.
    for order in (range(1 << 15, 0, -1), range(1, (1 << 15) + 1)):
        buf = pure.ReassemblyBuffer(1 << 20)
        for off in order:
            buf.insert(off, b"z")
        assert buf.fragments == 1
        assert len(buf._chunks) <= 2 * 1 + 256 + 16
        buf.insert(0, b"a")
        assert buf.read() == b"a" + b"z" * (1 << 15)

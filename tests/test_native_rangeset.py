"""RangeSet unit tests, run against both the C core and the pure-Python twin."""

from __future__ import annotations

from types import ModuleType

import pytest

from quicish.native import accelerated, pure
from quicish.wire.buffer import Buffer
from quicish.wire.frames import AckFrame, decode_frames, push_ack_frame

MAX = 1 << 62


def make(impl: ModuleType, *ranges: tuple[int, int], max_ranges: int = 256) -> pure.RangeSet:
    rs: pure.RangeSet = impl.RangeSet(max_ranges)
    for start, stop in ranges:
        rs.add(start, stop)
    return rs


def test_empty(impl: ModuleType) -> None:
    rs = make(impl)
    assert len(rs) == 0
    assert not rs
    assert rs.ranges() == []
    assert rs.descending() == []
    assert list(rs) == []
    assert 0 not in rs
    with pytest.raises(ValueError):
        rs.bounds()


def test_add_and_membership_is_half_open(impl: ModuleType) -> None:
    rs = make(impl, (5, 10))
    assert rs.ranges() == [(5, 10)]
    assert 4 not in rs
    assert 5 in rs
    assert 9 in rs
    assert 10 not in rs
    assert len(rs) == 1
    assert rs
    assert rs.bounds() == (5, 10)


@pytest.mark.parametrize(
    ("adds", "expected"),
    [
        ([(0, 3), (3, 5)], [(0, 5)]),  # adjacent above merges
        ([(3, 5), (0, 3)], [(0, 5)]),  # adjacent below merges
        ([(0, 3), (2, 6)], [(0, 6)]),  # overlap
        ([(0, 10), (2, 6)], [(0, 10)]),  # contained: no change
        ([(2, 6), (0, 10)], [(0, 10)]),  # containing
        ([(0, 2), (4, 6), (8, 10), (1, 9)], [(0, 10)]),  # spans several
        ([(0, 2), (4, 6), (8, 10), (2, 4)], [(0, 6), (8, 10)]),  # fills a gap exactly
        ([(10, 12), (0, 2), (5, 7)], [(0, 2), (5, 7), (10, 12)]),  # out of order, disjoint
        ([(0, 2), (4, 6), (3, 4)], [(0, 2), (3, 6)]),
        ([(4, 6), (0, 2), (6, 8)], [(0, 2), (4, 8)]),  # extends the top range
    ],
)
def test_add_merges(
    impl: ModuleType, adds: list[tuple[int, int]], expected: list[tuple[int, int]]
) -> None:
    assert make(impl, *adds).ranges() == expected


def test_ack_pattern_descending(impl: ModuleType) -> None:
    rs = make(impl)
    for pn in [0, 1, 2, 4, 5, 6, 8, 9, 12]:
        rs.add(pn, pn + 1)
    assert rs.descending() == [(12, 13), (8, 10), (4, 7), (0, 3)]
    assert rs.ranges() == [(0, 3), (4, 7), (8, 10), (12, 13)]
    assert list(rs) == rs.ranges()
    assert rs.bounds() == (0, 13)
    assert 3 not in rs and 7 not in rs and 11 not in rs


@pytest.mark.parametrize(
    ("sub", "expected"),
    [
        ((2, 4), [(0, 2), (4, 10), (20, 30)]),  # split
        ((0, 4), [(4, 10), (20, 30)]),  # trims the left edge
        ((8, 15), [(0, 8), (20, 30)]),  # trims the right edge
        ((0, 10), [(20, 30)]),  # exact range
        ((5, 25), [(0, 5), (25, 30)]),  # spans two ranges
        ((10, 20), [(0, 10), (20, 30)]),  # exactly the gap: no change
        ((40, 50), [(0, 10), (20, 30)]),  # above everything
        ((0, 100), []),
    ],
)
def test_subtract(impl: ModuleType, sub: tuple[int, int], expected: list[tuple[int, int]]) -> None:
    rs = make(impl, (0, 10), (20, 30))
    rs.subtract(*sub)
    assert rs.ranges() == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, [(0, 10), (20, 30)]),
        (5, [(5, 10), (20, 30)]),
        (10, [(20, 30)]),
        (15, [(20, 30)]),
        (20, [(20, 30)]),
        (29, [(29, 30)]),
        (30, []),
        (MAX + 5, []),
        (1 << 70, []),
        (-3, [(0, 10), (20, 30)]),
    ],
)
def test_drop_below(impl: ModuleType, value: int, expected: list[tuple[int, int]]) -> None:
    rs = make(impl, (0, 10), (20, 30))
    rs.drop_below(value)
    assert rs.ranges() == expected


def test_max_ranges_drops_lowest_on_add(impl: ModuleType) -> None:
    rs = make(impl, max_ranges=3)
    for pn in range(0, 20, 2):
        rs.add(pn, pn + 1)
    assert rs.ranges() == [(14, 15), (16, 17), (18, 19)]
    rs.add(0, 1)  # below everything: it is the lowest, so it goes straight away
    assert rs.ranges() == [(14, 15), (16, 17), (18, 19)]
    rs.add(15, 16)  # merging lowers the count again
    assert rs.ranges() == [(14, 17), (18, 19)]
    rs.add(10, 11)
    assert rs.ranges() == [(10, 11), (14, 17), (18, 19)]
    assert rs.max_ranges == 3


def test_max_ranges_drops_lowest_on_split(impl: ModuleType) -> None:
    rs = make(impl, (0, 10), (20, 30), max_ranges=2)
    rs.subtract(24, 26)
    assert rs.ranges() == [(20, 24), (26, 30)]


def test_max_ranges_one(impl: ModuleType) -> None:
    rs = make(impl, (0, 1), (5, 6), (3, 4), max_ranges=1)
    assert rs.ranges() == [(5, 6)]


@pytest.mark.parametrize(
    ("start", "stop"),
    [(5, 5), (6, 5), (-1, 3), (-5, -1), (0, MAX + 1), (MAX, MAX + 1), (1 << 64, (1 << 64) + 1)],
)
def test_invalid_ranges(impl: ModuleType, start: int, stop: int) -> None:
    rs = make(impl, (0, 10))
    with pytest.raises(ValueError, match="invalid range"):
        rs.add(start, stop)
    with pytest.raises(ValueError, match="invalid range"):
        rs.subtract(start, stop)
    assert rs.ranges() == [(0, 10)]


@pytest.mark.parametrize("max_ranges", [0, -1])
def test_invalid_max_ranges(impl: ModuleType, max_ranges: int) -> None:
    with pytest.raises(ValueError):
        impl.RangeSet(max_ranges)


def test_large_values(impl: ModuleType) -> None:
    rs = make(impl, (MAX - 2, MAX), (0, 1))
    assert MAX - 1 in rs
    assert MAX not in rs
    assert rs.bounds() == (0, MAX)
    assert rs.descending() == [(MAX - 2, MAX), (0, 1)]


@pytest.mark.parametrize("value", [-1, 1 << 64, 1 << 80, "1", None, 1.5])
def test_contains_odd_values(impl: ModuleType, value: object) -> None:
    rs = make(impl, (0, 10))
    assert value not in rs


def test_equality_across_implementations() -> None:
    a = make(pure, (0, 3), (5, 9))
    b = make(accelerated, (5, 9), (0, 3))
    assert a == b
    assert b == a
    b.add(3, 5)
    assert a != b
    assert a != [(0, 3), (5, 9)]
    assert repr(a) == "RangeSet([(0, 3), (5, 9)])"
    assert repr(b) == "RangeSet([(0, 9)])"


def test_many_ranges_grow_and_shrink(impl: ModuleType) -> None:
    rs = make(impl, max_ranges=10_000)
    for pn in range(0, 6000, 3):  # 2000 ranges, built from the top
        rs.add(pn, pn + 1)
    assert len(rs) == 2000
    for pn in range(5997, -1, -3):  # then filled in from the top down
        rs.add(pn + 1, pn + 3)
    assert rs.ranges() == [(0, 6000)]
    rs.drop_below(5999)
    assert rs.ranges() == [(5999, 6000)]


# ---------------------------------------------------------------- add_packet


def test_add_packet_reports_duplicates(impl: ModuleType) -> None:
    rs = make(impl)
    assert rs.add_packet(0) is True
    assert rs.add_packet(1) is True  # the next packet extends the top range
    assert rs.add_packet(1) is False
    assert rs.add_packet(5) is True
    assert rs.add_packet(3) is True  # a gap filled below the top
    assert rs.ranges() == [(0, 2), (3, 4), (5, 6)]
    for pn in (0, 1, 3, 5):
        assert rs.add_packet(pn) is False
    assert rs.add_packet(2) is True  # merges three ranges
    assert rs.add_packet(4) is True
    assert rs.ranges() == [(0, 6)]
    assert rs.add_packet(6) is True
    assert rs.add_packet(8) is True
    assert rs.ranges() == [(0, 7), (8, 9)]


def test_add_packet_is_add_of_one(impl: ModuleType) -> None:
    a = make(impl, max_ranges=4)
    b = make(impl, max_ranges=4)
    for pn in [10, 3, 11, 7, 7, 0, 1, 20, 15, 2, 30, 25, 9, 8, 4, 31, 5]:
        a.add_packet(pn)
        b.add(pn, pn + 1)
        assert a.ranges() == b.ranges()


def test_add_packet_below_a_full_set(impl: ModuleType) -> None:
    rs = make(impl, (10, 11), (20, 21), max_ranges=2)
    assert rs.add_packet(0) is True  # it was new, but is the lowest and dropped at once
    assert 0 not in rs
    assert rs.ranges() == [(10, 11), (20, 21)]
    assert rs.add_packet(20) is False


def test_add_packet_after_drop_below(impl: ModuleType) -> None:
    rs = make(impl, (0, 10))
    rs.drop_below(5)
    assert rs.add_packet(4) is True
    assert rs.ranges() == [(4, 10)]
    assert rs.add_packet(9) is False


def test_add_packet_largest_value(impl: ModuleType) -> None:
    rs = make(impl)
    assert rs.add_packet(MAX - 1) is True
    assert rs.add_packet(MAX - 1) is False
    assert rs.bounds() == (MAX - 1, MAX)


@pytest.mark.parametrize("pn", [-1, -(1 << 70), MAX, MAX + 1, 1 << 64, 1 << 70])
def test_add_packet_invalid(impl: ModuleType, pn: int) -> None:
    rs = make(impl, (0, 10), (MAX - 5, MAX))
    with pytest.raises(ValueError, match="invalid range") as info:
        rs.add_packet(pn)
    assert str(info.value) == str(pure.range_error(pn, pn + 1))
    assert rs.ranges() == [(0, 10), (MAX - 5, MAX)]


# ---------------------------------------------------------------- ack_frame

SEP = b"\xee"  # prefix so that pushing into a fresh Buffer cannot hide offset mistakes


def reference_frame(rs: pure.RangeSet, delay: int, ecn: object, max_ranges: int) -> bytes:
    buf = Buffer()
    buf.push_bytes(SEP)
    push_ack_frame(buf, rs.descending()[:max_ranges], delay, ecn)  # type: ignore[arg-type]
    out = bytes(buf.take())
    assert out[:1] == SEP
    return out[1:]


ACK_SETS = [
    [(0, 1)],
    [(5, 6)],
    [(0, 64)],
    [(0, 65)],
    [(100, 200)],
    [(0, 3), (4, 7), (8, 10), (12, 13)],
    [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)],
    [(pn, pn + 1) for pn in range(0, 200, 2)],  # 100 ranges: more than 32
    [(0, 1), (70, 71), (20_000, 20_100), (1 << 31, (1 << 31) + 5)],  # every varint size
    [(0, 10), (MAX - 20, MAX - 10), (MAX - 5, MAX)],
]


@pytest.mark.parametrize("ranges", ACK_SETS)
@pytest.mark.parametrize("delay", [0, 63, 64, 16_383, 16_384, (1 << 30) - 1, 1 << 30, MAX - 1])
@pytest.mark.parametrize("ecn", [None, (0, 0, 0), (1, 64, 1 << 30), (MAX - 1, 0, 7)])
def test_ack_frame_matches_push_ack_frame(
    impl: ModuleType,
    ranges: list[tuple[int, int]],
    delay: int,
    ecn: tuple[int, int, int] | None,
) -> None:
    rs = make(impl, *ranges, max_ranges=1000)
    for max_ranges in (1, 2, 3, 32, 1000, 1 << 70):
        frame = rs.ack_frame(delay, ecn, max_ranges)
        assert type(frame) is bytes
        assert frame == reference_frame(rs, delay, ecn, max_ranges), max_ranges


@pytest.mark.parametrize("ranges", ACK_SETS)
@pytest.mark.parametrize("ecn", [None, (3, 2, 1)])
def test_ack_frame_decodes_back(
    impl: ModuleType, ranges: list[tuple[int, int]], ecn: tuple[int, int, int] | None
) -> None:
    rs = make(impl, *ranges, max_ranges=1000)
    for max_ranges in (1, 4, 32):
        frame = rs.ack_frame(1234, ecn, max_ranges)
        (decoded,) = decode_frames(frame)
        assert isinstance(decoded, AckFrame)
        assert decoded.ranges == rs.descending()[:max_ranges]
        assert decoded.ranges[0][1] - 1 == rs.bounds()[1] - 1  # the largest acknowledged
        assert decoded.delay == 1234
        assert decoded.ecn == ecn
        assert frame[0] == (0x02 if ecn is None else 0x03)


def test_ack_frame_output_buffer_grows(impl: ModuleType) -> None:
    """Frames of growing size on one set (the C core grows its output buffer)."""
    rs = make(impl, max_ranges=5000)
    for pn in range(0, 2 * 3000, 2):
        rs.add_packet(pn)
        if pn % 200 == 0:
            for k in (1, 32, 5000):
                ecn = (pn, 1, 2)
                assert rs.ack_frame(pn, ecn, k) == reference_frame(rs, pn, ecn, k)
    big = rs.ack_frame(MAX - 1, (MAX - 1, MAX - 1, MAX - 1), 5000)
    # type, largest 5998, delay, count 2999, first range, 2999 (gap, length), 3 ECN counts
    assert len(big) == 1 + 2 + 8 + 2 + 1 + 2999 * 2 + 3 * 8
    assert big == reference_frame(rs, MAX - 1, (MAX - 1, MAX - 1, MAX - 1), 5000)
    rs.drop_below(5990)
    assert rs.ack_frame(0, None, 32) == reference_frame(rs, 0, None, 32)


def test_ack_frame_does_not_change_the_set(impl: ModuleType) -> None:
    rs = make(impl, (0, 3), (5, 9), (12, 13))
    before = rs.ranges()
    rs.ack_frame(0, (1, 2, 3), 2)
    rs.ack_frame(0, None, 1)
    assert rs.ranges() == before


ACK_ERRORS: list[tuple[object, object, object, type[Exception], str]] = [
    # (delay, ecn, max_ranges, exception, message fragment)
    (0, None, 0, ValueError, "max_ranges must be >= 1"),
    (0, None, -5, ValueError, "max_ranges must be >= 1"),
    (0, None, 2.0, TypeError, "max_ranges must be an int"),
    (0, None, None, TypeError, "max_ranges must be an int"),
    (-1, None, 32, ValueError, "ACK delay -1 does not fit"),
    (MAX, None, 32, ValueError, "does not fit in a QUIC varint"),
    (1 << 64, None, 32, ValueError, "does not fit in a QUIC varint"),
    (1.0, None, 32, TypeError, "ACK delay must be an int"),
    ("0", None, 32, TypeError, "ACK delay must be an int"),
    (0, (1, 2), 32, TypeError, "ecn must be None or 3 counts"),
    (0, (1, 2, 3, 4), 32, TypeError, "ecn must be None or 3 counts"),
    (0, 5, 32, TypeError, "ecn must be None or 3 counts"),
    (0, (0, -1, 0), 32, ValueError, "ECN count -1 does not fit"),
    (0, (0, 0, MAX), 32, ValueError, "does not fit in a QUIC varint"),
    (0, (0, 0, 1 << 64), 32, ValueError, "does not fit in a QUIC varint"),
    (0, (0, 0.5, 0), 32, TypeError, "ECN count must be an int"),
    (0, (0, 0, "1"), 32, TypeError, "ECN count must be an int"),
    (-1, (1, 2), 0, ValueError, "max_ranges must be >= 1"),  # the first problem wins
    (-1, (1, 2), 1, ValueError, "ACK delay -1"),
]


@pytest.mark.parametrize(("delay", "ecn", "max_ranges", "exc", "fragment"), ACK_ERRORS)
@pytest.mark.parametrize("empty", [False, True])
def test_ack_frame_errors_identical(
    delay: object, ecn: object, max_ranges: object, exc: type[Exception], fragment: str, empty: bool
) -> None:
    messages = []
    for impl in (pure, accelerated):
        rs = make(impl) if empty else make(impl, (0, 3), (7, 9))
        with pytest.raises(exc) as info:
            rs.ack_frame(delay, ecn, max_ranges)  # type: ignore[arg-type]
        assert type(info.value) is exc
        assert fragment in str(info.value)
        messages.append(str(info.value))
        assert rs.ranges() == ([] if empty else [(0, 3), (7, 9)])
    assert messages[0] == messages[1]


@pytest.mark.parametrize("ecn", [None, (0, 0, 0)])
def test_ack_frame_empty(impl: ModuleType, ecn: tuple[int, int, int] | None) -> None:
    rs = make(impl)
    with pytest.raises(ValueError, match="ACK needs at least one range"):
        rs.ack_frame(0, ecn, 32)
    rs.add_packet(3)
    rs.drop_below(4)
    with pytest.raises(ValueError, match="ACK needs at least one range"):
        rs.ack_frame(0, ecn, 32)


def test_ack_frame_accepts_bools_and_lists(impl: ModuleType) -> None:
    """Ints are ints (bool included) and ecn may be any 3-item iterable, in both."""
    rs = make(impl, (0, 3))
    frame = rs.ack_frame(True, [1, 0, False], True)  # type: ignore[arg-type]
    assert frame == reference_frame(rs, 1, (1, 0, 0), 1)


def test_bounds_len_bool_after_add_packet(impl: ModuleType) -> None:
    rs = make(impl)
    assert not rs and len(rs) == 0
    rs.add_packet(7)
    rs.add_packet(3)
    assert rs and len(rs) == 2
    assert rs.bounds() == (3, 8)
    rs.drop_below(100)
    assert not rs
    with pytest.raises(ValueError, match="empty RangeSet has no bounds"):
        rs.bounds()


def test_add_packet_below_trimmed_ranges_is_a_duplicate(impl: ModuleType) -> None:
    """Values in ranges that ``max_ranges`` dropped count as seen (RFC 9000 12.3: a packet
    must not be processed twice): the floor rises to the highest dropped stop."""
    rs = make(impl, max_ranges=3)
    assert rs.floor == 0
    for pn in (0, 3, 6, 9):  # four ranges: (0, 1) is dropped
        assert rs.add_packet(pn) is True
    assert rs.ranges() == [(3, 4), (6, 7), (9, 10)]
    assert rs.floor == 1
    assert rs.add_packet(0) is False  # seen before, forgotten: still a duplicate
    assert rs.add_packet(1) is True  # never seen: new, and the lowest, dropped at once
    assert rs.floor == 2
    assert rs.add_packet(1) is False
    assert rs.add_packet(2) is True  # joins (3, 4)
    assert rs.ranges() == [(2, 4), (6, 7), (9, 10)]


def test_floor_on_subtract_split_and_below_floor_add(impl: ModuleType) -> None:
    rs = make(impl, (0, 10), (20, 30), max_ranges=2)
    rs.subtract(24, 26)  # three ranges: (0, 10) goes
    assert rs.floor == 10
    rs.add(0, 1)  # the lowest, dropped at once: the floor does not go down
    assert rs.floor == 10
    rs.drop_below(22)  # forgetting on purpose does not move the floor
    assert rs.floor == 10
    assert rs.add_packet(5) is False
    assert rs.add_packet(21) is True

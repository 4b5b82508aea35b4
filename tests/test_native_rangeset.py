"""RangeSet unit tests, run against both the C core and the pure-Python twin."""

from __future__ import annotations

from types import ModuleType

import pytest

from quicish.native import accelerated, pure

IMPLS = [pytest.param(pure, id="pure"), pytest.param(accelerated, id="c")]
MAX = 1 << 62


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    mod: ModuleType = request.param
    return mod


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

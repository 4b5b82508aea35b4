"""The C core's extension types (py_*.c, pytypes.c): argument handling, errors, references.

Where both implementations define the behaviour, the C types are compared with the
pure twin call by call: results, and exceptions by type, message and attributes.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import outcome

from quicish.errors import ErrorCode, ProtocolError
from quicish.native import accelerated, pure

MAX = 1 << 62
HUGE = 1 << 70


def same(make: Callable[[Any], Any], call: Callable[[Any], Any]) -> tuple[Any, ...]:
    """``call(make(impl))`` for both implementations: the outcomes must be identical."""
    results = [outcome(lambda impl=impl: call(make(impl))) for impl in (pure, accelerated)]
    assert results[0] == results[1]
    return results[0]


def rs(impl: Any, *ranges: tuple[int, int], max_ranges: int = 256) -> Any:
    s = impl.RangeSet(max_ranges)
    for start, stop in ranges:
        s.add(start, stop)
    return s


def buf(impl: Any, max_offset: int = 1000) -> Any:
    return impl.ReassemblyBuffer(max_offset)


# ---------------------------------------------------------------- RangeSet


@pytest.mark.parametrize("max_ranges", [1, 3, True, HUGE, 0, -1, False, 1.0, "2", None])
def test_rangeset_constructor(max_ranges: object) -> None:
    result = same(lambda impl: impl.RangeSet(max_ranges), lambda s: (s.max_ranges, s.ranges()))
    if result[0] == "ok":
        assert type(result[1][0]) is int
    same(lambda impl: impl.RangeSet(max_ranges=5), lambda s: s.max_ranges)
    same(lambda impl: impl.RangeSet(), lambda s: s.max_ranges)


@pytest.mark.parametrize(
    ("start", "stop"),
    [
        (0, 1),
        (True, 5),
        (5, 5),
        (-1, None),  # the first failed comparison decides, as in pure
        (-1, 3),
        (3, -1),
        (MAX - 1, MAX),
        (MAX, MAX + 1),
        (HUGE, HUGE + 1),
        (1 << 63, 1 << 64),
        (2, HUGE),
    ],
)
def test_add_subtract_arguments(start: object, stop: object) -> None:
    same(lambda impl: rs(impl, (0, 10)), lambda s: (s.add(start, stop), s.ranges()))
    same(lambda impl: rs(impl, (0, 10)), lambda s: (s.subtract(start, stop), s.ranges()))


@pytest.mark.parametrize("pn", [0, 9, 10, True, False, MAX - 1, MAX, -1, 1 << 63, HUGE])
def test_add_packet_arguments(pn: int) -> None:
    same(lambda impl: rs(impl, (0, 10)), lambda s: (s.add_packet(pn), s.ranges()))
    same(lambda impl: rs(impl), lambda s: (s.add_packet(pn), s.ranges()))


@pytest.mark.parametrize("value", [-5, 0, 3, True, 10, MAX, 1 << 63, HUGE, -HUGE])
def test_drop_below_arguments(value: int) -> None:
    same(lambda impl: rs(impl, (0, 5), (8, 12)), lambda s: (s.drop_below(value), s.ranges()))


@pytest.mark.parametrize(
    "value", [0, 4, 5, True, False, -1, MAX, 1 << 63, HUGE, "1", None, 1.5, 4.0, [1]]
)
def test_contains_any_value(value: object) -> None:
    result = same(
        lambda impl: rs(impl, (0, 1), (3, 5)), lambda s: (value in s, s.__contains__(value))
    )
    assert result[1][0] is result[1][1]


def one_shot(*items: int) -> Iterator[int]:
    yield from items


@pytest.mark.parametrize(
    ("delay", "ecn", "max_ranges"),
    [
        (5, None, 1),
        (5, [1, 2, 3], 2),
        (True, (False, True, 2), True),
        (0, (1, 2, 3), HUGE),
        (0, None, 1 << 63),
        (MAX - 1, (MAX - 1, 0, 0), 32),
        (0, "abc", 32),  # an iterable of three non-ints
        (0, "ab", 32),
        (0, {1: 2, 3: 4, 5: 6}, 32),
        (0, range(3), 32),
        (0, 7, 32),
        (0, (1, 2, 3), 0),
        (0, (1, 2, 3), -HUGE),
        (-1, None, 1),
        (MAX, None, 1),
        (0, (1, 2, -1), 1),
        (0, (1, 2, 1.0), 1),
        (None, None, 1),
    ],
)
@pytest.mark.parametrize("empty", [False, True])
def test_ack_frame_arguments(delay: object, ecn: object, max_ranges: object, empty: bool) -> None:
    ranges = [] if empty else [(0, 3), (5, 9), (12, 13)]
    same(lambda impl: rs(impl, *ranges), lambda s: s.ack_frame(delay, ecn, max_ranges))


def test_ack_frame_one_shot_iterator() -> None:
    """A generator is read once (pure unpacks it once)."""
    same(lambda impl: rs(impl, (0, 3)), lambda s: s.ack_frame(0, one_shot(1, 2, 3), 32))
    for impl in (pure, accelerated):
        with pytest.raises(TypeError, match="ecn must be None or 3 counts"):
            rs(impl, (0, 3)).ack_frame(0, one_shot(1, 2), 32)


def test_keyword_arguments() -> None:
    same(lambda impl: rs(impl), lambda s: (s.add(start=1, stop=3), s.ranges()))
    same(lambda impl: rs(impl), lambda s: (s.add(1, stop=3), s.subtract(start=2, stop=3)))
    same(lambda impl: rs(impl), lambda s: (s.add_packet(pn=4), s.drop_below(value=5), s.ranges()))
    same(lambda impl: rs(impl, (0, 2)), lambda s: s.ack_frame(delay=1, ecn=None, max_ranges=3))
    for impl in (pure, accelerated):
        s = rs(impl)
        with pytest.raises(TypeError):
            s.add(1)
        with pytest.raises(TypeError):
            s.add(1, 2, 3)
        with pytest.raises(TypeError):
            s.add(1, start=2)
        with pytest.raises(TypeError):
            s.add(1, 2, bogus=3)
        with pytest.raises(TypeError):
            s.bounds(1)
        with pytest.raises(TypeError):
            s.ack_frame(0, None)


def test_rangeset_type_behaves_as_pure() -> None:
    c = rs(accelerated, (0, 3), (5, 9))
    p = rs(pure, (0, 3), (5, 9))
    assert issubclass(type(c), pure.AbstractRangeSet)
    assert type(c).__module__ == "quicish.native.accelerated"
    assert type(c).__name__ == type(c).__qualname__ == "RangeSet"
    assert c == p and p == c
    assert (c != p) is False and (p != c) is False
    assert c == rs(accelerated, (5, 9), (0, 3), max_ranges=3)
    assert c != rs(accelerated, (0, 9)) and rs(pure, (0, 9)) != c
    assert c != [(0, 3), (5, 9)]
    assert (c == object()) is False
    with pytest.raises(TypeError):
        _ = c < p
    with pytest.raises(TypeError):
        hash(c)
    assert type(c).__hash__ is None and type(p).__hash__ is None
    assert repr(c) == repr(p) == "RangeSet([(0, 3), (5, 9)])"
    assert list(c) == list(p) == [(0, 3), (5, 9)]
    assert len(c) == 2 and bool(c) and not rs(accelerated)
    with pytest.raises(AttributeError):
        c.extra = 1  # no __dict__, as pure's __slots__
    with pytest.raises(AttributeError):
        c.max_ranges = 5


def test_subclasses_work() -> None:
    class Mine(accelerated.RangeSet):
        def add(self, start: int, stop: int) -> None:
            super().add(start, stop + 1)

    m = Mine(4)
    m.add(1, 2)
    assert m.ranges() == [(1, 3)] and 2 in m and isinstance(m, pure.AbstractRangeSet)
    m.note = "a subclass without __slots__ has a __dict__"  # type: ignore[attr-defined]
    del m
    gc.collect()

    class Buf(accelerated.ReassemblyBuffer):
        pass

    b = Buf(10)
    b.insert(0, b"abc")
    assert b.read() == b"abc"


# ------------------------------------------------------- ReassemblyBuffer


@pytest.mark.parametrize("max_offset", [0, 10, True, MAX, MAX + 1, -1, HUGE, 1.0, None])
def test_reassembly_constructor(max_offset: object) -> None:
    same(lambda impl: impl.ReassemblyBuffer(max_offset), lambda b: b.max_offset)
    same(lambda impl: impl.ReassemblyBuffer(max_offset=max_offset), lambda b: b.max_offset)


@pytest.mark.parametrize("value", [0, 5, True, MAX, MAX + 1, -1, HUGE, 2.0, "3"])
def test_max_offset_setter(value: object) -> None:
    def assign(b: Any) -> Any:
        b.max_offset = value
        return b.max_offset

    same(buf, assign)
    for impl in (pure, accelerated):
        with pytest.raises(AttributeError):
            del buf(impl).max_offset


DATA = b"0123456789abcdef"


@pytest.mark.parametrize(
    "data",
    [
        DATA,
        bytearray(DATA),
        memoryview(DATA),
        memoryview(b"__" + DATA)[2:],
        memoryview(DATA)[::2],  # not contiguous: copied
        memoryview(bytearray(DATA)),
        b"",
    ],
    ids=["bytes", "bytearray", "view", "view-slice", "strided", "view-bytearray", "empty"],
)
@pytest.mark.parametrize("offset", [0, 3, 990, MAX, MAX + 1, 1 << 64, HUGE, -1, -HUGE, True])
@pytest.mark.parametrize("fin", [False, True, 0, 1])
def test_insert_arguments(data: Any, offset: Any, fin: Any) -> None:
    def run(b: Any) -> Any:
        return (b.insert(offset, data, fin), b.read(), b.highest_offset, b.final_size)

    result = same(buf, run)
    if result[0] != "ok":
        return
    same(buf, lambda b: (b.insert(offset=offset, data=data, fin=fin), b.read()))
    same(buf, lambda b: (b.insert(offset, data=data), b.read()))


@pytest.mark.parametrize("size", [0, 10, True, MAX, MAX + 1, HUGE, -1, -HUGE])
def test_set_final_size_arguments(size: Any) -> None:
    def run(b: Any) -> Any:
        b.insert(0, b"abc")
        return (b.set_final_size(size), b.final_size, b.finished)

    same(lambda impl: buf(impl, MAX), run)
    same(lambda impl: buf(impl, MAX), lambda b: b.set_final_size(size=size))


@pytest.mark.parametrize("max_bytes", [None, -1, 0, 1, 5, 6, 100, HUGE, -HUGE, True, False])
def test_read_arguments(max_bytes: Any) -> None:
    def run(b: Any) -> Any:
        b.insert(0, b"ab")
        b.insert(2, b"cdef")  # two pieces
        out = b.read() if max_bytes is None else b.read(max_bytes)
        return (out, b.read_offset, b.readable, b.buffered)

    same(buf, run)
    if max_bytes is not None:
        same(buf, lambda b: (b.insert(0, b"xyz"), b.read(max_bytes=max_bytes)))


def test_insert_bad_data() -> None:
    for impl in (pure, accelerated):
        b = buf(impl)
        for bad in (None, 5):
            with pytest.raises(TypeError):
                b.insert(0, bad)
        with pytest.raises(TypeError):
            b.insert(0)
        with pytest.raises(TypeError):
            b.insert(0, b"a", True, 4)
        with pytest.raises(TypeError):
            b.insert(0, b"a", bogus=True)
        assert b.highest_offset == 0


def test_errors_are_pure_errors() -> None:
    """Type, message and attributes (QUIC code, reason, frame type) all identical."""

    def errors(impl: Any) -> list[Any]:
        found = []
        b = impl.ReassemblyBuffer(100)
        b.insert(10, b"abc", True)
        calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
            (b.insert, (20, b"x")),
            (b.insert, (0, b"x", True)),
            (b.set_final_size, (12,)),
            (b.insert, (HUGE, b"xy")),
            (impl.ReassemblyBuffer(5).insert, (4, b"xy")),
            (impl.ReassemblyBuffer(50).set_final_size, (HUGE,)),
            (b.insert, (-3, b"")),
            (impl.RangeSet().add_packet, (-1,)),
            (impl.RangeSet().add, (HUGE, 3)),
        ]
        for fn, args in calls:
            try:
                fn(*args)
            except (ProtocolError, ValueError) as exc:
                found.append((type(exc), exc.args, getattr(exc, "__dict__", None)))
        return found

    assert errors(pure) == errors(accelerated)
    assert len(errors(pure)) == 9


# ------------------------------------------------------------- references


def test_no_reference_leaks() -> None:
    """Arguments (and buffers) are released on every path, success and error."""
    big = HUGE + 12345
    data = bytes(range(200))
    ba = bytearray(data)
    tup = (1, 2, 3)
    lst = [1, 2, 3]
    watched = [big, data, ba, tup, lst]
    for _ in range(3):  # warm up caches (pure functions, interned strings)
        exercise(big, data, ba, tup, lst)
    gc.collect()
    before = [sys.getrefcount(x) for x in watched]
    for _ in range(200):
        exercise(big, data, ba, tup, lst)
    gc.collect()
    assert [sys.getrefcount(x) for x in watched] == before


def exercise(big: int, data: bytes, ba: bytearray, tup: tuple[int, ...], lst: list[int]) -> None:
    s = accelerated.RangeSet(8)
    calls: tuple[Callable[[], object], ...] = (
        lambda: s.add(big, big + 1),
        lambda: s.add(1, big),
        lambda: s.add_packet(big),
        lambda: s.ack_frame(big, None, 1),
        lambda: s.ack_frame(0, (1, big, 3), 1),
        lambda: s.ack_frame(0, lst, 0),  # type: ignore[arg-type]
    )
    for call in calls:
        with pytest.raises(ValueError):
            call()
    s.add_packet(3)
    s.drop_below(big)
    s.add(0, 10)
    s.ack_frame(0, tup, big)  # type: ignore[arg-type]
    s.ack_frame(0, lst, 5)  # type: ignore[arg-type]
    assert big not in s
    b = accelerated.ReassemblyBuffer(1000)
    view = memoryview(ba)
    b.insert(0, data)
    b.insert(200, ba)
    b.insert(100, view[50:150])
    b.insert(0, view[::3])
    view.release()  # raises BufferError if insert kept an export
    with pytest.raises(ProtocolError):
        b.insert(big, data)
    with pytest.raises(ProtocolError):
        b.insert(990, data, True)
    with pytest.raises(ValueError):
        b.set_final_size(-big)
    with pytest.raises(ValueError):
        b.max_offset = big
    b.read(big)


def test_errors_are_quicish_errors_raised_by_the_c_types_themselves() -> None:
    """The C types raise quicish.errors.ProtocolError (and builtins) directly: the twin's
    error functions play no part (replacing them changes nothing)."""
    saved = {name: getattr(pure, name) for name in ("flow_error", "range_error", "offset_error")}

    def broken(*args: object) -> Exception:
        raise AssertionError("the C types called a function of pure")

    try:
        for name in saved:
            setattr(pure, name, broken)
        buf = accelerated.ReassemblyBuffer(10)
        with pytest.raises(ProtocolError) as info:
            buf.insert(5, b"x" * 10)
        assert type(info.value) is ProtocolError
        assert info.value.code == ErrorCode.FLOW_CONTROL_ERROR
        assert info.value.reason == "data up to offset 15 exceeds the flow-control limit 10"
        with pytest.raises(ValueError, match=r"invalid range \[3, 2\)"):
            accelerated.RangeSet().add(3, 2)
        with pytest.raises(ValueError, match=r"offset must be an int in \[0, 2\*\*62\], got -1"):
            buf.insert(-1, b"")
    finally:
        for name, fn in saved.items():
            setattr(pure, name, fn)

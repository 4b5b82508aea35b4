"""Thin wrappers over the cffi C core with exactly the API and errors of ``pure``.

The extension module is ``quicish.native._core``, or the module named by the
``QUICISH_NATIVE_MODULE`` environment variable (the AddressSanitizer build uses
``quicish.native._core_asan``). Importing this module raises ImportError when the
extension is missing.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from .pure import (
    VALUE_MAX,
    AbstractRangeSet,
    Buffer,
    ack_frame_error,
    check_offset,
    final_below_error,
    final_beyond_error,
    final_changed_error,
    flow_error,
    offset_error,
    range_error,
)

MODULE_NAME = os.environ.get("QUICISH_NATIVE_MODULE") or "quicish.native._core"
_mod = importlib.import_module(MODULE_NAME)
ffi: Any = _mod.ffi
lib: Any = _mod.lib

# C error codes (core.h).
_EINVAL = -1
_ENOMEM = -2
_EFLOW = -3
_EFINAL_CHANGED = -4
_EFINAL_BEYOND = -5
_EFINAL_BELOW = -6
_EEMPTY = -7
_ENOSPC = -8
_U64_MAX = (1 << 64) - 1

# Bound once: module globals are cheaper than attribute lookups on ``lib``.
_NULL: Any = ffi.NULL
_gc: Callable[[Any, Any], Any] = ffi.gc
_unpack: Callable[[Any, int], Any] = ffi.unpack
_from_buffer: Callable[[Any], Any] = ffi.from_buffer
_rs_new: Callable[[int], Any] = lib.qr_rs_new
_rs_free: Any = lib.qr_rs_free
_rs_add: Callable[[Any, int, int], int] = lib.qr_rs_add
_rs_subtract: Callable[[Any, int, int], int] = lib.qr_rs_subtract
_rs_contains: Callable[[Any, object], bool] = lib.qr_rs_contains
_rs_drop_below: Callable[[Any, int], None] = lib.qr_rs_drop_below
_rs_len: Callable[[Any], int] = lib.qr_rs_len
_rs_lo: Callable[[Any], int] = lib.qr_rs_lo
_rs_hi: Callable[[Any], int] = lib.qr_rs_hi
_rs_add_packet: Callable[[Any, int], int] = lib.qr_rs_add_packet
_rs_ack_frame: Callable[[Any, int, int], int] = lib.qr_rs_ack_frame
_rs_ack_frame_ecn: Callable[[Any, int, int, int, int, int], int] = lib.qr_rs_ack_frame_ecn
_rs_reserve_out: Callable[[Any], int] = lib.qr_rs_reserve_out
_ra_new: Callable[[int], Any] = lib.qr_ra_new
_ra_free: Any = lib.qr_ra_free
_ra_insert: Callable[[Any, int, Any, int, bool], int] = lib.qr_ra_insert
_ra_take: Callable[[Any, int], Any] = lib.qr_ra_take
_ra_take_all: Callable[[Any], Any] = lib.qr_ra_take_all
_ra_readable: Callable[[Any], int] = lib.qr_ra_readable


def _rs_error(code: int, start: int, stop: int) -> Exception:
    return MemoryError("RangeSet") if code == _ENOMEM else range_error(start, stop)


class RangeSet(AbstractRangeSet):
    """Sorted disjoint half-open ranges ``[start, stop)``.

    At most ``max_ranges`` ranges are kept: beyond that the lowest are dropped.
    """

    __slots__ = ("_max", "_out", "_p")

    def __init__(self, max_ranges: int = 256) -> None:
        if not isinstance(max_ranges, int) or max_ranges < 1:
            raise ValueError(f"max_ranges must be a positive int, got {max_ranges!r}")
        p = _rs_new(min(max_ranges, _U64_MAX))
        if p == _NULL:
            raise MemoryError("RangeSet")
        self._p: Any = _gc(p, _rs_free)
        self._max = max_ranges
        self._out: Any = _NULL  # == self._p.out, re-read only when qr_rs_reserve_out moves it

    @property
    def max_ranges(self) -> int:
        return self._max

    def add(self, start: int, stop: int) -> None:
        """Add ``[start, stop)``, merging with overlapping or adjacent ranges."""
        try:
            r = _rs_add(self._p, start, stop)
        except OverflowError:
            raise range_error(start, stop) from None
        if r:
            raise _rs_error(r, start, stop)

    def add_packet(self, pn: int) -> bool:
        """Add the single value ``pn``; False if it was already present (a duplicate).

        Same as ``add(pn, pn + 1)`` (and the same ValueError out of range) but answers
        whether ``pn`` was new: True even if ``max_ranges`` drops it again at once.
        """
        try:
            r = _rs_add_packet(self._p, pn)
        except OverflowError:
            raise range_error(pn, pn + 1) from None
        if r == 1:
            return True
        if r == 0:
            return False
        raise _rs_error(r, pn, pn + 1)

    def ack_frame(self, delay: int, ecn: tuple[int, int, int] | None, max_ranges: int) -> bytes:
        """The complete ACK frame (type 0x02, or ACK_ECN 0x03 with ``ecn`` = ECT(0), ECT(1),
        CE counts) for the highest ``max_ranges`` ranges, RFC 9000 section 19.3.

        Byte-identical to ``wire.frames.push_ack_frame(buf, self.descending()[:max_ranges],
        delay, ecn)``; the largest acknowledged is ``bounds()[1] - 1``. Raises ValueError
        for an empty set or a value outside its varint, TypeError for a non-int value
        (see :func:`~quicish.native.pure.ack_frame_error`).
        """
        try:
            if ecn is None:
                n = _rs_ack_frame(self._p, delay, max_ranges)
            else:
                ect0, ect1, ce = ecn
                n = _rs_ack_frame_ecn(self._p, delay, max_ranges, ect0, ect1, ce)
        except (OverflowError, TypeError, ValueError):
            n = _EINVAL
        if n > 0:
            out: bytes = _unpack(self._out, n)
            return out
        return self._ack_frame_slow(n, delay, ecn, max_ranges)

    def _ack_frame_slow(
        self, code: int, delay: int, ecn: tuple[int, int, int] | None, max_ranges: int
    ) -> bytes:
        p = self._p
        if code == _ENOSPC:  # first frame, or more ranges than ever: grow the output buffer
            if _rs_reserve_out(p):
                raise MemoryError("RangeSet")
            self._out = p.out
            return self.ack_frame(delay, ecn, max_ranges)
        if code == _ENOMEM:
            raise MemoryError("RangeSet")
        err = ack_frame_error(not p.len, delay, ecn, max_ranges)
        if err is not None:
            raise err
        if max_ranges > _U64_MAX:  # valid, but beyond size_t: the same as "all of them"
            return self.ack_frame(delay, ecn, _U64_MAX)
        raise AssertionError(f"unexpected C result {code}")  # pragma: no cover

    def subtract(self, start: int, stop: int) -> None:
        """Remove ``[start, stop)``; a split beyond ``max_ranges`` drops the lowest range."""
        try:
            r = _rs_subtract(self._p, start, stop)
        except OverflowError:
            raise range_error(start, stop) from None
        if r:
            raise _rs_error(r, start, stop)

    def drop_below(self, value: int) -> None:
        """Remove every value below ``value``."""
        if value > _U64_MAX:
            value = _U64_MAX
        if value > 0:
            _rs_drop_below(self._p, value)

    def __contains__(self, value: object) -> bool:
        p = self._p
        try:
            # Packet numbers mostly arrive above every range: answered by the highest stop,
            # through a one-argument call (no argument tuple), which is the cheapest kind.
            if value >= _rs_hi(p):  # type: ignore[operator]
                return False
            return _rs_contains(p, value)
        except (OverflowError, TypeError):
            return False

    def __len__(self) -> int:
        return _rs_len(self._p)

    def __bool__(self) -> bool:
        return _rs_len(self._p) != 0

    def bounds(self) -> tuple[int, int]:
        """``(lowest start, highest stop)``; ValueError when empty."""
        p = self._p
        hi = _rs_hi(p)
        if not hi:  # a non-empty set has stop >= 1
            raise ValueError("empty RangeSet has no bounds")
        return _rs_lo(p), hi

    def ranges(self) -> list[tuple[int, int]]:
        """Ascending ``(start, stop)`` pairs."""
        p = self._p
        n = _rs_len(p)
        if not n:
            return []
        it = iter(_unpack(p.b, 2 * n))
        return list(zip(it, it, strict=True))

    def descending(self) -> list[tuple[int, int]]:
        """``(start, stop)`` pairs, highest first (the order of ACK frame ranges)."""
        p = self._p
        n = _rs_len(p)
        if not n:
            return []
        b: list[int] = _unpack(p.b, 2 * n)
        return list(zip(b[-2::-2], b[::-2], strict=True))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.ranges())


class ReassemblyBuffer:
    """Receive side of one stream: out-of-order inserts, in-order reads, final size checks."""

    __slots__ = ("_p",)

    def __init__(self, max_offset: int) -> None:
        check_offset("max_offset", max_offset)
        p = _ra_new(max_offset)
        if p == _NULL:
            raise MemoryError("ReassemblyBuffer")
        self._p: Any = _gc(p, _ra_free)

    def insert(self, offset: int, data: Buffer, fin: bool = False) -> int:
        """Store ``data`` at ``offset``; returns how much ``highest_offset`` grew."""
        try:
            # The engine passes memoryview slices of the packet (frames.decode_frames);
            # bytes go straight through (cffi passes their buffer without a copy).
            if type(data) is not bytes:
                r = _ra_insert(self._p, offset, _from_buffer(data), len(data), fin)
            else:
                r = _ra_insert(self._p, offset, data, len(data), fin)
        except OverflowError:
            if offset < 0:
                raise offset_error("offset", offset) from None
            # Beyond uint64: any value above 2**62 fails the same checks.
            r = _ra_insert(self._p, VALUE_MAX + 1, _from_buffer(data), len(data), fin)
        if r < 0:
            raise self._error(r, offset + len(data))
        return r

    def _error(self, code: int, end: int) -> Exception:
        p = self._p
        if code == _EFLOW:
            return flow_error(end, p.max_offset)
        if code == _EFINAL_CHANGED:
            return final_changed_error(end, p.final_size)
        if code == _EFINAL_BEYOND:
            return final_beyond_error(end, p.final_size)
        if code == _EFINAL_BELOW:
            return final_below_error(end, p.highest_offset)
        return MemoryError("ReassemblyBuffer")

    def read(self, max_bytes: int = -1) -> bytes:
        """Up to ``max_bytes`` (all when negative) contiguous bytes from ``read_offset``."""
        p = self._p
        n = _ra_readable(p)
        if 0 <= max_bytes < n:
            if not max_bytes:
                return b""
            n = max_bytes
            ptr = _ra_take(p, n)
        elif n:
            ptr = _ra_take_all(p)  # one argument: the cheapest kind of cffi call
        else:
            return b""
        try:
            out: bytes = _unpack(ptr, n)
        except RuntimeError:  # NULL: out of memory, nothing was consumed
            raise MemoryError("ReassemblyBuffer") from None
        return out

    def set_final_size(self, size: int) -> int:
        """Learn the final size without data (RESET_STREAM); same checks as a FIN."""
        if size < 0:
            raise offset_error("final size", size)
        return self.insert(size, b"", True)

    @property
    def max_offset(self) -> int:
        n: int = self._p.max_offset
        return n

    @max_offset.setter
    def max_offset(self, value: int) -> None:
        self._p.max_offset = check_offset("max_offset", value)

    @property
    def readable(self) -> int:
        return _ra_readable(self._p)

    @property
    def read_offset(self) -> int:
        n: int = self._p.read_offset
        return n

    @property
    def highest_offset(self) -> int:
        n: int = self._p.highest_offset
        return n

    @property
    def final_size(self) -> int | None:
        p = self._p
        n: int | None = p.final_size if p.has_final else None
        return n

    @property
    def finished(self) -> bool:
        p = self._p
        return bool(p.has_final and p.read_offset == p.final_size)

    @property
    def buffered(self) -> int:
        n: int = self._p.buffered
        return n

    def memory(self) -> int:
        """Bytes allocated by the C buffer (C-only diagnostic)."""
        n: int = lib.qr_ra_memory(self._p)
        return n

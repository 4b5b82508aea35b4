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
_ra_new: Callable[[int], Any] = lib.qr_ra_new
_ra_free: Any = lib.qr_ra_free
_ra_insert: Callable[[Any, int, Any, int, bool], int] = lib.qr_ra_insert
_ra_take: Callable[[Any, int], Any] = lib.qr_ra_take


def _rs_error(code: int, start: int, stop: int) -> Exception:
    return MemoryError("RangeSet") if code == _ENOMEM else range_error(start, stop)


class RangeSet(AbstractRangeSet):
    """Sorted disjoint half-open ranges ``[start, stop)``.

    At most ``max_ranges`` ranges are kept: beyond that the lowest are dropped.
    """

    __slots__ = ("_max", "_p")

    def __init__(self, max_ranges: int = 256) -> None:
        if not isinstance(max_ranges, int) or max_ranges < 1:
            raise ValueError(f"max_ranges must be a positive int, got {max_ranges!r}")
        p = _rs_new(min(max_ranges, _U64_MAX))
        if p == _NULL:
            raise MemoryError("RangeSet")
        self._p: Any = _gc(p, _rs_free)
        self._max = max_ranges

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
        try:
            return _rs_contains(self._p, value)
        except (OverflowError, TypeError):
            return False

    def __len__(self) -> int:
        n: int = self._p.len
        return n

    def __bool__(self) -> bool:
        n: int = self._p.len
        return n != 0

    def bounds(self) -> tuple[int, int]:
        """``(lowest start, highest stop)``; ValueError when empty."""
        p = self._p
        n: int = p.len
        if not n:
            raise ValueError("empty RangeSet has no bounds")
        b = p.b
        return b[0], b[2 * n - 1]

    def ranges(self) -> list[tuple[int, int]]:
        """Ascending ``(start, stop)`` pairs."""
        p = self._p
        n: int = p.len
        if not n:
            return []
        it = iter(_unpack(p.b, 2 * n))
        return list(zip(it, it, strict=True))

    def descending(self) -> list[tuple[int, int]]:
        """``(start, stop)`` pairs, highest first (the order of ACK frame ranges)."""
        p = self._p
        n: int = p.len
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
            if type(data) is bytes:
                r = _ra_insert(self._p, offset, data, len(data), fin)
            else:
                r = _ra_insert(self._p, offset, _from_buffer(data), len(data), fin)
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
        n: int = p.readable
        if 0 <= max_bytes < n:
            n = max_bytes
        if not n:
            return b""
        ptr = _ra_take(p, n)
        if ptr == _NULL:
            raise MemoryError("ReassemblyBuffer")
        out: bytes = _unpack(ptr, n)
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
        n: int = self._p.readable
        return n

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

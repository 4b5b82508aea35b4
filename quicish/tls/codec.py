"""Byte reader and writer for TLS presentation-language structures.

Every malformation (truncation, a length running past its block, trailing bytes)
raises ``CryptoError(decode_error)``, so message decoders built on :class:`Reader`
never leak ``IndexError`` or ``struct.error``.
"""

from __future__ import annotations

import struct

from ..errors import CryptoError
from .alerts import Alert, alert


class Reader:
    """A cursor over one TLS structure."""

    __slots__ = ("_data", "_end", "pos")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self.pos = start
        self._end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self._end - self.pos

    def eof(self) -> bool:
        return self.pos >= self._end

    def expect_end(self, what: str) -> None:
        if self.pos != self._end:
            raise alert(Alert.DECODE_ERROR, f"{self._end - self.pos} trailing bytes in {what}")

    def _truncated(self, n: int) -> CryptoError:
        return alert(Alert.DECODE_ERROR, f"truncated: need {n} bytes, have {self._end - self.pos}")

    def uint(self, size: int) -> int:
        pos = self.pos
        end = pos + size
        if end > self._end:
            raise self._truncated(size)
        self.pos = end
        return int.from_bytes(self._data[pos:end], "big")

    def u8(self) -> int:
        pos = self.pos
        if pos >= self._end:
            raise self._truncated(1)
        self.pos = pos + 1
        return self._data[pos]

    def u16(self) -> int:
        pos = self.pos
        if pos + 2 > self._end:
            raise self._truncated(2)
        self.pos = pos + 2
        data = self._data
        return data[pos] << 8 | data[pos + 1]

    def u32(self) -> int:
        return self.uint(4)

    def raw(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if end > self._end:
            raise self._truncated(n)
        self.pos = end
        return self._data[pos:end]

    def _vector(self, len_size: int, min_len: int, what: str) -> int:
        """Read a ``len_size``-byte length of at least ``min_len``; advance past the
        vector it announces and return the vector's start offset."""
        pos = self.pos
        start = pos + len_size
        if start > self._end:
            raise self._truncated(len_size)
        n = int.from_bytes(self._data[pos:start], "big")
        if n < min_len or start + n > self._end:
            self.pos = start
            if n < min_len:
                raise alert(Alert.DECODE_ERROR, f"{what} shorter than {min_len} bytes")
            raise self._truncated(n)
        self.pos = start + n
        return start

    def opaque(self, len_size: int, min_len: int = 0, what: str = "vector") -> bytes:
        """A vector ``<min_len..2^(8*len_size)-1>`` of bytes with a ``len_size``-byte length."""
        start = self._vector(len_size, min_len, what)
        return self._data[start : self.pos]

    def block(self, len_size: int, min_len: int = 0, what: str = "vector") -> Reader:
        """A sub-reader over a length-prefixed block (zero copy)."""
        start = self._vector(len_size, min_len, what)
        return Reader(self._data, start, self.pos)

    def u16_list(self, len_size: int, what: str, min_len: int = 2) -> list[int]:
        """A vector of uint16 values (cipher suites, groups, schemes, versions)."""
        start = self._vector(len_size, min_len, what)
        n = self.pos - start
        if n % 2:
            raise alert(Alert.DECODE_ERROR, f"odd length in {what}")
        return list(struct.unpack(f">{n // 2}H", self._data[start : self.pos]))


class Writer:
    """A growable output buffer with length-prefixed blocks."""

    __slots__ = ("_out",)

    def __init__(self) -> None:
        self._out = bytearray()

    def uint(self, value: int, size: int) -> None:
        self._out += value.to_bytes(size, "big")

    def u8(self, value: int) -> None:
        self._out.append(value)

    def u16(self, value: int) -> None:
        self._out += value.to_bytes(2, "big")

    def u32(self, value: int) -> None:
        self._out += value.to_bytes(4, "big")

    def raw(self, data: bytes) -> None:
        self._out += data

    def opaque(self, len_size: int, data: bytes) -> None:
        self._out += encode_opaque(len_size, data)

    def u16_list(self, len_size: int, values: list[int]) -> None:
        self._out += encode_u16s(values, len_size)

    def __len__(self) -> int:
        return len(self._out)

    def data(self) -> bytes:
        return bytes(self._out)


def encode_u16s(values: list[int] | tuple[int, ...], len_size: int) -> bytes:
    """A vector of uint16 values with a ``len_size``-byte length, as bytes."""
    n = len(values)
    return (2 * n).to_bytes(len_size, "big") + struct.pack(f">{n}H", *values)


def encode_opaque(len_size: int, data: bytes) -> bytes:
    """``data`` after its ``len_size``-byte length; ValueError when it does not fit."""
    n = len(data)
    if n >= 1 << (8 * len_size):
        raise ValueError(f"{n} bytes do not fit a {len_size}-byte length")
    return n.to_bytes(len_size, "big") + data

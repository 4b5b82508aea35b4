"""Byte reader and writer for TLS presentation-language structures.

Every malformation (truncation, a length running past its block, trailing bytes)
raises ``CryptoError(decode_error)``, so message decoders built on :class:`Reader`
never leak ``IndexError`` or ``struct.error``.
"""

from __future__ import annotations

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

    def _take(self, n: int) -> int:
        pos = self.pos
        if pos + n > self._end:
            raise alert(Alert.DECODE_ERROR, f"truncated: need {n} bytes, have {self._end - pos}")
        self.pos = pos + n
        return pos

    def uint(self, size: int) -> int:
        pos = self._take(size)
        return int.from_bytes(self._data[pos : pos + size], "big")

    def u8(self) -> int:
        return self.uint(1)

    def u16(self) -> int:
        return self.uint(2)

    def u24(self) -> int:
        return self.uint(3)

    def u32(self) -> int:
        return self.uint(4)

    def raw(self, n: int) -> bytes:
        pos = self._take(n)
        return self._data[pos : pos + n]

    def opaque(self, len_size: int, min_len: int = 0, what: str = "vector") -> bytes:
        """A vector ``<min_len..2^(8*len_size)-1>`` of bytes with a ``len_size``-byte length."""
        n = self.uint(len_size)
        if n < min_len:
            raise alert(Alert.DECODE_ERROR, f"{what} shorter than {min_len} bytes")
        return self.raw(n)

    def block(self, len_size: int, min_len: int = 0, what: str = "vector") -> Reader:
        """A sub-reader over a length-prefixed block (zero copy)."""
        n = self.uint(len_size)
        if n < min_len:
            raise alert(Alert.DECODE_ERROR, f"{what} shorter than {min_len} bytes")
        start = self._take(n)
        return Reader(self._data, start, start + n)

    def u16_list(self, len_size: int, what: str, min_len: int = 2) -> list[int]:
        """A vector of uint16 values (cipher suites, groups, schemes, versions)."""
        block = self.block(len_size, min_len, what)
        if block.remaining % 2:
            raise alert(Alert.DECODE_ERROR, f"odd length in {what}")
        return [block.u16() for _ in range(block.remaining // 2)]


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
        self.uint(value, 2)

    def u24(self, value: int) -> None:
        self.uint(value, 3)

    def u32(self, value: int) -> None:
        self.uint(value, 4)

    def raw(self, data: bytes) -> None:
        self._out += data

    def opaque(self, len_size: int, data: bytes) -> None:
        if len(data) >= 1 << (8 * len_size):
            raise ValueError(f"{len(data)} bytes do not fit a {len_size}-byte length")
        self.uint(len(data), len_size)
        self._out += data

    def u16_list(self, len_size: int, values: list[int]) -> None:
        self.uint(2 * len(values), len_size)
        for v in values:
            self.uint(v, 2)

    def __len__(self) -> int:
        return len(self._out)

    def data(self) -> bytes:
        return bytes(self._out)

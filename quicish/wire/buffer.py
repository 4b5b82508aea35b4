"""Byte cursor for reading and writing QUIC wire data, and variable-length integers (RFC 9000 §16).

Reading past the end raises :class:`quicish.errors.DecodeError`, never ``IndexError``
or ``struct.error``, so every decoder built on it is safe against truncated input.
"""

from __future__ import annotations

import struct

from ..errors import DecodeError

VARINT_MAX = (1 << 62) - 1

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!L")
_U64 = struct.Struct("!Q")


def varint_size(value: int) -> int:
    """Number of bytes the shortest encoding of ``value`` takes."""
    if value < 0x40:
        return 1
    if value < 0x4000:
        return 2
    if value < 0x40000000:
        return 4
    if value <= VARINT_MAX:
        return 8
    raise ValueError(f"{value} does not fit in a QUIC varint")


def encode_varint(value: int) -> bytes:
    """Shortest encoding of ``value``."""
    if value < 0x40:
        return bytes((value,)) if value >= 0 else _negative(value)
    if value < 0x4000:
        return _U16.pack(value | 0x4000)
    if value < 0x40000000:
        return _U32.pack(value | 0x80000000)
    if value <= VARINT_MAX:
        return _U64.pack(value | 0xC000000000000000)
    raise ValueError(f"{value} does not fit in a QUIC varint")


def _negative(value: int) -> bytes:
    raise ValueError(f"{value} does not fit in a QUIC varint")


class Buffer:
    """A read cursor over bytes, or a growable write buffer.

    Reading: ``Buffer(data)`` then ``pull_*``. Writing: ``Buffer()`` then ``push_*`` and
    :meth:`data`. ``pos`` is the read position.
    """

    __slots__ = ("_data", "_end", "_out", "pos")

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        self._data = data
        self._end = len(data)
        self.pos = 0
        self._out = bytearray()

    # ---- reading -------------------------------------------------------------------------
    def eof(self) -> bool:
        return self.pos >= self._end

    @property
    def remaining(self) -> int:
        return self._end - self.pos

    def _need(self, n: int) -> int:
        pos = self.pos
        if n < 0 or pos + n > self._end:
            raise DecodeError(f"truncated: need {n} bytes at {pos}, have {self._end - pos}")
        self.pos = pos + n
        return pos

    def pull_uint8(self) -> int:
        pos = self._need(1)
        return self._data[pos]

    def pull_uint16(self) -> int:
        pos = self._need(2)
        return int(_U16.unpack_from(self._data, pos)[0])

    def pull_uint24(self) -> int:
        pos = self._need(3)
        d = self._data
        return (d[pos] << 16) | (d[pos + 1] << 8) | d[pos + 2]

    def pull_uint32(self) -> int:
        pos = self._need(4)
        return int(_U32.unpack_from(self._data, pos)[0])

    def pull_uint64(self) -> int:
        pos = self._need(8)
        return int(_U64.unpack_from(self._data, pos)[0])

    def pull_bytes(self, n: int) -> bytes:
        pos = self._need(n)
        return bytes(self._data[pos : pos + n])

    def pull_varint(self) -> int:
        d = self._data
        pos = self.pos
        if pos >= self._end:
            raise DecodeError("truncated varint")
        first = d[pos]
        kind = first >> 6
        if kind == 0:
            self.pos = pos + 1
            return first
        if kind == 1:
            self._need(2)
            return ((first & 0x3F) << 8) | d[pos + 1]
        if kind == 2:
            self._need(4)
            return int(_U32.unpack_from(d, pos)[0]) & 0x3FFFFFFF
        self._need(8)
        return int(_U64.unpack_from(d, pos)[0]) & 0x3FFFFFFFFFFFFFFF

    def pull_varint_bytes(self) -> bytes:
        """A varint length followed by that many bytes."""
        return self.pull_bytes(self.pull_varint())

    # ---- writing -------------------------------------------------------------------------
    def push_uint8(self, v: int) -> None:
        self._out.append(v)

    def push_uint16(self, v: int) -> None:
        self._out += _U16.pack(v)

    def push_uint24(self, v: int) -> None:
        self._out += v.to_bytes(3, "big")

    def push_uint32(self, v: int) -> None:
        self._out += _U32.pack(v)

    def push_uint64(self, v: int) -> None:
        self._out += _U64.pack(v)

    def push_bytes(self, v: bytes | bytearray | memoryview) -> None:
        self._out += v

    def push_varint(self, v: int) -> None:
        self._out += encode_varint(v)

    def push_varint_bytes(self, v: bytes | bytearray | memoryview) -> None:
        self._out += encode_varint(len(v))
        self._out += v

    def data(self) -> bytes:
        """Everything written so far."""
        return bytes(self._out)

    def take(self) -> bytearray:
        """Everything written so far, without copying; the buffer starts empty again."""
        out = self._out
        self._out = bytearray()
        return out

    @property
    def written(self) -> int:
        return len(self._out)


def decode_varint(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """Decode one varint at ``pos``; returns ``(value, new_pos)``."""
    buf = Buffer(data)
    buf.pos = pos
    value = buf.pull_varint()
    return value, buf.pos

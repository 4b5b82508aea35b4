"""Pure-Python twin of the C core: same API, same results, same exceptions.

``RangeSet`` keeps a flat sorted list of boundaries ``[start0, stop0, start1, ...]`` so
every operation is two ``bisect`` calls and one slice assignment; ``ack_frame`` encodes
straight from that list. ``ReassemblyBuffer``
keeps non-overlapping chunks (first copy wins) and hands back whole chunks without copying.
"""

from __future__ import annotations

import errno
import os
import struct
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import ErrorCode, ProtocolError
from .pure_qlog import acked_record as acked_record
from .pure_qlog import metrics_record as metrics_record
from .pure_qlog import packet_record as packet_record
from .pure_tap import QlogTap as QlogTap

VALUE_MAX = 1 << 62
"""Exclusive upper bound of stream offsets and packet numbers (stop may equal it)."""

VARINT_MAX = VALUE_MAX - 1
"""Largest QUIC variable-length integer (RFC 9000 section 16)."""

Chunk = bytes | memoryview
Buffer = bytes | bytearray | memoryview


# The twin's errors. The C types (py_rangeset.c, py_reassembly.c) raise the same classes with the
# same messages themselves; test_native_differential.py and test_native_types.py compare them.
def range_error(start: object, stop: object) -> ValueError:
    return ValueError(f"invalid range [{start}, {stop}): need 0 <= start < stop <= 2**62")


def offset_error(name: str, value: object) -> ValueError:
    return ValueError(f"{name} must be an int in [0, 2**62], got {value!r}")


def final_changed_error(end: int, final: int) -> ProtocolError:
    return ProtocolError(ErrorCode.FINAL_SIZE_ERROR, f"final size changed from {final} to {end}")


def final_beyond_error(end: int, final: int) -> ProtocolError:
    return ProtocolError(
        ErrorCode.FINAL_SIZE_ERROR, f"data up to offset {end} beyond final size {final}"
    )


def final_below_error(end: int, highest: int) -> ProtocolError:
    return ProtocolError(
        ErrorCode.FINAL_SIZE_ERROR, f"final size {end} below highest received offset {highest}"
    )


def flow_error(end: int, max_offset: int) -> ProtocolError:
    return ProtocolError(
        ErrorCode.FLOW_CONTROL_ERROR,
        f"data up to offset {end} exceeds the flow-control limit {max_offset}",
    )


def fragments_error(count: int, limit: int) -> ProtocolError:
    return ProtocolError(
        ErrorCode.PROTOCOL_VIOLATION,
        f"{count} out-of-order fragments exceed the limit of {limit}",
    )


def ack_frame_error(
    empty: bool, delay: object, ecn: object, max_ranges: object
) -> Exception | None:
    """The exception ``RangeSet.ack_frame`` raises for these arguments, or None if they are
    valid. Checked in this order: ``max_ranges``, ``delay``, ``ecn``, then an empty set."""
    if not isinstance(max_ranges, int):
        return TypeError(f"max_ranges must be an int, got {max_ranges!r}")
    if max_ranges < 1:
        return ValueError(f"max_ranges must be >= 1, got {max_ranges}")
    if not isinstance(delay, int):
        return TypeError(f"ACK delay must be an int, got {delay!r}")
    if not 0 <= delay <= VARINT_MAX:
        return ValueError(f"ACK delay {delay} does not fit in a QUIC varint")
    if ecn is not None:
        counts: tuple[object, ...] = ()
        if isinstance(ecn, Iterable):
            counts = tuple(ecn)
        if len(counts) != 3:
            return TypeError(f"ecn must be None or 3 counts (ECT(0), ECT(1), CE), got {ecn!r}")
        for count in counts:
            if not isinstance(count, int):
                return TypeError(f"ECN count must be an int, got {count!r}")
            if not 0 <= count <= VARINT_MAX:
                return ValueError(f"ECN count {count} does not fit in a QUIC varint")
    if empty:
        return ValueError("ACK needs at least one range")
    return None


_ONE_BYTE = [bytes((i,)) for i in range(64)]
_U16 = struct.Struct("!H").pack
_U32 = struct.Struct("!L").pack
_U64 = struct.Struct("!Q").pack


def _varint(v: int) -> bytes:
    """QUIC varint of ``0 <= v <= VARINT_MAX`` (callers check the range)."""
    if v < 0x40:
        return _ONE_BYTE[v]
    if v < 0x4000:
        return _U16(v | 0x4000)
    if v < 0x40000000:
        return _U32(v | 0x80000000)
    return _U64(v | 0xC000000000000000)


class _BadAckArguments(Exception):
    pass


def check_offset(name: str, value: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= VALUE_MAX:
        raise offset_error(name, value)
    return value


class AbstractRangeSet:
    """Common base of both RangeSet implementations (for ``==`` and ``isinstance``)."""

    __slots__ = ()

    def ranges(self) -> list[tuple[int, int]]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbstractRangeSet):
            return NotImplemented
        return self.ranges() == other.ranges()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RangeSet({self.ranges()!r})"


class RangeSet(AbstractRangeSet):
    """Sorted disjoint half-open ranges ``[start, stop)``.

    At most ``max_ranges`` ranges are kept: beyond that the lowest are dropped, and
    ``floor`` rises to the highest stop dropped (``add_packet`` below it is a duplicate).
    """

    __slots__ = ("_b", "_floor", "_max2")

    def __init__(self, max_ranges: int = 256) -> None:
        if not isinstance(max_ranges, int) or max_ranges < 1:
            raise ValueError(f"max_ranges must be a positive int, got {max_ranges!r}")
        self._b: list[int] = []
        self._max2 = 2 * max_ranges
        self._floor = 0

    @property
    def max_ranges(self) -> int:
        return self._max2 // 2

    @property
    def floor(self) -> int:
        """The highest stop of a range dropped for ``max_ranges`` (0 before any): values
        below it may have been present, so ``add_packet`` reports them as duplicates."""
        return self._floor

    def _trim(self) -> None:
        b = self._b
        n = len(b) - self._max2
        if b[n - 1] > self._floor:
            self._floor = b[n - 1]
        del b[:n]

    def add(self, start: int, stop: int) -> None:
        """Add ``[start, stop)``, merging with overlapping or adjacent ranges."""
        if not 0 <= start < stop <= VALUE_MAX:
            raise range_error(start, stop)
        b = self._b
        if b:
            last = b[-1]
            if start > last:
                b.append(start)
                b.append(stop)
                if len(b) > self._max2:
                    self._trim()
                return
            if start >= b[-2]:
                if stop > last:
                    b[-1] = stop
                return
        i = bisect_left(b, start)
        j = bisect_right(b, stop)
        if i & 1:
            if j & 1:
                del b[i:j]
            else:
                b[i:j] = (stop,)
        elif j & 1:
            b[i:j] = (start,)
        else:
            b[i:j] = (start, stop)
        if len(b) > self._max2:
            self._trim()

    def add_packet(self, pn: int) -> bool:
        """Add the single value ``pn``; False if it was already present (a duplicate), or
        is below ``floor`` (it may have been in a range dropped for ``max_ranges``).

        Same as ``add(pn, pn + 1)`` (and the same ValueError out of range) but answers
        whether ``pn`` was new: True even if ``max_ranges`` drops it again at once.
        """
        b = self._b
        if b:
            last = b[-1]
            if pn == last and pn < VARINT_MAX:  # the next packet: by far the most common case
                b[-1] = pn + 1
                return True
            if 0 <= pn < last and (pn >= b[-2] or bisect_right(b, pn) & 1):
                return False
        if not 0 <= pn < VALUE_MAX:
            raise range_error(pn, pn + 1)
        if pn < self._floor:
            return False
        self.add(pn, pn + 1)
        return True

    def ack_frame(self, delay: int, ecn: tuple[int, int, int] | None, max_ranges: int) -> bytes:
        """The complete ACK frame (type 0x02, or ACK_ECN 0x03 with ``ecn`` = ECT(0), ECT(1),
        CE counts) for the highest ``max_ranges`` ranges, RFC 9000 section 19.3.

        Byte-identical to ``wire.frames.push_ack_frame(buf, self.descending()[:max_ranges],
        delay, ecn)``; the largest acknowledged is ``bounds()[1] - 1``. Raises ValueError
        for an empty set or a value outside its varint, TypeError for a non-int value
        (see :func:`ack_frame_error`).
        """
        b = self._b
        try:
            if ecn is not None:
                ect0, ect1, ce = ecn
                if not (
                    0 <= ect0 <= VARINT_MAX and 0 <= ect1 <= VARINT_MAX and 0 <= ce <= VARINT_MAX
                ):
                    raise _BadAckArguments
            if not (b and 0 <= delay <= VARINT_MAX and isinstance(max_ranges, int)):
                raise _BadAckArguments
            n = len(b)
            if 2 * max_ranges < n:
                if max_ranges < 1:
                    raise _BadAckArguments
                end = n - 2 * max_ranges  # the lowest boundary index included
            else:
                end = 0
            start = b[-2]
            largest = b[-1] - 1
            first = largest - start
            if ecn is None:
                if end == n - 2:
                    return (
                        b"\x02"
                        + _varint(largest)
                        + _varint(delay)
                        + b"\x00"
                        + (_ONE_BYTE[first] if first < 0x40 else _varint(first))
                    )
                parts = [b"\x02"]
            else:
                parts = [b"\x03"]
            parts.append(_varint(largest))
            parts.append(_varint(delay))
            parts.append(_varint((n - end) // 2 - 1))
            parts.append(_ONE_BYTE[first] if first < 0x40 else _varint(first))
            for i in range(n - 3, end, -2):  # b[i] = stop, b[i - 1] = start, highest first
                stop = b[i]
                gap = start - stop - 1
                start = b[i - 1]
                length = stop - 1 - start
                parts.append(_ONE_BYTE[gap] if gap < 0x40 else _varint(gap))
                parts.append(_ONE_BYTE[length] if length < 0x40 else _varint(length))
            if ecn is not None:
                parts.append(_varint(ect0))
                parts.append(_varint(ect1))
                parts.append(_varint(ce))
            return b"".join(parts)
        except (_BadAckArguments, TypeError, ValueError):
            err = ack_frame_error(not b, delay, ecn, max_ranges)
            if err is None:
                raise
            raise err from None

    def subtract(self, start: int, stop: int) -> None:
        """Remove ``[start, stop)``; a split beyond ``max_ranges`` drops the lowest range."""
        if not 0 <= start < stop <= VALUE_MAX:
            raise range_error(start, stop)
        b = self._b
        i = bisect_left(b, start)
        j = bisect_right(b, stop)
        if i & 1:
            if j & 1:
                b[i:j] = (start, stop)
            else:
                b[i:j] = (start,)
        elif j & 1:
            b[i:j] = (stop,)
        else:
            del b[i:j]
        if len(b) > self._max2:
            self._trim()

    def drop_below(self, value: int) -> None:
        """Remove every value below ``value``."""
        b = self._b
        i = bisect_right(b, value)
        if i & 1:
            b[:i] = (value,)
        else:
            del b[:i]

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        return bisect_right(self._b, value) & 1 == 1

    def __len__(self) -> int:
        return len(self._b) >> 1

    def __bool__(self) -> bool:
        return bool(self._b)

    def bounds(self) -> tuple[int, int]:
        """``(lowest start, highest stop)``; ValueError when empty."""
        b = self._b
        if not b:
            raise ValueError("empty RangeSet has no bounds")
        return b[0], b[-1]

    def ranges(self) -> list[tuple[int, int]]:
        """Ascending ``(start, stop)`` pairs."""
        it = iter(self._b)
        return list(zip(it, it, strict=True))

    def descending(self) -> list[tuple[int, int]]:
        """``(start, stop)`` pairs, highest first (the order of ACK frame ranges)."""
        b = self._b
        return list(zip(b[-2::-2], b[::-2], strict=True))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.ranges())


_MERGE_SLACK = 256
"""Chunks a ReassemblyBuffer keeps beyond twice its fragments before merging adjacent ones."""
_MERGE_SMALL = 4096
"""A chunk up to this size is merged into an adjacent one whatever their ratio."""


class ReassemblyBuffer:
    """Receive side of one stream: out-of-order inserts, in-order reads, final size checks."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_contig",
        "_final",
        "_fragments",
        "_highest",
        "_max",
        "_max_fragments",
        "_read",
        "_starts",
        "_tail",
    )

    def __init__(self, max_offset: int) -> None:
        self._max = check_offset("max_offset", max_offset)
        self._starts: list[int] = []  # chunk start offsets, ascending
        self._chunks: list[Chunk] = []  # non-overlapping, all at or above _read
        self._read = 0
        self._contig = 0  # end of the contiguous prefix starting at _read
        self._tail = 0  # end of the highest chunk (== _contig when nothing lies beyond)
        self._highest = 0
        self._final: int | None = None
        self._buffered = 0
        self._fragments = 0  # maximal runs of held bytes above _contig
        self._max_fragments = VALUE_MAX

    def insert(self, offset: int, data: Buffer, fin: bool = False) -> int:
        """Store ``data`` at ``offset``; returns how much ``highest_offset`` grew."""
        if offset < 0:
            raise offset_error("offset", offset)
        end = offset + len(data)
        final = self._final
        if final is not None:
            if fin and end != final:
                raise final_changed_error(end, final)
            if end > final:
                raise final_beyond_error(end, final)
        elif fin and end < self._highest:
            raise final_below_error(end, self._highest)
        if end > self._max:
            raise flow_error(end, self._max)
        growth = end - self._highest
        if growth > 0:
            self._highest = end
        else:
            growth = 0
        if fin:
            self._final = end
        contig = self._contig
        if end <= contig:
            return growth
        start = contig if offset < contig else offset
        tail = self._tail
        if start >= tail:
            # Nothing held at or above start (in order, or in order beyond a gap): append.
            chunks = self._chunks
            if start != tail:  # beyond a gap: a new fragment
                if start == end:
                    return growth  # no data (a FIN alone)
                self._fragments += 1
            elif len(chunks) > _MERGE_SLACK and len(chunks) > 2 * self._fragments + _MERGE_SLACK:
                self._compact(len(chunks) - 1)
            if start == offset and type(data) is bytes:
                chunks.append(data)
            else:
                chunks.append(bytes(data[start - offset :]))
            self._starts.append(start)
            self._buffered += end - start
            self._tail = end
            if start == contig:
                self._contig = end
            elif start != tail and self._fragments > self._max_fragments:
                raise fragments_error(self._fragments, self._max_fragments)
            return growth
        fragments = self._fragments
        added = self._insert_gaps(offset, data, start, end) - fragments
        if end > tail:
            self._tail = end
        if start == contig:
            starts = self._starts
            chunks = self._chunks
            k = bisect_left(starts, contig)
            n = len(starts)
            while k < n and starts[k] == contig:
                contig += len(chunks[k])
                k += 1
            self._contig = contig
        n = len(self._chunks)
        if n > _MERGE_SLACK and n > 2 * (fragments + added) + _MERGE_SLACK:
            self._compact(bisect_right(self._starts, end - 1) - 1)
        if added > 0 and fragments + added > self._max_fragments:
            raise fragments_error(fragments + added, self._max_fragments)
        return growth

    def _insert_gaps(self, offset: int, data: Buffer, start: int, end: int) -> int:
        """Store the parts of ``[start, end)`` not held yet (first copy wins); returns the
        new count of fragments."""
        starts = self._starts
        chunks = self._chunks
        i = bisect_right(starts, start) - 1
        pos = start
        prev_end = -1  # end of chunk i - 1 (below)
        if i >= 0:
            prev_end = starts[i] + len(chunks[i])
            if prev_end > pos:
                pos = prev_end
        i += 1
        added = 0
        contig = self._contig
        fragments = self._fragments
        while pos < end:
            if i < len(starts) and starts[i] <= pos:
                prev_end = starts[i] + len(chunks[i])
                if prev_end > pos:
                    pos = prev_end
                i += 1
                continue
            right = i < len(starts) and starts[i] <= end
            gap_end = starts[i] if right else end
            # Runs above the prefix [read_offset, contig): +1 for a new one, -1 for a join.
            if pos in (prev_end, contig):
                fragments -= right
            elif not right:
                fragments += 1
            if pos == offset and gap_end == end and type(data) is bytes:
                piece: Chunk = data
            else:
                piece = bytes(data[pos - offset : gap_end - offset])
            starts.insert(i, pos)
            chunks.insert(i, piece)
            i += 1
            added += gap_end - pos
            pos = prev_end = gap_end
        self._buffered += added
        self._fragments = fragments
        return fragments

    def _compact(self, i: int) -> None:
        """Merge chunk ``i`` with adjacent chunks while there are too many (more than
        ``2 * fragments + _MERGE_SLACK``, e.g. 1-byte pieces arriving highest first): a
        neighbour up to twice its size, or up to ``_MERGE_SMALL`` bytes, is joined to it.
        A merge copies both, so a byte is copied O(log n) times plus a bounded amount per
        piece, and a run holds few chunks."""
        starts = self._starts
        chunks = self._chunks
        while len(chunks) > 2 * self._fragments + _MERGE_SLACK:
            chunk = chunks[i]
            size = len(chunk)
            limit = max(2 * size, _MERGE_SMALL)
            if (
                i + 1 < len(chunks)
                and starts[i] + size == starts[i + 1]
                and (len(chunks[i + 1]) <= limit)
            ):
                chunks[i] = b"".join((chunk, chunks[i + 1]))
                del chunks[i + 1]
                del starts[i + 1]
            elif (
                i
                and starts[i - 1] + len(chunks[i - 1]) == starts[i]
                and (len(chunks[i - 1]) <= limit)
            ):
                chunks[i - 1] = b"".join((chunks[i - 1], chunk))
                del chunks[i]
                del starts[i]
                i -= 1
            else:
                return

    def read(self, max_bytes: int = -1) -> bytes:
        """Up to ``max_bytes`` (all when negative) contiguous bytes from ``read_offset``."""
        n = self._contig - self._read
        if 0 <= max_bytes < n:
            n = max_bytes
        if n <= 0:
            return b""
        chunks = self._chunks
        starts = self._starts
        first = chunks[0]
        size = len(first)
        if n == size:
            del chunks[0]
            del starts[0]
            out = first if type(first) is bytes else bytes(first)
        elif n < size:
            view = first if type(first) is memoryview else memoryview(first)
            out = bytes(view[:n])
            chunks[0] = view[n:]
            starts[0] += n
        elif n == self._contig - self._read:
            # The whole contiguous prefix: exactly the chunks that start below _contig.
            k = bisect_left(starts, self._contig)
            out = b"".join(chunks[:k])
            del chunks[:k]
            del starts[:k]
        else:
            parts: list[Chunk] = []
            need = n
            k = 0
            while need >= len(chunks[k]):
                parts.append(chunks[k])
                need -= len(chunks[k])
                k += 1
            if need:
                chunk = chunks[k]
                view = chunk if type(chunk) is memoryview else memoryview(chunk)
                parts.append(view[:need])
                chunks[k] = view[need:]
                starts[k] += need
            del chunks[:k]
            del starts[:k]
            out = b"".join(parts)
        self._read += n
        self._buffered -= n
        if not chunks:
            self._tail = self._read
        return out

    def set_final_size(self, size: int) -> int:
        """Learn the final size without data (RESET_STREAM); same checks as a FIN."""
        if size < 0:
            raise offset_error("final size", size)
        return self.insert(size, b"", True)

    @property
    def max_offset(self) -> int:
        return self._max

    @max_offset.setter
    def max_offset(self, value: int) -> None:
        self._max = check_offset("max_offset", value)

    @property
    def max_fragments(self) -> int:
        """Out-of-order fragments allowed before ``insert`` raises PROTOCOL_VIOLATION."""
        return self._max_fragments

    @max_fragments.setter
    def max_fragments(self, value: int) -> None:
        self._max_fragments = check_offset("max_fragments", value)

    @property
    def fragments(self) -> int:
        """Maximal runs of received bytes beyond the first hole (out-of-order fragments)."""
        return self._fragments

    @property
    def readable(self) -> int:
        return self._contig - self._read

    @property
    def read_offset(self) -> int:
        return self._read

    @property
    def highest_offset(self) -> int:
        return self._highest

    @property
    def final_size(self) -> int | None:
        return self._final

    @property
    def finished(self) -> bool:
        return self._final is not None and self._read == self._final

    @property
    def buffered(self) -> int:
        return self._buffered


# ---- qlog ------------------------------------------------------------------------------------
STREAM_PACKET_TEMPLATE = (
    '\x1e{"time":%.3f,"name":"%s","data":{"header":{"packet_type":"%s","packet_number":%d},'
    '"frames":[{"frame_type":"stream","stream_id":%d,"offset":%d,"fin":%s,"raw":{"length":%d}}],'
    '"raw":{"length":%d}}}\n'
)
"""The JSON-SEQ record of a packet that is one STREAM frame (``quic:packet_sent`` /
``quic:packet_received`` in bulk), filled from a record of :func:`render_stream_packets`."""


def render_stream_packets(records: list[tuple[Any, ...]], start: float, lo: int, hi: int) -> bytes:
    """The JSON-SEQ text of ``records[lo:hi]``, each ``(time, name, packet_type,
    packet_number, stream_id, offset, fin, length, size)``: the time written in milliseconds
    after ``start`` with 3 decimals (0.000 when before it). IndexError unless
    ``0 <= lo <= hi <= len(records)``. (py_qlog.c is the C form.)"""
    if not 0 <= lo <= hi <= len(records):
        raise IndexError(f"render_stream_packets: [{lo}, {hi}) not within {len(records)} records")
    template = STREAM_PACKET_TEMPLATE
    parts = []
    for now, name, ptype, pn, sid, offset, fin, length, size in records[lo:hi]:
        ms = (now - start) * 1000.0
        fields = (ms if ms > 0.0 else 0.0, name, ptype, pn, sid, offset)
        parts.append(template % (*fields, "true" if fin else "false", length, size))
    return "".join(parts).encode()


def render_ints(ints: list[int]) -> str:
    """A list of ints in the int64 range as JSON's ``1,2,3`` (no brackets; py_qlog.c's C
    form): qlog's packets_acked lists. TypeError for anything else."""
    if type(ints) is not list:
        raise TypeError("render_ints: a list expected")
    for v in ints:
        if type(v) is not int or not -(1 << 63) <= v < 1 << 63:
            raise TypeError("render_ints: int64 ints expected")
    return ",".join(map(str, ints))


def render_chunk(records: list[tuple[Any, ...]], start: float, parts: list[Any]) -> bytes:
    """A flush's text in one piece: ``parts`` holds bytes (written as they are) and ints
    (each: the records from the previous int, or 0, up to it, as
    :func:`render_stream_packets` writes them). (py_qlog.c's C form renders a
    ``BulkRecords`` of plain records with the GIL released.)"""
    out: list[bytes] = []
    done = 0
    for part in parts:
        if type(part) is bytes:
            out.append(part)
        elif type(part) is int:
            if not done <= part <= len(records):
                n = len(records)
                raise IndexError(f"render_chunk: [{done}, {part}) not within {n} records")
            out.append(render_stream_packets(records, start, done, part))
            done = part
        else:
            raise TypeError("render_chunk: parts must be bytes or ints")
    return b"".join(out)


class QlogSpool:
    """A qlog file's flushes (the reference for py_qlog_spool.c's ``QlogSpool``, whose
    worker thread renders and writes them without the GIL): here each is rendered and
    written at :meth:`submit`, in the caller's thread, to a duplicate of ``fd``."""

    def __init__(self, fd: int) -> None:
        self._fd = os.dup(fd)
        self.error = 0  # errno of a failed write (later flushes dropped), or 0
        self.events_written = 0
        self.pending = 0

    def submit(
        self, records: list[tuple[Any, ...]] | None, start: float, parts: list[Any], events: int
    ) -> None:
        """One flush: ``parts`` as :func:`render_chunk` takes them; ``records`` taken (left
        empty)."""
        if self._fd < 0:
            raise ValueError("QlogSpool: closed")
        data = render_chunk([] if records is None else records, start, parts)
        if records is not None:
            records.clear()
        if self.error:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.error = exc.errno or errno.EIO
            return
        self.events_written += events

    def wait(self) -> None:
        """This spool's flushes written (they are, at submit)."""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()

    @classmethod
    def drain(cls) -> None:
        """No flush of any spool queued (none ever is)."""

    @classmethod
    def start(cls) -> None:
        """(No worker thread to start.)"""


def seal_stream_burst(
    seal: Any,
    dcid: Buffer,
    first: int,
    pn: int,
    largest_acked: int | None,
    skip_pn: int,
    datagram_size: int,
    stream_id: int,
    offset: int,
    data: Buffer,
    final_size: int | None,
    in_flight: int,
    cwnd: float,
    pacer: tuple[float, float, float, float] | None,
    now: float,
    max_count: int,
) -> tuple[list[bytes], list[int], float]:
    """The twin of ``PacketCipher.seal_stream_burst`` (burst.c), sealing with ``seal``
    (``PacketProtector.seal_packet``): 1-RTT packets of one full STREAM frame each while
    the window, the pacer ``(tokens, need, capacity, rate)``, the data, ``max_count`` and
    the skipped packet number allow; returns ``(packets, data lengths, tokens left)``."""
    packets: list[bytes] = []
    lengths: list[int] = []
    tokens, need, capacity, rate = pacer if pacer is not None else (0.0, 0.0, 0.0, 0.0)
    largest = -1 if largest_acked is None else largest_acked
    end = offset + len(data)
    pos = 0
    while len(packets) < max_count and in_flight < cwnd and 0 <= pn < VALUE_MAX:
        missing = need - tokens
        if pacer is not None and missing > 0.5 and now + missing / rate > now:
            break
        if pn == skip_pn or pn - largest <= 0:
            break
        pn_len = ((pn - largest - 1).bit_length() + 1 + 7) // 8
        if pn_len > 4:
            break
        header_len = 1 + len(dcid) + pn_len
        room = datagram_size - header_len - 16
        if room < 1:
            break
        head_len = 1 + len(_varint(stream_id)) + (len(_varint(offset)) if offset else 0)
        length = room - head_len - len(_varint(room))
        if length < 1 or offset + length > end:
            break
        fin = final_size is not None and offset + length == final_size
        frame_type = 0x0A | (0x04 if offset else 0) | (0x01 if fin else 0)
        payload = (
            bytes((frame_type,))
            + _varint(stream_id)
            + (_varint(offset) if offset else b"")
            + _varint(length)
            + bytes(data[pos : pos + length])
        )
        header = (
            bytes((first | (pn_len - 1),))
            + bytes(dcid)
            + (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
        )
        packet = seal(header, payload, pn)
        packets.append(packet)
        lengths.append(length)
        size = len(packet)
        in_flight += size
        if pacer is not None:
            tokens -= size
            tokens = tokens if tokens > -capacity else -capacity
        pos += length
        offset += length
        pn += 1
    return packets, lengths, tokens


def lone_stream_fields(
    payload: bytes, start: int = 0
) -> tuple[int, int, memoryview, bool, bool] | None:
    """The twin of the C ``PacketCipher.open_stream``'s frame decoding: ``(stream_id,
    offset, data, fin, with_length)`` of the STREAM frame that starts at ``payload[start]``
    and ends the payload (``data`` a memoryview slice of it), or None for anything else,
    malformed included."""
    if len(payload) <= start or not 0x08 <= payload[start] <= 0x0F:
        return None
    t = payload[start]
    pos = start + 1
    fields = [0, 0, 0]  # stream id, offset, length
    for k, present in enumerate((True, bool(t & 0x04), bool(t & 0x02))):
        if not present:
            continue
        if pos >= len(payload):
            return None
        n = 1 << (payload[pos] >> 6)
        if len(payload) - pos < n:
            return None
        fields[k] = int.from_bytes(payload[pos : pos + n], "big") & ((1 << (8 * n - 2)) - 1)
        pos += n
    stop = pos + fields[2] if t & 0x02 else len(payload)
    if stop != len(payload) or fields[1] + stop - pos > VARINT_MAX:
        return None
    return fields[0], fields[1], memoryview(payload)[pos:stop], bool(t & 0x01), bool(t & 0x02)

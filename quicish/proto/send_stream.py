"""The sending half of a stream (RFC 9000 sections 2.2, 3.1, 4.1, 19.4, 19.8).

``SendStream`` keeps the bytes the application wrote until the peer acknowledges them,
cuts them into STREAM (or CRYPTO) frames, re-sends lost ranges as new frames, and never
re-sends a byte that was acknowledged. It knows nothing about packets: the connection
records ``(offset, length, fin)`` per frame sent and reports them back through
``on_acked`` / ``on_lost``.

Storage is a list of immutable chunks (zero-copy for ``bytes`` writes of 512 bytes or
more; smaller writes are gathered in a tail ``bytearray`` that is frozen into a chunk when
it is first sent). Frames are ``memoryview`` slices of one chunk, or a joined copy of at
most ``max_len`` bytes when a frame spans chunks. Fully acknowledged chunks are dropped
from the front.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

from ..errors import StreamError
from ..native import RangeSet

__all__ = ["MAX_OFFSET", "SendStream"]

MAX_OFFSET = 1 << 62
_CHUNK_MIN = 512  # bytes writes at least this long are kept as they are (no copy)
_RANGES = 1 << 20  # RangeSet capacity: acked/lost gaps are bounded by the bytes in flight
_EMPTY = memoryview(b"")
#: No range yet: shared by the streams that have none (most: data acknowledged in order and
#: never lost), never written; a stream makes its own at its first out-of-order ACK or loss.
NO_RANGES = RangeSet(1)
_R_NONE, _R_PENDING, _R_SENT, _R_ACKED = range(4)


class SendStream:
    """Send buffer, retransmission queue and send-side flow-control state of one stream.

    ``capacity`` bounds ``buffered`` (written and not yet acknowledged) in the sense of
    backpressure: ``write`` always accepts the data, and ``writable_space`` is
    ``max(0, capacity - buffered)`` so the asyncio writer's ``drain()`` waits while it is 0.
    ``max_stream_data`` is the peer's limit on the highest offset we may send.

    ``wake``, when set (the ``StreamManager`` sets it), is called with no arguments when
    the stream may have become sendable, has a control frame to send, or is done.
    """

    __slots__ = (
        "_acked",
        "_acked_prefix",
        "_blocked_sent",
        "_chunks",
        "_fin_acked",
        "_fin_pending",
        "_final_size",
        "_first",
        "_has_acked",
        "_has_lost",
        "_lost",
        "_reset_code",
        "_reset_state",
        "_send_offset",
        "_starts",
        "_tail",
        "_tail_start",
        "_write_offset",
        "capacity",
        "frames_sent",
        "last_new_bytes",
        "max_stream_data",
        "stop_sending_code",
        "stream_id",
        "wake",
    )

    def __init__(
        self, capacity: int = 1 << 20, stream_id: int = -1, max_stream_data: int = MAX_OFFSET
    ) -> None:
        self.stream_id = stream_id
        self.capacity = capacity
        self.max_stream_data = max_stream_data
        #: NEW bytes (never sent before) in the frame the last ``next_frame`` call returned;
        #: the caller charges them to connection-level flow control.
        self.last_new_bytes = 0
        #: Frames returned by ``next_frame`` so far (the scheduler uses it to see service).
        self.frames_sent = 0
        #: Error code of the peer's STOP_SENDING, once received.
        self.stop_sending_code: int | None = None
        self.wake: Callable[[], None] | None = None
        self._chunks: list[memoryview] = []
        self._starts: list[int] = []
        self._first = 0  # index of the first live chunk
        self._tail = bytearray()  # small writes not yet frozen into a chunk
        self._tail_start = 0  # stream offset of _tail[0] (= end of the frozen chunks)
        self._write_offset = 0  # bytes written by the application
        self._send_offset = 0  # next never-sent byte
        self._acked_prefix = 0  # every byte below is acknowledged
        self._acked = NO_RANGES  # acknowledged ranges above _acked_prefix
        self._lost = NO_RANGES  # ranges waiting to be re-sent
        self._has_acked = False  # bool(self._acked), cached (the hot path reads it)
        self._has_lost = False  # bool(self._lost), cached
        self._final_size: int | None = None
        self._fin_pending = False  # a FIN must be (re)sent
        self._fin_acked = False
        self._blocked_sent = -1  # limit of the last STREAM_DATA_BLOCKED sent
        self._reset_state = _R_NONE
        self._reset_code = 0

    # ---- application side ------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview, end_stream: bool = False) -> None:
        """Queue ``data`` (and the FIN when ``end_stream``). StreamError after FIN or reset."""
        if self._reset_state:
            raise StreamError(f"stream {self.stream_id} was reset")
        if self._final_size is not None:
            raise StreamError(f"stream {self.stream_id} is already finished")
        n = len(data)
        if n:
            if n >= _CHUNK_MIN and type(data) is bytes:
                self._freeze_tail()
                self._chunks.append(memoryview(data))
                self._starts.append(self._tail_start)
                self._tail_start += n
            else:
                self._tail += data
            self._write_offset += n
        if end_stream:
            self._final_size = self._write_offset
            self._fin_pending = True
        if self.wake is not None:
            self.wake()

    @property
    def buffered(self) -> int:
        """Bytes written and not yet acknowledged (beyond the contiguous acked prefix)."""
        return self._write_offset - self._acked_prefix

    @property
    def writable_space(self) -> int:
        """How much more may be written before the buffer exceeds ``capacity``."""
        space = self.capacity - (self._write_offset - self._acked_prefix)
        return space if space > 0 else 0

    @property
    def write_offset(self) -> int:
        """Total bytes written by the application."""
        return self._write_offset

    @property
    def send_offset(self) -> int:
        """Highest offset sent so far (the next new byte)."""
        return self._send_offset

    @property
    def acked_offset(self) -> int:
        """Every byte below this offset is acknowledged."""
        return self._acked_prefix

    @property
    def final_size(self) -> int | None:
        """Known once the application wrote the FIN."""
        return self._final_size

    # ---- frames out ------------------------------------------------------------------------
    def next_frame(self, max_len: int, credit: int) -> tuple[int, memoryview | bytes, bool] | None:
        """The next STREAM/CRYPTO frame to send as ``(offset, data, fin)``, or None.

        ``max_len``: most data bytes the frame may carry. ``credit``: connection-level
        credit for NEW bytes (the stream's own ``max_stream_data`` is applied here too).
        Lost ranges come first (they cost no credit), then new data, then a FIN-only frame.
        Afterwards ``last_new_bytes`` holds how many new bytes the frame carries; charge
        them to the connection's ``SendCredit``. The data is valid until the stream is
        garbage-collected (chunks are immutable).
        """
        self.last_new_bytes = 0
        if self._reset_state:
            return None
        if self._has_lost:
            if max_len <= 0:
                return None
            lost = self._lost
            start, stop = lost.bounds() if len(lost) == 1 else next(iter(lost))
            if stop - start > max_len:
                stop = start + max_len
            lost.subtract(start, stop)
            self._has_lost = bool(lost)
            fin = stop == self._final_size and not self._fin_acked
            if fin:
                self._fin_pending = False
            self.frames_sent += 1
            return start, self._slice(start, stop), fin
        start = self._send_offset
        n = self._write_offset - start
        if n:
            room = self.max_stream_data - start
            limit = max_len if max_len < credit else credit
            blocked = False
            if room <= limit and room < n:  # held back by the peer's MAX_STREAM_DATA
                n = room
                blocked = self._blocked_sent != self.max_stream_data
            elif limit < n:
                n = limit
            if n <= 0:
                if blocked and self.wake is not None:
                    self.wake()
                return None
            stop = start + n
            self._send_offset = stop
            self.last_new_bytes = n
            if blocked and self.wake is not None:
                self.wake()
            fin = stop == self._final_size
            if fin:
                self._fin_pending = False
            self.frames_sent += 1
            return start, self._slice(start, stop), fin
        if self._fin_pending:
            self._fin_pending = False
            self.frames_sent += 1
            return start, _EMPTY, True
        return None

    def burst_span(self, credit: int) -> tuple[int, memoryview, int | None] | None:
        """For a burst of packets of new data (the bulk path, ``stream_burst.py``): the
        next new byte's offset, the bytes from it that full frames may carry without
        reaching a limit (``credit`` for the connection, the peer's MAX_STREAM_DATA, the
        end of the chunk; what ``next_frame`` would return unchanged), and the final size
        if known; None when lost data or a reset comes first or nothing is sendable."""
        if self._reset_state or self._has_lost:
            return None
        start = self._send_offset
        stop = min(self._write_offset, self.max_stream_data - 1, start + credit)
        if stop <= start:
            return None
        if stop > self._tail_start:
            self._freeze_tail()
        i = bisect_right(self._starts, start, self._first) - 1
        base = self._starts[i]
        chunk = memoryview(self._chunks[i])
        return start, chunk[start - base : stop - base], self._final_size

    def on_burst_sent(self, stop: int, frames: int) -> None:
        """A burst's ``frames`` frames carried the new bytes up to ``stop``."""
        self.last_new_bytes = stop - self._send_offset
        self._send_offset = stop
        self.frames_sent += frames
        if stop == self._final_size:
            self._fin_pending = False

    def pending(self, credit_ok: bool = True) -> bool:
        """True when ``next_frame`` would return a frame (given some connection credit
        when ``credit_ok``, none otherwise) for a large enough ``max_len``."""
        if self._reset_state:
            return False
        if self._has_lost:
            return True
        if self._write_offset > self._send_offset:
            return credit_ok and self._send_offset < self.max_stream_data
        return self._fin_pending

    @property
    def has_pending(self) -> bool:
        """``pending(credit_ok=True)``."""
        return self.pending(True)

    @property
    def wants_credit(self) -> bool:
        """True when new data waits only for connection-level credit."""
        return (
            not self._reset_state
            and self._write_offset > self._send_offset
            and self._send_offset < self.max_stream_data
        )

    @property
    def next_offset(self) -> int:
        """Offset of the frame ``next_frame`` would return (for sizing the frame header)."""
        if self._has_lost:
            return self._lost.bounds()[0]
        return self._send_offset

    def _slice(self, start: int, stop: int) -> memoryview | bytes:
        if stop > self._tail_start:
            self._freeze_tail()
        starts = self._starts
        i = bisect_right(starts, start, self._first) - 1
        chunk = self._chunks[i]
        base = starts[i]
        if stop - base <= len(chunk):
            return chunk[start - base : stop - base]
        parts = [chunk[start - base :]]
        pos = base + len(chunk)
        while pos < stop:
            i += 1
            chunk = self._chunks[i]
            take = stop - pos
            parts.append(chunk[:take] if take < len(chunk) else chunk)
            pos += len(chunk)
        return b"".join(parts)

    def _freeze_tail(self) -> None:
        tail = self._tail
        if tail:
            self._chunks.append(memoryview(tail))  # never resized again
            self._starts.append(self._tail_start)
            self._tail_start += len(tail)
            self._tail = bytearray()

    # ---- feedback from the connection ------------------------------------------------------
    def on_acked(self, offset: int, length: int, fin: bool) -> None:
        """A frame ``(offset, length, fin)`` was acknowledged: free what is now fully acked."""
        if self._reset_state:
            return
        if fin:
            self._fin_acked = True
            self._fin_pending = False
        end = offset + length
        prefix = self._acked_prefix
        if end > prefix:
            if offset <= prefix and not self._has_acked:
                prefix = end
            else:
                acked = self._acked
                if acked is NO_RANGES:
                    acked = self._acked = RangeSet(_RANGES)
                acked.add(offset if offset > prefix else prefix, end)
                first_start, first_stop = acked.bounds() if len(acked) == 1 else next(iter(acked))
                if first_start <= prefix:
                    prefix = first_stop
                    acked.drop_below(first_stop)
                self._has_acked = bool(acked)
            if self._has_lost:
                self._lost.subtract(offset, end)
                self._has_lost = bool(self._lost)
            if prefix != self._acked_prefix:
                self._acked_prefix = prefix
                self._free_acked(prefix)
        if self.wake is not None and self._fin_acked and prefix == self._final_size:
            self.wake()

    def _free_acked(self, prefix: int) -> None:
        chunks, starts, i = self._chunks, self._starts, self._first
        n = len(chunks)
        while i < n and starts[i] + len(chunks[i]) <= prefix:
            chunks[i] = _EMPTY
            i += 1
        if i >= 64 and 2 * i >= n:
            del chunks[:i]
            del starts[:i]
            i = 0
        self._first = i

    def on_lost(self, offset: int, length: int, fin: bool) -> None:
        """A frame was declared lost: queue its not-yet-acknowledged bytes (and FIN)."""
        if self._reset_state:
            return
        woke = False
        if fin and not self._fin_acked:
            self._fin_pending = True
            woke = True
        end = offset + length
        start = offset if offset > self._acked_prefix else self._acked_prefix
        if start < end:
            lost = self._lost
            if lost is NO_RANGES:
                lost = self._lost = RangeSet(_RANGES)
            lost.add(start, end)
            if self._has_acked:
                for a, b in self._acked:
                    if a >= end:
                        break
                    if b > start:
                        lost.subtract(a if a > start else start, b if b < end else end)
            self._has_lost = bool(lost)
            woke = woke or self._has_lost
        if woke and self.wake is not None:
            self.wake()

    def repeat_for_probe(self, offset: int, length: int, fin: bool) -> bool:
        """Queue a sent frame's unacknowledged bytes (and FIN) again for a PTO probe, as
        :meth:`on_lost`; True when that queued something that was not queued already."""
        fin_before = self._fin_pending
        before = sum(b - a for a, b in self._lost) if self._has_lost else 0
        self.on_lost(offset, length, fin)
        after = sum(b - a for a, b in self._lost) if self._has_lost else 0
        return after > before or (self._fin_pending and not fin_before)

    def requeue_unacked(self) -> None:
        """Queue everything sent and not acknowledged for re-sending (PTO probes)."""
        sent = self._send_offset - self._acked_prefix
        fin_sent = self._final_size is not None and self._send_offset == self._final_size
        self.on_lost(self._acked_prefix, sent, fin_sent and not self._fin_pending)

    def requeue_all(self) -> None:
        """Forget what was sent (Retry, rejected 0-RTT): unacknowledged data becomes new
        data again (it will be charged to flow control again)."""
        if self._reset_state:
            return
        self._send_offset = self._acked_prefix
        self._lost = NO_RANGES
        self._has_lost = False
        self._blocked_sent = -1
        if self._final_size is not None and not self._fin_acked:
            self._fin_pending = True
        if self.wake is not None:
            self.wake()

    # ---- flow control ----------------------------------------------------------------------
    def on_max_stream_data(self, limit: int) -> bool:
        """The peer's MAX_STREAM_DATA (or initial limit): only raises; True if it grew."""
        if limit <= self.max_stream_data:
            return False
        self.max_stream_data = limit
        if self.wake is not None and self._write_offset > self._send_offset:
            self.wake()
        return True

    def set_max_stream_data(self, limit: int) -> None:
        """Force the peer's limit (rejected 0-RTT: the new transport parameters apply)."""
        self.max_stream_data = limit

    @property
    def blocked_at(self) -> int | None:
        """The limit for a STREAM_DATA_BLOCKED frame when data waits on the peer's
        MAX_STREAM_DATA and none was sent for this limit yet; else None."""
        limit = self.max_stream_data
        if (
            self._send_offset >= limit
            and self._write_offset > self._send_offset
            and self._blocked_sent != limit
            and not self._reset_state
        ):
            return limit
        return None

    def on_blocked_sent(self, limit: int) -> None:
        self._blocked_sent = limit

    def on_blocked_lost(self, limit: int) -> None:
        """Re-send STREAM_DATA_BLOCKED if still blocked at ``limit``."""
        if self._blocked_sent == limit:
            self._blocked_sent = -1
            if self.wake is not None:
                self.wake()

    # ---- reset -----------------------------------------------------------------------------
    def reset(self, error_code: int) -> bool:
        """Abandon the stream: a RESET_STREAM with final size = bytes sent so far becomes
        pending. No-op (False) if already reset or everything was acknowledged."""
        if self._reset_state or self.is_done:
            return False
        self._reset_state = _R_PENDING
        self._reset_code = error_code
        self._final_size = self._send_offset
        self._fin_pending = False
        self._chunks = []
        self._starts = []
        self._first = 0
        self._tail = bytearray()
        self._lost = self._acked = NO_RANGES
        self._has_lost = self._has_acked = False
        if self.wake is not None:
            self.wake()
        return True

    def on_stop_sending(self, error_code: int) -> bool:
        """The peer sent STOP_SENDING: reset with its code (RFC 9000 3.5). True if this
        started a reset; ``stop_sending_code`` records the code."""
        if self.stop_sending_code is None:
            self.stop_sending_code = error_code
        return self.reset(error_code)

    @property
    def is_reset(self) -> bool:
        return self._reset_state != _R_NONE

    @property
    def reset_pending(self) -> tuple[int, int] | None:
        """``(error_code, final_size)`` for a RESET_STREAM to send now, else None."""
        if self._reset_state == _R_PENDING:
            return self._reset_code, self._send_offset
        return None

    def on_reset_sent(self) -> None:
        if self._reset_state == _R_PENDING:
            self._reset_state = _R_SENT

    def on_reset_acked(self) -> None:
        if self._reset_state:
            self._reset_state = _R_ACKED
            if self.wake is not None:
                self.wake()

    def on_reset_lost(self) -> None:
        if self._reset_state == _R_SENT:
            self._reset_state = _R_PENDING
            if self.wake is not None:
                self.wake()

    @property
    def is_done(self) -> bool:
        """All data and the FIN acknowledged, or the RESET_STREAM acknowledged."""
        if self._reset_state:
            return self._reset_state == _R_ACKED
        return self._fin_acked and self._acked_prefix == self._final_size

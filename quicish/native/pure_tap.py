"""Pure-Python twin of ``py_qlog_tap.c``: the qlog trace's per-packet calls in the bulk case.

:class:`QlogTap` does with the same calls what the C core's type does (the same records,
the same calls handed on, the same flushes; tests/test_qlog_native.py compares the two). It
is the reference, not a path: without the C core the trace's own Python methods log.
"""

from __future__ import annotations

from typing import Any

_U62 = 1 << 62


def _u62(v: object) -> bool:
    return type(v) is int and 0 <= v < _U62


def plain_burst(args: tuple[Any, ...]) -> bool:
    """Whether ``QlogTap.burst``'s arguments are its plain case: ints in [0, 2^62) (the
    final size also None), lists of bytes and of such ints of one length, offsets and
    packet numbers staying below 2^62."""
    if len(args) != 7:
        return False
    _, pn, sid, end, final, packets, lengths = args
    if not (
        type(packets) is list
        and type(lengths) is list
        and len(packets) == len(lengths)
        and _u62(pn)
        and _u62(sid)
        and _u62(end)
        and (final is None or _u62(final))
        and len(packets) < _U62 - pn
    ):
        return False
    for packet, n in zip(packets, lengths, strict=True):
        if type(packet) is not bytes or not _u62(n) or n >= _U62 - end:
            return False
        end += n
    return True


class QlogTap:
    """The trace's per-packet calls in the bulk case (the reference for py_qlog_tap.c's
    ``QlogTap``): ``sent`` for ``Trace.stream_sent``, ``burst`` for ``Trace.burst_sent``,
    ``received`` for ``Trace.packet_received``, ``stream_received`` for
    ``Trace.stream_received``. A packet of one STREAM frame without FIN, on a stream in
    ``streams`` (and, received, with ``keys.phase`` :attr:`phase`, the key phase the trace
    last logged, which it keeps here) is appended to ``bulk`` as the writer's record, its
    time kept as :attr:`now` (the trace reads it: no attribute set on the trace per packet)
    and ``flush()`` called when ``bulk`` reaches ``limit``; any other call goes to
    ``sent_slow`` / ``received_slow`` / ``stream_slow``, a burst's other packets one by one
    to ``sent_slow`` (as ``Trace.burst_sent`` hands them to ``stream_sent``) and a burst of
    odd arguments to ``burst_slow``."""

    def __init__(
        self,
        trace: Any,
        bulk: list[tuple[Any, ...]],
        streams: set[int],
        keys: Any,
        flush: Any,
        limit: int,
        frame_type: type,
        sent_slow: Any,
        received_slow: Any,
        stream_slow: Any,
        burst_slow: Any,
    ) -> None:
        self._trace, self._bulk, self._streams, self._keys = trace, bulk, streams, keys
        self._flush, self._limit, self._frame_type = flush, limit, frame_type
        self._sent_slow, self._received_slow = sent_slow, received_slow
        self._stream_slow, self._burst_slow = stream_slow, burst_slow
        self.now: Any = None  # the time of the last packet recorded here
        self.phase = 0  # the key phase the trace last logged (set by the trace)

    def _record(self, now: Any, name: str, pn: Any, sid: Any, offset: Any, *rest: Any) -> None:
        self.now = now
        self._bulk.append((now, name, "1RTT", pn, sid, offset, *rest))
        if len(self._bulk) >= self._limit:
            self._flush()

    def sent(self, *args: Any) -> None:
        if len(args) == 5 and type(args[4]) is list and len(args[4]) == 1:
            rec = args[4][0]
            plain = isinstance(rec, tuple) and len(rec) == 4 and rec[3] is False
            if plain and rec[0] in self._streams:
                now, pn, size = args[:3]
                self._record(now, "quic:packet_sent", pn, rec[0], rec[1], False, rec[2], size)
                return
        self._sent_slow(*args)

    def burst(self, *args: Any) -> None:
        if not plain_burst(args):
            self._burst_slow(*args)
            return
        now, pn, sid, offset, final_size, packets, lengths = args
        for packet, length in zip(packets, lengths, strict=True):
            stop = offset + length
            fin = stop == final_size
            if not fin and sid in self._streams:
                self._record(now, "quic:packet_sent", pn, sid, offset, False, length, len(packet))
            else:
                self._sent_slow(now, pn, len(packet), b"", [(sid, offset, length, fin)])
            offset = stop
            pn += 1

    def received(self, *args: Any) -> None:
        if len(args) == 6 and type(args[5]) is self._frame_type:
            lone: Any = args[5]
            plain = lone.fin is False and lone.stream_id in self._streams
            if plain and self._keys.phase == self.phase:
                now, _, pn, size = args[:4]
                sid, offset, length = lone.stream_id, lone.offset, len(lone.data)
                self._record(now, "quic:packet_received", pn, sid, offset, False, length, size)
                return
        self._received_slow(*args)

    def stream_received(self, *args: Any) -> None:
        if len(args) == 5 and type(args[4]) is tuple and len(args[4]) >= 4:
            now, pn, size, _, lone = args
            sid = lone[0]
            if lone[3] is False and sid in self._streams and self._keys.phase == self.phase:
                length = len(lone[2])
                self._record(now, "quic:packet_received", pn, sid, lone[1], False, length, size)
                return
        self._stream_slow(*args)

"""Pure-Python twin of ``py_qlog_packet.c``: a qlog packet event's record from its payload
(and a packets_acked or recovery_metrics_updated event's from the engine's values).

:func:`packet_record` returns the bytes the C core's function returns (and None where it
does): the JSON-SEQ record the qlog writer writes for a packet event whose frames are
PADDING, PING, ACK, CRYPTO, STREAM (without FIN, of a stream in ``streams``) or
HANDSHAKE_DONE, the same text as the trace's Python path (decoding the payload, then
``quicish.qlog.render.render_packet`` at flush). tests/test_qlog_packet.py compares the
three.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_VALUE_MAX = 1 << 62
_PLAIN = re.compile(r"[A-Za-z0-9_:]*")


class _Skip(Exception):
    """A frame the C core does not take (the trace then takes its Python path)."""


def _varint(b: Any, p: int) -> tuple[int, int]:
    if p >= len(b):
        raise _Skip
    n = 1 << (b[p] >> 6)
    if p + n > len(b):
        raise _Skip
    v = b[p] & 0x3F
    for i in range(p + 1, p + n):
        v = (v << 8) | b[i]
    return v, p + n


def _ack(b: Any, p: int, t: int, exponent: int) -> tuple[str, int]:
    largest, p = _varint(b, p)
    delay, p = _varint(b, p)
    count, p = _varint(b, p)
    first, p = _varint(b, p)
    if first > largest:
        raise _Skip
    smallest = largest - first
    ranges = []
    for i in range(count + 1):
        ranges.append(f"[{smallest}]" if largest == smallest else f"[{smallest},{largest}]")
        if i == count:
            break
        gap, p = _varint(b, p)
        length, p = _varint(b, p)
        if gap + 2 + length > smallest:
            raise _Skip
        largest = smallest - gap - 2
        smallest = largest - length
    k = delay << exponent
    if k >> 53:
        raise _Skip
    text = f'{{"frame_type":"ack","acked_ranges":[{",".join(ranges)}],"ack_delay":{k / 1000.0!r}'
    if t == 0x03:
        ect0, p = _varint(b, p)
        ect1, p = _varint(b, p)
        ce, p = _varint(b, p)
        text += f',"ect0":{ect0},"ect1":{ect1},"ce":{ce}'
    return text + "}", p


def _frames(b: Any, exponent: int, streams: set[int]) -> list[str]:
    out: list[str] = []
    p, end = 0, len(b)
    while p < end:
        t = b[p]
        p += 1
        if t == 0x00:
            q = p
            while q < end and not b[q]:
                q += 1
            n = q - p + 1
            out.append(f'{{"frame_type":"padding","raw":{{"length":{n},"payload_length":{n}}}}}')
            p = q
        elif t == 0x01:
            out.append('{"frame_type":"ping"}')
        elif t == 0x1E:
            out.append('{"frame_type":"handshake_done"}')
        elif t in (0x02, 0x03):
            text, p = _ack(b, p, t, exponent)
            out.append(text)
        elif t == 0x06:
            offset, p = _varint(b, p)
            length, p = _varint(b, p)
            if offset + length >= _VALUE_MAX or length > end - p:
                raise _Skip
            p += length
            out.append(f'{{"frame_type":"crypto","offset":{offset},"raw":{{"length":{length}}}}}')
        elif 0x08 <= t <= 0x0F and not t & 0x01:
            sid, p = _varint(b, p)
            offset = 0
            if t & 0x04:
                offset, p = _varint(b, p)
            if t & 0x02:
                length, p = _varint(b, p)
                if length > end - p:
                    raise _Skip
            else:
                length = end - p
            if offset + length >= _VALUE_MAX or sid not in streams:
                raise _Skip
            p += length
            out.append(
                f'{{"frame_type":"stream","stream_id":{sid},"offset":{offset},'
                f'"fin":false,"raw":{{"length":{length}}}}}'
            )
        else:
            raise _Skip
    if not out:
        raise _Skip
    return out


def _exact_u62(v: object) -> bool:
    return type(v) is int and 0 <= v < _VALUE_MAX


def packet_record(
    start: float,
    now: float,
    name: str,
    packet_type: str,
    pn: int,
    size: int,
    payload: Any,
    ack_exponent: int,
    streams: set[int],
) -> bytes | None:
    """The record of a ``name`` (``quic:packet_sent``...) event for a packet of
    ``packet_type`` whose plaintext payload is ``payload``, or None (see the module)."""
    if (
        type(start) is not float
        or type(now) is not float
        or type(name) is not str
        or type(packet_type) is not str
        or not _PLAIN.fullmatch(name)
        or ":" not in name
        or not _PLAIN.fullmatch(packet_type)
        or not _exact_u62(pn)
        or not _exact_u62(size)
        or type(ack_exponent) is not int
        or not 0 <= ack_exponent <= 20
        or not isinstance(streams, set)
    ):
        return None
    try:
        frames = _frames(memoryview(payload).cast("B"), ack_exponent, streams)
    except _Skip:
        return None
    ms = (now - start) * 1000.0
    return (
        f'\x1e{{"time":{ms if ms > 0.0 else 0.0:.3f},"name":"{name}","data":{{"header":'
        f'{{"packet_type":"{packet_type}","packet_number":{pn}}},"frames":[{",".join(frames)}],'
        f'"raw":{{"length":{size}}}}}}}\n'
    ).encode()


def acked_record(start: float, now: float, name: str, space: str, acked: list[Any]) -> bytes | None:
    """The record of a ``name`` (``quic:packets_acked``) event listing the ``pn`` of each
    of ``acked`` (loss recovery's sent packets) in ``space``, or None for odd values."""
    if (
        type(start) is not float
        or type(now) is not float
        or type(name) is not str
        or type(space) is not str
        or not _PLAIN.fullmatch(name)
        or ":" not in name
        or not _PLAIN.fullmatch(space)
        or type(acked) is not list
    ):
        return None
    numbers = [p.pn for p in acked]
    if not all(_exact_u62(pn) for pn in numbers):
        return None
    ms = (now - start) * 1000.0
    return (
        f'\x1e{{"time":{ms if ms > 0.0 else 0.0:.3f},"name":"{name}","data":'
        f'{{"packet_number_space":"{space}","packet_numbers":[{",".join(map(str, numbers))}]}}}}\n'
    ).encode()


# qlog.schema's RTT_METRICS and COUNT_METRICS (tests/test_qlog_packet.py holds them equal),
# then pacing_rate: the members of a recovery_metrics_updated event, in order.
_RTT_METRICS = ("min_rtt", "smoothed_rtt", "latest_rtt", "rtt_variance")
_COUNT_METRICS = (
    "pto_count",
    "congestion_window",
    "bytes_in_flight",
    "ssthresh",
    "packets_in_flight",
)
_LL = 9223372036854775808.0  # 2^63


def _metric(key: str, value: Any, old: Any) -> tuple[bool, Any, str]:
    """(changed, the value kept in ``last``, its JSON) of one metric (see metrics_record)."""
    if value is None:
        return False, None, ""
    if type(value) is int and key not in _RTT_METRICS:  # int(value); int(rate * 8)
        bound = 1 << 60 if key == "pacing_rate" else 1 << 63
        if not -bound <= value < bound or (key == "pacing_rate" and value == -bound):
            raise TypeError(f"metrics_record: {key} not taken")
        kept: Any = value * 8 if key == "pacing_rate" else value
    else:
        if type(value) is float:
            d = value
        elif type(value) is int:
            try:
                d = float(value)
            except OverflowError:
                raise TypeError(f"metrics_record: {key} not taken") from None
        else:
            raise TypeError(f"metrics_record: {key} not taken")
        if not math.isfinite(d):
            return False, None, ""
        if key in _RTT_METRICS:
            ms = d * 1000.0
            if old is not None and type(old) is not float:
                raise TypeError(f"metrics_record: {key} not taken")
            return old != ms, ms, repr(ms)
        if key == "pacing_rate":
            d *= 8.0
        if not -_LL <= d < _LL:
            raise TypeError(f"metrics_record: {key} not taken")
        kept = int(d)
    if old is not None and (type(old) is not int or not -(1 << 63) <= old < 1 << 63):
        raise TypeError(f"metrics_record: {key} not taken")
    return old != kept, kept, str(kept)


def metrics_record(
    start: float, now: float, name: str, metrics: Mapping[str, Any], last: dict[str, Any]
) -> bytes | None:
    """The record of a ``name`` (``quic:recovery_metrics_updated``) event holding what
    changed in the engine's ``metrics`` (RTTs in s, ``pacing_rate`` in bytes/s) since
    ``last`` (RTTs in ms, ``pacing_rate`` in bits/s; updated), as the writer's
    ``render_metrics_delta`` writes it; None when nothing changed. TypeError, and ``last``
    unchanged, for values it does not take (the writer then renders in Python)."""
    if (
        type(start) is not float
        or type(now) is not float
        or type(name) is not str
        or not _PLAIN.fullmatch(name)
        or ":" not in name
        or type(metrics) is not dict
        or type(last) is not dict
    ):
        raise TypeError("metrics_record: odd arguments")
    changes = []
    for key in (*_RTT_METRICS, *_COUNT_METRICS, "pacing_rate"):
        changed, kept, text = _metric(key, metrics.get(key), last.get(key))
        if changed:
            changes.append((key, kept, text))
    if not changes:
        return None
    for key, kept, _ in changes:
        last[key] = kept
    ms = (now - start) * 1000.0
    data = ",".join(f'"{key}":{text}' for key, _, text in changes)
    return (
        f'\x1e{{"time":{ms if ms > 0.0 else 0.0:.3f},"name":"{name}","data":{{{data}}}}}\n'.encode()
    )

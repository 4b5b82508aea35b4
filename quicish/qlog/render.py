"""JSON text of the writer's compact records, without building dicts first.

The connection's hot path logs a packet as one tuple (type, number, size, frames) whose
frames are short tuples: ``("stream", stream_id, offset, length, fin)``, ``("crypto",
offset, length)``, ``("ack", ranges, ack_delay_ms, ecn)`` (``ranges`` half-open
``(start, stop)`` pairs, ``ack_delay_ms`` and ``ecn`` may be None), ``("ping",)``,
``("padding", length)``, ``("handshake_done",)``; any other frame as a ready qlog dict or a
wire frame object. These functions turn them into the same JSON the dict builders in
:mod:`quicish.qlog.frames` give, by string templates (a test holds the two equal).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..native import render_ints
from .frames import frame_to_qlog
from .schema import COUNT_METRICS, RTT_METRICS


def _default(obj: Any) -> Any:
    """JSON for what the builders may pass through: byte strings as hex, sets as lists."""
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).hex()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _finite(obj: Any) -> Any:
    """``obj`` with infinite and NaN floats replaced by None (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_default).encode


def dumps(obj: Any) -> str:
    """Compact JSON; non-finite floats become null, byte strings hex."""
    try:
        return _encode(obj)
    except ValueError:  # inf / nan somewhere
        return _encode(_finite(obj))


def _ranges(ranges: Sequence[tuple[int, int]]) -> str:
    if len(ranges) == 1:
        start, stop = ranges[0]
        return f"[{start}]" if stop - start == 1 else f"[{start},{stop - 1}]"
    return ",".join(
        f"[{start}]" if stop - start == 1 else f"[{start},{stop - 1}]" for start, stop in ranges
    )


def render_frame(frame: Any) -> str:
    """The JSON of one frame: a compact tuple, a qlog dict or a wire frame object."""
    if type(frame) is tuple:
        kind = frame[0]
        if kind == "stream":
            _, sid, offset, length, fin = frame
            return (
                f'{{"frame_type":"stream","stream_id":{sid},"offset":{offset},'
                f'"fin":{"true" if fin else "false"},"raw":{{"length":{length}}}}}'
            )
        if kind == "ack":
            text = f'{{"frame_type":"ack","acked_ranges":[{_ranges(frame[1])}]'
            if len(frame) > 2 and frame[2] is not None:
                text += f',"ack_delay":{float(frame[2])!r}'
            if len(frame) > 3 and frame[3] is not None:
                ect0, ect1, ce = frame[3]
                text += f',"ect0":{ect0},"ect1":{ect1},"ce":{ce}'
            return text + "}"
        if kind == "crypto":
            return f'{{"frame_type":"crypto","offset":{frame[1]},"raw":{{"length":{frame[2]}}}}}'
        if kind == "padding":
            n = frame[1]
            return f'{{"frame_type":"padding","raw":{{"length":{n},"payload_length":{n}}}}}'
        if kind == "ping" or kind == "handshake_done":
            return f'{{"frame_type":"{kind}"}}'
        raise ValueError(f"unknown compact frame {frame!r}")
    if isinstance(frame, dict):
        return dumps(frame)
    return dumps(frame_to_qlog(frame))


def render_packet(
    packet_type: str,
    packet_number: int,
    size: int | None,
    frames: Sequence[Any],
    header_extra: Mapping[str, Any] | None = None,
    trigger: str | None = None,
) -> str:
    """The ``data`` JSON of a packet_sent / packet_received / packet_lost event."""
    if header_extra is None and trigger is None and size is not None and len(frames) == 1:
        fr = frames[0]
        if type(fr) is tuple and fr[0] == "stream":  # the bulk case, in one template
            return (
                f'{{"header":{{"packet_type":"{packet_type}","packet_number":{packet_number}}},'
                f'"frames":[{{"frame_type":"stream","stream_id":{fr[1]},"offset":{fr[2]},'
                f'"fin":{"true" if fr[4] else "false"},"raw":{{"length":{fr[3]}}}}}],'
                f'"raw":{{"length":{size}}}}}'
            )
    header = f'{{"packet_type":"{packet_type}","packet_number":{packet_number}'
    if header_extra:
        header += "," + dumps(header_extra)[1:-1]
    text = f'{{"header":{header}}}'
    if len(frames) == 1:
        text += ',"frames":[' + render_frame(frames[0]) + "]"
    elif frames:
        text += ',"frames":[' + ",".join([render_frame(fr) for fr in frames]) + "]"
    if size is not None:
        text += f',"raw":{{"length":{size}}}'
    if trigger is not None:
        text += f',"trigger":"{trigger}"'
    return text + "}"


def render_packets_acked(data: Any) -> str | None:
    """The JSON of ``quic:packets_acked`` data as :func:`qlog.events.packets_acked` makes it
    (the space, then the list of packet numbers, written by the C core's ``render_ints``),
    the same text as :func:`dumps`; None for any other shape."""
    if type(data) is not dict or len(data) != 2:
        return None
    space, numbers = data.get("packet_number_space"), data.get("packet_numbers")
    if (
        type(space) is not str
        or type(numbers) is not list
        or next(iter(data)) != "packet_number_space"
    ):
        return None
    try:
        ints = render_ints(numbers)
    except TypeError:
        return None
    return f'{{"packet_number_space":{dumps(space)},"packet_numbers":[{ints}]}}'


def render_metrics_delta(metrics: Mapping[str, float], last: dict[str, Any]) -> str | None:
    """The ``recovery_metrics_updated`` JSON of the engine's metrics dict (RTTs in s,
    ``pacing_rate`` in bytes/s), holding only what changed since ``last`` (updated in
    place); None when nothing changed."""
    parts = []
    for key in RTT_METRICS:
        value = metrics.get(key)
        if value is not None and math.isfinite(value):
            ms = value * 1000.0
            if last.get(key) != ms:
                last[key] = ms
                parts.append(f'"{key}":{ms!r}')
    for key in COUNT_METRICS:
        value = metrics.get(key)
        if value is not None and math.isfinite(value):
            n = int(value)
            if last.get(key) != n:
                last[key] = n
                parts.append(f'"{key}":{n}')
    rate = metrics.get("pacing_rate")
    if rate is not None and math.isfinite(rate):
        bits = int(rate * 8)
        if last.get("pacing_rate") != bits:
            last["pacing_rate"] = bits
            parts.append(f'"pacing_rate":{bits}')
    return "{" + ",".join(parts) + "}" if parts else None

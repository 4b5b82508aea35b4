"""Where a connection's events go: the sink interface, the callback sink and fan-out.

A sink takes events in the engine's compact forms, as :class:`~quicish.qlog.writer.QlogWriter`
does (``event`` with a ready dict, ``packet`` / ``stream_packet`` with plain values and compact
frame tuples, ``metrics`` with the engine's metrics dict), so the qlog file costs no dicts on
the connection's path. :class:`CallbackSink` turns the same calls into
``tracer(name, data)`` calls for an application (``name`` without the ``quic:`` namespace,
``data`` the draft's dict as :mod:`quicish.qlog.events` builds it); :class:`FanOut` hands
every call to several sinks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .events import packet_event, recovery_metrics
from .frames import QlogDict, ack_frame, crypto_frame, frame_to_qlog, stream_frame

Tracer = Callable[[str, dict[str, Any]], None]


class TraceSink(Protocol):
    """What the engine's trace writes to (:class:`~quicish.qlog.writer.QlogWriter` is one).
    ``name`` is the full event name (``quic:packet_sent``); ``now`` engine seconds."""

    def event(self, name: str, data: Mapping[str, Any], now: float) -> None: ...

    def packet(
        self,
        name: str,
        now: float,
        packet_type: str,
        packet_number: int,
        size: int | None = None,
        frames: Sequence[Any] = (),
        header_extra: Mapping[str, Any] | None = None,
        trigger: str | None = None,
    ) -> None: ...

    def stream_packet(
        self,
        name: str,
        now: float,
        packet_type: str,
        packet_number: int,
        size: int,
        stream_id: int,
        offset: int,
        length: int,
        fin: bool,
    ) -> None: ...

    def metrics(self, now: float, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


def compact_frame(frame: Any) -> QlogDict:
    """The qlog dict of a compact frame tuple (see :mod:`quicish.qlog.render`), a ready
    dict or a wire frame."""
    if type(frame) is tuple:
        kind = frame[0]
        if kind == "stream":
            return stream_frame(frame[1], frame[2], frame[3], frame[4])
        if kind == "ack":
            return ack_frame(
                frame[1],
                frame[2] if len(frame) > 2 else None,
                frame[3] if len(frame) > 3 else None,
            )
        if kind == "crypto":
            return crypto_frame(frame[1], frame[2])
        if kind == "padding":
            return {
                "frame_type": "padding",
                "raw": {"length": frame[1], "payload_length": frame[1]},
            }
        if kind == "ping" or kind == "handshake_done":
            return {"frame_type": kind}
        raise ValueError(f"unknown compact frame {frame!r}")
    if isinstance(frame, dict):
        return frame
    return frame_to_qlog(frame)


def _short(name: str) -> str:
    return name[5:] if name.startswith("quic:") else name


class CallbackSink:
    """Calls ``tracer(name, data)`` per event: ``name`` without the ``quic:`` namespace,
    ``data`` the draft's dict (made here, for this sink only)."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def event(self, name: str, data: Mapping[str, Any], now: float) -> None:
        self.tracer(_short(name), dict(data))

    def packet(
        self,
        name: str,
        now: float,
        packet_type: str,
        packet_number: int,
        size: int | None = None,
        frames: Sequence[Any] = (),
        header_extra: Mapping[str, Any] | None = None,
        trigger: str | None = None,
    ) -> None:
        header: QlogDict = {"packet_type": packet_type, "packet_number": packet_number}
        if header_extra:
            header.update(header_extra)
        data = packet_event(header, [compact_frame(fr) for fr in frames], size=size)
        if trigger is not None:
            data["trigger"] = trigger
        self.tracer(_short(name), data)

    def stream_packet(
        self,
        name: str,
        now: float,
        packet_type: str,
        packet_number: int,
        size: int,
        stream_id: int,
        offset: int,
        length: int,
        fin: bool,
    ) -> None:
        header: QlogDict = {"packet_type": packet_type, "packet_number": packet_number}
        frames = [stream_frame(stream_id, offset, length, fin)]
        self.tracer(_short(name), packet_event(header, frames, size=size))

    def metrics(self, now: float, metrics: Mapping[str, float]) -> None:
        self.tracer("recovery_metrics_updated", recovery_metrics(metrics))

    def close(self) -> None:
        return None


class FanOut:
    """Hands every call to each of ``sinks`` in order. (Sinks must not raise: an exception
    goes into the engine's call that logged the event.)"""

    def __init__(self, sinks: Sequence[TraceSink]) -> None:
        self.sinks = tuple(sinks)

    def event(self, name: str, data: Mapping[str, Any], now: float) -> None:
        for sink in self.sinks:
            sink.event(name, data, now)

    def packet(
        self,
        name: str,
        now: float,
        packet_type: str,
        packet_number: int,
        size: int | None = None,
        frames: Sequence[Any] = (),
        header_extra: Mapping[str, Any] | None = None,
        trigger: str | None = None,
    ) -> None:
        for sink in self.sinks:
            sink.packet(name, now, packet_type, packet_number, size, frames, header_extra, trigger)

    def stream_packet(
        self,
        name: str,
        now: float,
        packet_type: str,
        packet_number: int,
        size: int,
        stream_id: int,
        offset: int,
        length: int,
        fin: bool,
    ) -> None:
        for sink in self.sinks:
            sink.stream_packet(
                name, now, packet_type, packet_number, size, stream_id, offset, length, fin
            )

    def metrics(self, now: float, metrics: Mapping[str, float]) -> None:
        for sink in self.sinks:
            sink.metrics(now, metrics)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def fan_out(sinks: Sequence[TraceSink]) -> TraceSink | None:
    """None for no sink, the sink itself for one, a :class:`FanOut` for several."""
    if not sinks:
        return None
    return sinks[0] if len(sinks) == 1 else FanOut(sinks)

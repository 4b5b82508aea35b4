"""One pass over a trace: the series and counters the summary and the plot are drawn from.

What a packet acknowledges comes from ``packets_acked`` events or, when a trace has none,
from the ACK frames in its ``packet_received`` events (the peer acknowledging this side's
packets). A loss is spurious when a packet declared lost is acknowledged afterwards. A sent
packet is a retransmission when one of its STREAM or CRYPTO frames starts below the highest
offset already sent on that stream (or crypto space).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from .reader import QlogTrace
from .schema import SPACE_OF_PACKET_TYPE

Point = tuple[float, float]


@dataclass(slots=True)
class TraceAnalysis:
    """Times in ms since the trace's first event; sizes in bytes."""

    vantage_point: str | None = None
    odcid: str | None = None
    duration: float = 0.0
    handshake_time: float | None = None
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    packets_retransmitted: int = 0
    spurious_losses: int = 0
    packets_dropped: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    bytes_lost: int = 0
    stream_bytes_sent: int = 0  #: distinct STREAM bytes (highest offsets) this side sent
    stream_bytes_received: int = 0  #: distinct STREAM bytes it received
    stream_span: tuple[float, float] | None = None  #: first and last STREAM frame
    close: dict[str, Any] | None = None
    sent: list[Point] = field(default_factory=list)  #: (t, cumulative bytes sent)
    acked: list[Point] = field(default_factory=list)  #: (t, cumulative bytes acknowledged)
    lost: list[Point] = field(default_factory=list)  #: (t lost, cumulative bytes when sent)
    cwnd: list[Point] = field(default_factory=list)
    bytes_in_flight: list[Point] = field(default_factory=list)
    ssthresh: list[Point] = field(default_factory=list)
    smoothed_rtt: list[Point] = field(default_factory=list)
    min_rtt: list[Point] = field(default_factory=list)
    latest_rtt: list[Point] = field(default_factory=list)

    @property
    def goodput_bps(self) -> float | None:
        """Distinct STREAM bytes (the larger direction) per second of STREAM activity."""
        if self.stream_span is None:
            return None
        span = (self.stream_span[1] - self.stream_span[0]) / 1000.0
        payload = max(self.stream_bytes_sent, self.stream_bytes_received)
        return payload * 8 / span if span > 0 else None

    @property
    def min_rtt_ms(self) -> float | None:
        values = [v for _, v in self.min_rtt] or [v for _, v in self.latest_rtt]
        return min(values) if values else None

    @property
    def avg_rtt_ms(self) -> float | None:
        values = [v for _, v in self.latest_rtt]
        return sum(values) / len(values) if values else None


class _Unacked:
    """Sent packets of one space not acknowledged yet: sorted numbers, size and position."""

    def __init__(self) -> None:
        self.pns: list[int] = []
        self.info: dict[int, tuple[int, float]] = {}

    def add(self, pn: int, size: int, position: float) -> None:
        if not self.pns or pn > self.pns[-1]:
            self.pns.append(pn)
        else:
            bisect.insort(self.pns, pn)
        self.info[pn] = (size, position)

    def take_range(self, first: int, last: int) -> list[int]:
        lo = bisect.bisect_left(self.pns, first)
        hi = bisect.bisect_right(self.pns, last)
        taken = self.pns[lo:hi]
        del self.pns[lo:hi]
        return taken


def _ranges(frame: dict[str, Any]) -> list[tuple[int, int]]:
    out = []
    for r in frame.get("acked_ranges") or ():
        if isinstance(r, list) and r:
            out.append((int(r[0]), int(r[-1])))
    return out


def _frame_length(fr: dict[str, Any]) -> int:
    raw = fr.get("raw")
    if isinstance(raw, dict):
        for key in ("payload_length", "length"):
            if isinstance(raw.get(key), int):
                return int(raw[key])
    length = fr.get("length")  # qlog 0.3 (aioquic)
    return int(length) if isinstance(length, int) else 0


def analyze(trace: QlogTrace) -> TraceAnalysis:
    """Walk ``trace`` once."""
    a = TraceAnalysis(vantage_point=trace.vantage_point, odcid=trace.odcid)
    if not trace.events:
        return a
    t0 = trace.events[0].time
    unacked: dict[str, _Unacked] = {}
    lost: dict[str, set[int]] = {}
    sent_end: dict[Any, int] = {}
    recv_end: dict[Any, int] = {}
    has_packets_acked = any(ev.name == "quic:packets_acked" for ev in trace.events)
    acked_total = 0
    handshake_done_at: float | None = None
    state_complete_at: float | None = None

    def on_acked(t: float, space: str, first: int, last: int) -> None:
        nonlocal acked_total
        pending = unacked.get(space)
        if pending is None:
            return
        taken = pending.take_range(first, last)
        if not taken:
            return
        gone = lost.get(space)
        for pn in taken:
            size, _ = pending.info.pop(pn)
            if gone is not None and pn in gone:
                gone.discard(pn)
                a.spurious_losses += 1
            acked_total += size

    for ev in trace.events:
        t = ev.time - t0
        name = ev.name
        data = ev.data
        if name == "quic:packet_sent" or name == "quic:packet_received":
            hdr = data.get("header") or {}
            ptype = hdr.get("packet_type")
            space = SPACE_OF_PACKET_TYPE.get(ptype, "") if isinstance(ptype, str) else ""
            raw = data.get("raw")
            size = raw.get("length", 0) if isinstance(raw, dict) else 0
            frames = data.get("frames") or ()
            sending = name == "quic:packet_sent"
            ends = sent_end if sending else recv_end
            retransmit = False
            for fr in frames:
                ftype = fr.get("frame_type")
                if ftype == "stream" or ftype == "crypto":
                    key = (ftype, fr.get("stream_id") if ftype == "stream" else space)
                    offset = int(fr.get("offset", 0))
                    end = offset + _frame_length(fr)
                    if offset < ends.get(key, 0):
                        retransmit = True
                    if end > ends.get(key, 0):
                        ends[key] = end
                    if ftype == "stream":
                        span = a.stream_span
                        a.stream_span = (t, t) if span is None else (span[0], t)
                elif ftype == "handshake_done" and handshake_done_at is None:
                    handshake_done_at = t
                elif ftype == "ack" and not sending and not has_packets_acked:
                    for first, last in _ranges(fr):
                        on_acked(t, space, first, last)
            if acked_total > (a.acked[-1][1] if a.acked else 0):
                a.acked.append((t, acked_total))
            if sending:
                a.packets_sent += 1
                a.bytes_sent += size
                a.packets_retransmitted += retransmit
                pn = hdr.get("packet_number")
                if isinstance(pn, int) and space:
                    unacked.setdefault(space, _Unacked()).add(pn, size, a.bytes_sent)
                a.sent.append((t, a.bytes_sent))
            else:
                a.packets_received += 1
                a.bytes_received += size
        elif name == "quic:packets_acked":
            space = data.get("packet_number_space", "application_data")
            for pn in data.get("packet_numbers") or ():
                on_acked(t, space, pn, pn)
            if acked_total > (a.acked[-1][1] if a.acked else 0):
                a.acked.append((t, acked_total))
        elif name == "quic:packet_lost":
            hdr = data.get("header") or {}
            space = SPACE_OF_PACKET_TYPE.get(hdr.get("packet_type", ""), "")
            pn = hdr.get("packet_number")
            a.packets_lost += 1
            pending = unacked.get(space)
            if isinstance(pn, int) and pending is not None and pn in pending.info:
                size, position = pending.info[pn]
                a.bytes_lost += size
                a.lost.append((t, position))
                lost.setdefault(space, set()).add(pn)
            else:
                a.lost.append((t, a.bytes_sent))
        elif name == "quic:packet_dropped":
            a.packets_dropped += 1
        elif name == "quic:recovery_metrics_updated":
            for metric, series in (
                ("congestion_window", a.cwnd),
                ("bytes_in_flight", a.bytes_in_flight),
                ("ssthresh", a.ssthresh),
                ("smoothed_rtt", a.smoothed_rtt),
                ("min_rtt", a.min_rtt),
                ("latest_rtt", a.latest_rtt),
            ):
                value = data.get(metric)
                if isinstance(value, int | float):
                    series.append((t, float(value)))
        elif name == "quic:connection_state_updated":
            complete = data.get("new") in ("handshake_complete", "handshake_confirmed")
            if complete and state_complete_at is None:
                state_complete_at = t
        elif name == "quic:connection_closed":
            a.close = dict(data)
    a.duration = trace.events[-1].time - t0
    a.handshake_time = state_complete_at if state_complete_at is not None else handshake_done_at
    a.stream_bytes_sent = sum(v for (kind, _), v in sent_end.items() if kind == "stream")
    a.stream_bytes_received = sum(v for (kind, _), v in recv_end.items() if kind == "stream")
    return a


@dataclass(slots=True)
class PacketMatch:
    """How one side's sent packets line up with the other side's received ones."""

    sent: int  #: packets the sender logged
    received: int  #: packets the receiver logged
    missing: list[tuple[str, int]]  #: sent, never logged as received (lost on the way)
    unexpected: list[tuple[str, int]]  #: received, never logged as sent (should be empty)
    duplicates: int  #: received more than once


def packet_keys(trace: QlogTrace, name: str) -> list[tuple[str, int]]:
    """``(packet_type, packet_number)`` of each ``name`` event (``packet_sent`` ...)."""
    keys = []
    for ev in trace.named(name):
        hdr = ev.data.get("header") or {}
        ptype, pn = hdr.get("packet_type"), hdr.get("packet_number")
        if isinstance(ptype, str) and isinstance(pn, int):
            keys.append((ptype, pn))
    return keys


def match_packets(sender: QlogTrace, receiver: QlogTrace) -> PacketMatch:
    """Match ``sender``'s packet_sent to ``receiver``'s packet_received by packet type and
    number (works across stacks: quicish's JSON-SEQ and aioquic's JSON traces)."""
    sent = packet_keys(sender, "quic:packet_sent")
    received = packet_keys(receiver, "quic:packet_received")
    sent_set, received_set = set(sent), set(received)
    return PacketMatch(
        sent=len(sent),
        received=len(received),
        missing=sorted(sent_set - received_set),
        unexpected=sorted(received_set - sent_set),
        duplicates=len(received) - len(received_set),
    )

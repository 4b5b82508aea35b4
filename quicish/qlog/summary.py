"""A one-screen text summary of a trace (``python -m quicish.qlog summary FILE``)."""

from __future__ import annotations

from typing import Any

from .analysis import TraceAnalysis


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def _rate(bps: float | None) -> str:
    if bps is None:
        return "-"
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.2f} {unit}"
    return f"{bps:.0f} bit/s"


def _close(close: dict[str, Any] | None) -> str:
    if close is None:
        return "(no connection_closed event)"
    parts = []
    for key in ("initiator", "trigger", "connection_error", "application_error", "error_code"):
        if key in close:
            parts.append(f"{key}={close[key]}")
    if close.get("reason"):
        parts.append(f"reason={close['reason']!r}")
    return " ".join(parts) or "(no details)"


def format_summary(a: TraceAnalysis) -> str:
    """The lines of the summary, joined."""
    lost_pct = 100.0 * a.packets_lost / a.packets_sent if a.packets_sent else 0.0
    lines = [
        f"connection     {a.odcid or '?'} ({a.vantage_point or 'unknown'} side)",
        f"duration       {_ms(a.duration)}",
        f"handshake      {_ms(a.handshake_time)}",
        f"packets sent   {a.packets_sent} ({a.bytes_sent} bytes)",
        f"packets recvd  {a.packets_received} ({a.bytes_received} bytes)",
        f"packets lost   {a.packets_lost} ({lost_pct:.2f}% of sent, {a.bytes_lost} bytes),"
        f" {a.spurious_losses} spurious",
        f"retransmitted  {a.packets_retransmitted} packets",
        f"dropped        {a.packets_dropped} packets",
        f"stream bytes   {a.stream_bytes_sent} sent, {a.stream_bytes_received} received",
        f"goodput        {_rate(a.goodput_bps)}",
        f"rtt            min {_ms(a.min_rtt_ms)}, avg {_ms(a.avg_rtt_ms)}",
        f"close          {_close(a.close)}",
    ]
    return "\n".join(lines)

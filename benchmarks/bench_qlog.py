"""qlog writer costs: microseconds per event on the caller's path and when written.

Run: ``python benchmarks/bench_qlog.py [--events N] [--repeat R]``. Prints a markdown table
(best of ``repeat`` runs) for the per-packet forms the engine uses (``stream_packet``,
``packet`` with a compact STREAM or ACK frame, ``metrics``) and the generic ``event`` with
a dict built by the builders.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

from quicish.qlog import QlogWriter
from quicish.qlog import events as E
from quicish.qlog import frames as F

METRICS = {
    "min_rtt": 0.010,
    "smoothed_rtt": 0.0121,
    "latest_rtt": 0.0113,
    "rtt_variance": 0.0011,
    "pto_count": 0,
    "congestion_window": 120_000,
    "bytes_in_flight": 60_000,
    "ssthresh": float("inf"),
}


def _packet_stream(w: QlogWriter, i: int) -> None:
    w.packet("quic:packet_sent", i * 1e-5, "1RTT", i, 1252, (("stream", 0, i * 1200, 1200, False),))


def _stream_packet(w: QlogWriter, i: int) -> None:
    w.stream_packet("quic:packet_sent", i * 1e-5, "1RTT", i, 1252, 0, i * 1200, 1200, False)


def _packet_ack(w: QlogWriter, i: int) -> None:
    w.packet("quic:packet_received", i * 1e-5, "1RTT", i, 45, (("ack", ((0, i + 1),), 0.25, None),))


def _metrics(w: QlogWriter, i: int) -> None:
    w.metrics(i * 1e-5, {**METRICS, "bytes_in_flight": 60_000 + (i & 7) * 1200})


def _event_dicts(w: QlogWriter, i: int) -> None:
    header = E.packet_header("1RTT", i)
    w.event(
        "quic:packet_sent",
        E.packet_event(header, [F.stream_frame(0, i * 1200, 1200)], size=1252),
        i * 1e-5,
    )


CASES: list[tuple[str, Callable[[QlogWriter, int], None]]] = [
    ("stream_packet() (bulk data packet)", _stream_packet),
    ("packet() with a STREAM frame", _packet_stream),
    ("packet() with an ACK frame", _packet_ack),
    ("metrics() (one value changed)", _metrics),
    ("event() with builder dicts", _event_dicts),
]


def measure(case: Callable[[QlogWriter, int], None], n: int) -> tuple[float, float]:
    """(µs per event appending, µs per event serializing and writing)."""
    w = QlogWriter(io.BytesIO(), bytes(8), True, start=0.0, flush_every=1 << 62)
    t0 = time.perf_counter()
    for i in range(n):
        case(w, i)
    t1 = time.perf_counter()
    w.close()
    t2 = time.perf_counter()
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| event | append (µs) | write (µs) | total (µs) |")
    print("| --- | --- | --- | --- |")
    for label, case in CASES:
        runs = [measure(case, args.events) for _ in range(args.repeat)]
        append, write = min(r[0] for r in runs), min(r[1] for r in runs)
        print(f"| {label} | {append:.2f} | {write:.2f} | {append + write:.2f} |")


if __name__ == "__main__":
    main()

"""Wire codec costs: frame encode/decode, header parsing, packet numbers, transport parameters.

Run: ``python benchmarks/bench_frames.py [--number N] [--repeat R]``. Prints a markdown table
of microseconds per operation (best of ``repeat`` runs).
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from quicish.wire.buffer import Buffer
from quicish.wire.frames import (
    AckFrame,
    StreamFrame,
    decode_frames,
    encode_frame,
    push_ack_frame,
    push_stream_frame,
    stream_frame_overhead,
)
from quicish.wire.packet import (
    QUIC_V1,
    PacketType,
    decode_packet_number,
    encode_long_header,
    encode_packet_number,
    encode_short_header,
    parse_header,
)
from quicish.wire.transport_params import TransportParameters

DATA = bytes(1100)
ONE_RANGE = [(1000, 1010)]
EIGHT_RANGES = [(1000 - 20 * i, 1010 - 20 * i) for i in range(8)]
DCID = bytes(range(8))


def _payload(build: Callable[[Buffer], None]) -> bytes:
    buf = Buffer()
    build(buf)
    return buf.data()


STREAM_PAYLOAD = _payload(lambda b: push_stream_frame(b, 4, 1 << 20, DATA, False))
ACK8_PAYLOAD = _payload(lambda b: push_ack_frame(b, EIGHT_RANGES, 25))
ACK_STREAM_PAYLOAD = ACK8_PAYLOAD + STREAM_PAYLOAD
INITIAL_PAYLOAD = b"\x06\x00\x41\x00" + bytes(256) + bytes(900)  # CRYPTO + PADDING run
SHORT_PACKET = encode_short_header(DCID, 77, 2) + bytes(1180)
LONG_PACKET = encode_long_header(PacketType.HANDSHAKE, QUIC_V1, DCID, DCID, b"", 1100, 5, 2)
LONG_PACKET += bytes(1100)
TP = TransportParameters(
    max_idle_timeout=30000,
    initial_max_data=1 << 24,
    initial_max_stream_data_bidi_local=1 << 20,
    initial_max_stream_data_bidi_remote=1 << 20,
    initial_max_stream_data_uni=1 << 20,
    initial_max_streams_bidi=100,
    initial_max_streams_uni=100,
    initial_source_connection_id=DCID,
    max_datagram_frame_size=65535,
)
TP_WIRE = TP.encode()


def _stream_push() -> None:
    push_stream_frame(Buffer(), 4, 1 << 20, DATA, False)


def _stream_generic() -> None:
    encode_frame(Buffer(), StreamFrame(4, 1 << 20, DATA, False))


def _ack1() -> None:
    push_ack_frame(Buffer(), ONE_RANGE, 25)


def _ack8() -> None:
    push_ack_frame(Buffer(), EIGHT_RANGES, 25)


def _ack8_generic() -> None:
    encode_frame(Buffer(), AckFrame(EIGHT_RANGES, 25))


CASES: list[tuple[str, Callable[[], object]]] = [
    ("push_stream_frame (1100 B, new Buffer)", _stream_push),
    ("encode_frame(StreamFrame) (1100 B)", _stream_generic),
    ("stream_frame_overhead", lambda: stream_frame_overhead(4, 1 << 20, 1100)),
    ("push_ack_frame, 1 range", _ack1),
    ("push_ack_frame, 8 ranges", _ack8),
    ("encode_frame(AckFrame), 8 ranges", _ack8_generic),
    ("decode_frames: STREAM", lambda: decode_frames(STREAM_PAYLOAD)),
    ("decode_frames: ACK(8 ranges)", lambda: decode_frames(ACK8_PAYLOAD)),
    ("decode_frames: ACK(8) + STREAM", lambda: decode_frames(ACK_STREAM_PAYLOAD)),
    ("decode_frames: CRYPTO + 900 B PADDING", lambda: decode_frames(INITIAL_PAYLOAD)),
    ("parse_header: short", lambda: parse_header(SHORT_PACKET)),
    ("parse_header: long (Handshake)", lambda: parse_header(LONG_PACKET)),
    ("encode_short_header", lambda: encode_short_header(DCID, 77, 2)),
    ("encode_packet_number", lambda: encode_packet_number(1_000_123, 1_000_000)),
    ("decode_packet_number", lambda: decode_packet_number(0x1234, 16, 1_000_000)),
    ("TransportParameters.encode", TP.encode),
    ("TransportParameters.decode", lambda: TransportParameters.decode(TP_WIRE, True)),
]


def run(number: int, repeat: int) -> list[tuple[str, float]]:
    """(case, microseconds per op), best of ``repeat``."""
    results = []
    for name, fn in CASES:
        n = max(1, number // 10) if name.startswith("TransportParameters") else number
        best = min(timeit.repeat(fn, number=n, repeat=repeat)) / n
        results.append((name, best * 1e6))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (best is kept)")
    args = parser.parse_args(argv)
    print(f"Wire codecs, µs per op (best of {args.repeat})")
    print()
    print("| operation | µs/op | ops/s |")
    print("|---|---:|---:|")
    for name, us in run(args.number, args.repeat):
        print(f"| {name} | {us:.3f} | {1e6 / us:,.0f} |")


if __name__ == "__main__":
    main()

"""Per-frame cost of the stream layer (sans-IO).

Run: ``PYTHONPATH=. python benchmarks/bench_proto_streams.py``.

Measures, for 1,150-byte STREAM frames:
- SendStream.next_frame + on_acked (the sender's per-frame bookkeeping),
- RecvStream.on_stream_frame + read (the receiver's),
- StreamManager.write_stream_frames into a packet Buffer + on_stream_acked (one packet).
"""

from __future__ import annotations

import time

from quicish.native import ACCELERATED
from quicish.proto.records import Record
from quicish.proto.recv_stream import RecvStream
from quicish.proto.send_stream import SendStream
from quicish.proto.stream_manager import StreamLimits, StreamManager
from quicish.wire.buffer import Buffer

FRAME = 1150
TOTAL = 64 << 20
CHUNK = bytes(64 << 10)


def bench_send() -> float:
    s = SendStream(capacity=1 << 62)
    for _ in range(TOTAL // len(CHUNK)):
        s.write(CHUNK)
    t = time.perf_counter()
    n = 0
    next_frame, on_acked = s.next_frame, s.on_acked
    while (f := next_frame(FRAME, 1 << 62)) is not None:
        on_acked(f[0], len(f[1]), f[2])
        n += 1
    return (time.perf_counter() - t) / n


def bench_recv() -> float:
    r = RecvStream(1 << 40)
    payload = bytes(FRAME)
    n = TOTAL // FRAME
    t = time.perf_counter()
    on_frame, read = r.on_stream_frame, r.read
    off = 0
    for _ in range(n):
        on_frame(off, payload, False)
        read()
        off += FRAME
    return (time.perf_counter() - t) / n


def bench_manager(streams: int) -> float:
    big = 1 << 40
    m = StreamManager(True, peer=StreamLimits(big, big, big, big, 1000, 1000))
    sids = [m.open_stream() for _ in range(streams)]
    per = TOTAL // streams
    for sid in sids:
        for _ in range(per // len(CHUNK)):
            m.write(sid, CHUNK)
    t = time.perf_counter()
    packets = 0
    while True:
        buf = Buffer()
        records: list[Record] = []
        if not m.write_stream_frames(buf, 1200, records):
            break
        for rec in records:
            m.on_stream_acked(*rec)
        packets += 1
    return (time.perf_counter() - t) / packets


def main() -> None:
    print(f"ACCELERATED={ACCELERATED}, {TOTAL >> 20} MB in {FRAME}-byte frames")
    print(f"SendStream next_frame+on_acked : {bench_send() * 1e6:6.2f} us/frame")
    print(f"RecvStream on_stream_frame+read: {bench_recv() * 1e6:6.2f} us/frame")
    for n in (1, 100):
        cost = bench_manager(n)
        print(f"StreamManager packet, {n:3d} streams: {cost * 1e6:6.2f} us/packet")


if __name__ == "__main__":
    main()

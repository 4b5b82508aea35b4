"""C core vs pure-Python twin: RangeSet and ReassemblyBuffer on realistic operation mixes.

Every workload is a fixed, seeded list of operations generated up front; both
implementations run the identical list (through pre-bound methods, so the loop adds the
same small cost to both) and the results are checked to be equal. Reported: operations
per second for each implementation and the ratio C / pure (best of ``--repeat`` runs, the
two implementations taking turns).
An operation is one method call on a ``RangeSet`` or a ``ReassemblyBuffer``.

Packet arrivals (``ack`` and ``ack-elementary``): packet numbers with 3% loss for good,
6% reordering (delivered 1-8 packets late) and 1% duplicates.

Workloads:
- ``ack``: what the engine does with a ``RangeSet(64)`` (``PacketSpace.received``) per
  received packet. ``PacketSpace.record``: a packet below the ACK floor is dropped
  without touching the set, otherwise ``add_packet(pn)`` both records it and says whether
  it was a duplicate (dropped before its frames are processed). Every
  second recorded packet an ACK is built as the engine builds it (``Connection``'s
  packet builder): ``ack_frame(delay, ecn, 32)`` then ``bounds()`` (largest
  acknowledged), with an ack delay of 0-3124 (25 ms at exponent 3) and ECN counts,
  ECT(0) = packets so far and 0.5% of them CE (quicish marks ECT(0) by default, so its
  ACKs are ACK_ECN frames). Every 50 recorded packets ``drop_below(pn - 64)``, as when
  the peer acknowledges an ACK of ours (``on_ack_acknowledged``), which also raises the
  floor. (Which packets are duplicates is decided while generating, by a pure
  ``RangeSet`` given the same operations, so the list is what the engine would do.)
- ``ack-elementary``: the former ``ack`` workload, on the elementary operations: per
  packet ``pn in rs`` then ``add(pn, pn + 1)``, ``descending()`` every second packet (the
  ranges of an ACK frame, not encoded), ``drop_below(pn - 64)`` every 50 packets.
- ``stream``: 1200-byte STREAM frames with 5% reordering, 2% loss (retransmitted 20-60
  frames later), 2% spurious retransmissions overlapping two frames, ``read()`` every
  4 frames, a FIN at the end. The data of each insert is a ``memoryview`` slice, as
  ``wire.frames.decode_frames`` hands STREAM and CRYPTO data to ``ReassemblyBuffer.insert``
  in the engine (the twin copies it, the C core reads it through the buffer protocol). The
  slices share one 128 KiB buffer that stays in the CPU cache, as a packet just decrypted
  does (see ``packet_data``).
- ``stream-ooo``: heavy disorder: 300-byte pieces in a 64-piece window delivered in
  random order, 30% of them retransmitted with shifted overlaps, reads of 4 KiB; data as
  ``memoryview`` slices too.
- ``mixed``: ``ack`` and ``stream`` interleaved at random, 100k operations in all (half
  from each before interleaving): the issue's yardstick.

Run: ``python benchmarks/bench_native.py [--ops 100000] [--repeat 5] [--workloads ack,mixed]``.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quicish.native import pure

# An op is (target, method name, args); targets are "rs" (RangeSet) or "buf" (reassembly).
Op = tuple[str, str, tuple[Any, ...]]

ACK_SET_RANGES = 64  # quicish.proto.packet_space.ACK_RANGES_LIMIT


def arrivals(rng: random.Random) -> Iterator[tuple[int, int]]:
    """``(pn, packets sent so far)`` of arriving packets: 3% lost for good, 6% 1-8 late,
    1% duplicated."""
    pending: list[tuple[int, int]] = []  # (deliver_at, pn)
    pn = 0
    step = 0
    while True:
        step += 1
        now: list[int] = []
        r = rng.random()
        if r < 0.03:
            pass  # lost for good
        elif r < 0.09:
            pending.append((step + rng.randrange(1, 9), pn))
        else:
            now.append(pn)
            if rng.random() < 0.01:
                now.append(pn)  # duplicate
        pn += 1
        now += [p for due, p in pending if due <= step]
        pending = [(due, p) for due, p in pending if due > step]
        for p in now:
            yield p, pn


def ack_ops(n_ops: int, rng: random.Random) -> list[Op]:
    """What the engine does with ``PacketSpace.received`` per received packet."""
    ops: list[Op] = []
    model = pure.RangeSet(ACK_SET_RANGES)  # answers the duplicate checks, as the set will
    floor = 0  # PacketSpace.ack_floor
    recorded = 0
    ect0 = ce = 0
    for p, pn in arrivals(rng):
        if len(ops) >= n_ops:
            break
        if p < floor:
            continue  # PacketSpace.record: below the floor, the set is not consulted
        ops.append(("rs", "add_packet", (p,)))  # record: duplicate check and recording
        if not model.add_packet(p):
            continue  # a duplicate: dropped before its frames are processed
        recorded += 1
        ect0 += 1
        if rng.random() < 0.005:
            ce += 1
        if recorded % 2 == 0:  # an ACK goes out
            ops.append(("rs", "ack_frame", (rng.randrange(3125), (ect0, 0, ce), 32)))
            ops.append(("rs", "bounds", ()))
        if recorded % 50 == 0:  # the peer acknowledged an ACK of ours: on_ack_acknowledged
            floor = max(floor, pn - 64)
            ops.append(("rs", "drop_below", (floor,)))
            model.drop_below(floor)
    return ops[:n_ops]


def ack_elementary_ops(n_ops: int, rng: random.Random) -> list[Op]:
    """The same arrivals on the elementary operations (the former ``ack`` workload)."""
    ops: list[Op] = []
    for received, (p, pn) in enumerate(arrivals(rng), 1):
        if len(ops) >= n_ops:
            break
        ops.append(("rs", "__contains__", (p,)))
        ops.append(("rs", "add", (p, p + 1)))
        if received % 2 == 0:
            ops.append(("rs", "descending", ()))
        if received % 50 == 0:
            ops.append(("rs", "drop_below", (max(0, pn - 64),)))
    return ops[:n_ops]


def packet_data(payload2: memoryview, off: int, length: int) -> memoryview:
    """``length`` bytes of stream data at ``off`` as the engine passes them to ``insert``: a
    memoryview slice (of ``payload2``, the stream's 64 KiB pattern twice over, so any slice
    fits). All slices share that one 128 KiB buffer, which stays in the CPU cache as a
    just-decrypted packet does in the engine; a separate bytes object per frame would put
    ~100 MB of frame data in memory and make both implementations wait on cold memory."""
    start = off % (len(payload2) // 2)
    return payload2[start : start + length]


def stream_ops(n_ops: int, rng: random.Random, frame: int = 1200) -> list[Op]:
    """One stream's frames with reordering, loss + retransmission and overlaps."""
    ops: list[Op] = []
    late: list[tuple[int, int, int]] = []  # (deliver_at, offset, length)
    payload = memoryview(rng.randbytes(1 << 16) * 2)
    offset = 0
    step = 0
    inserts = 0

    def frame_op(off: int, length: int, fin: bool = False) -> Op:
        return ("buf", "insert", (off, packet_data(payload, off, length), fin))

    while len(ops) < n_ops:
        step += 1
        r = rng.random()
        if r < 0.02:
            late.append((step + rng.randrange(20, 61), offset, frame))
        elif r < 0.07:
            late.append((step + rng.randrange(1, 6), offset, frame))
        else:
            ops.append(frame_op(offset, frame))
            inserts += 1
        if rng.random() < 0.02 and offset >= frame:
            ops.append(frame_op(offset - frame // 2, frame))  # spurious, overlapping
            inserts += 1
        offset += frame
        for _due, off, length in [x for x in late if x[0] <= step]:
            ops.append(frame_op(off, length))
            inserts += 1
        late = [x for x in late if x[0] > step]
        if inserts % 4 == 0:
            ops.append(("buf", "read", ()))
    ops = ops[:n_ops]
    for _, off, length in late:  # deliver what is still in flight, then FIN and drain
        ops.append(frame_op(off, length))
    ops.append(("buf", "insert", (offset, memoryview(b""), True)))
    ops.append(("buf", "read", ()))
    return ops


def stream_ooo_ops(n_ops: int, rng: random.Random, piece: int = 300) -> list[Op]:
    """Heavy disorder: small pieces in random order with shifted, overlapping copies."""
    ops: list[Op] = []
    payload = memoryview(rng.randbytes(1 << 16) * 2)
    base = 0
    while len(ops) < n_ops:
        window = [(base + i * piece, piece) for i in range(64)]
        window += [
            (off + rng.randrange(-piece // 2, piece // 2), piece)
            for off, _ in rng.sample(window, 19)
        ]
        rng.shuffle(window)
        for i, (off, length) in enumerate(window):
            off = max(off, 0)
            ops.append(("buf", "insert", (off, packet_data(payload, off, length), False)))
            if i % 8 == 7:
                ops.append(("buf", "read", (4096,)))
        base += 64 * piece
    ops = ops[:n_ops]
    ops.append(("buf", "read", ()))
    return ops


def interleave(a: list[Op], b: list[Op], rng: random.Random) -> list[Op]:
    out: list[Op] = []
    i = j = 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and rng.random() < len(a) / (len(a) + len(b))):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


def bind(impl: ModuleType, ops: list[Op]) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    targets = {"rs": impl.RangeSet(ACK_SET_RANGES), "buf": impl.ReassemblyBuffer(1 << 62)}
    return [(getattr(targets[t], name), args) for t, name, args in ops]


def run_once(impl: ModuleType, ops: list[Op]) -> float:
    bound = bind(impl, ops)
    gc.collect()
    gc.disable()  # as timeit does: no collector pauses inside the timed loop
    try:
        t0 = time.perf_counter()
        for fn, args in bound:
            fn(*args)
        return time.perf_counter() - t0
    finally:
        gc.enable()


def measure(impls: list[ModuleType], ops: list[Op], repeat: int) -> list[float]:
    """Best ops/s of each implementation over ``repeat`` runs on fresh objects; the
    implementations take turns, so that a busy spell on the machine hits both alike."""
    best = [float("inf")] * len(impls)
    for _ in range(repeat):
        for i, impl in enumerate(impls):
            best[i] = min(best[i], run_once(impl, ops))
    return [len(ops) / t for t in best]


def results(impl: ModuleType, ops: list[Op]) -> list[Any]:
    """Every op's return value (untimed), to check both implementations agree."""
    return [fn(*args) for fn, args in bind(impl, ops)]


def mixed_ops(n_ops: int, seed: int) -> list[Op]:
    rng = random.Random(seed)
    ack = ack_ops(n_ops // 2, rng)
    stream = stream_ops(n_ops - len(ack), rng)
    return interleave(ack, stream, rng)


WORKLOADS: dict[str, Callable[[int, int], list[Op]]] = {
    "ack": lambda n, seed: ack_ops(n, random.Random(seed + 1)),
    "ack-elementary": lambda n, seed: ack_elementary_ops(n, random.Random(seed + 1)),
    "stream": lambda n, seed: stream_ops(n, random.Random(seed + 2)),
    "stream-ooo": lambda n, seed: stream_ooo_ops(n, random.Random(seed + 3)),
    "mixed": mixed_ops,
}


def workloads(n_ops: int, seed: int, names: list[str] | None = None) -> dict[str, list[Op]]:
    chosen = [name for name in WORKLOADS if not names or name in names]
    return {name: WORKLOADS[name](n_ops, seed) for name in chosen}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="C core vs pure twin (RangeSet, reassembly)")
    parser.add_argument("--ops", type=int, default=100_000, help="operations per workload")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (best kept)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--workloads", default="", help="comma-separated subset to run (default: all)"
    )
    args = parser.parse_args(argv)
    wanted = [w for w in args.workloads.split(",") if w]
    try:
        from quicish.native import accelerated
    except ImportError as exc:
        print(f"C core not built ({exc}); run: python quicish/native/build_core.py")
        return 1
    rows = []
    unknown = set(wanted) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    for name, ops in workloads(args.ops, args.seed, wanted).items():
        if results(accelerated, ops) != results(pure, ops):
            print(f"MISMATCH in workload {name}")
            return 1
        c_rate, py_rate = measure([accelerated, pure], ops, args.repeat)
        rows.append((name, len(ops), c_rate, py_rate))
    print("| workload | ops | C ops/s | pure ops/s | C / pure |")
    print("|---|---:|---:|---:|---:|")
    for name, count, c_rate, py_rate in rows:
        print(f"| {name} | {count:,} | {c_rate:,.0f} | {py_rate:,.0f} | {c_rate / py_rate:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

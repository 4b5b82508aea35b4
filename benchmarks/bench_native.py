"""C core vs pure-Python twin: RangeSet and ReassemblyBuffer on realistic operation mixes.

Every workload is a fixed, seeded list of operations generated up front; both
implementations run the identical list (through pre-bound methods, so the loop adds the
same small cost to both) and the results are checked to be equal. Reported: operations
per second for each implementation and the ratio C / pure (best of ``--repeat`` runs).

Workloads:
- ``ack``: receiving packet numbers with 3% loss, 6% reordering (up to 8 late), 1%
  duplicates: ``pn in rs`` then ``add(pn, pn + 1)`` per packet, ``descending()`` every
  second packet (an ACK frame), ``drop_below`` every 50 packets (ACK of an ACK).
- ``stream``: 1200-byte STREAM frames with 5% reordering, 2% loss (retransmitted 20-60
  frames later), 2% spurious retransmissions overlapping two frames, ``read()`` every
  4 frames, a FIN at the end.
- ``stream-ooo``: heavy disorder: 300-byte pieces in a 64-piece window delivered in
  random order, 30% of them retransmitted with shifted overlaps, reads of 4 KiB.
- ``mixed``: ``ack`` and ``stream`` interleaved, 100k operations (the issue's yardstick).

Run: ``python benchmarks/bench_native.py [--ops 100000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quicish.native import pure

# An op is (target, method name, args); targets are "rs" (RangeSet) or "buf" (reassembly).
Op = tuple[str, str, tuple[Any, ...]]


def ack_ops(n_ops: int, rng: random.Random) -> list[Op]:
    """Receiver-side packet number tracking with loss, reordering and duplicates."""
    ops: list[Op] = []
    pending: list[tuple[int, int]] = []  # (deliver_at, pn)
    pn = 0
    step = 0
    received = 0
    while len(ops) < n_ops:
        step += 1
        arrivals: list[int] = []
        r = rng.random()
        if r < 0.03:
            pass  # lost for good
        elif r < 0.09:
            pending.append((step + rng.randrange(1, 9), pn))
        else:
            arrivals.append(pn)
            if rng.random() < 0.01:
                arrivals.append(pn)  # duplicate
        pn += 1
        arrivals += [p for due, p in pending if due <= step]
        pending = [(due, p) for due, p in pending if due > step]
        for p in arrivals:
            ops.append(("rs", "__contains__", (p,)))
            ops.append(("rs", "add", (p, p + 1)))
            received += 1
            if received % 2 == 0:
                ops.append(("rs", "descending", ()))
            if received % 50 == 0:
                ops.append(("rs", "drop_below", (max(0, pn - 64),)))
    return ops[:n_ops]


def stream_ops(n_ops: int, rng: random.Random, frame: int = 1200) -> list[Op]:
    """One stream's frames with reordering, loss + retransmission and overlaps."""
    ops: list[Op] = []
    late: list[tuple[int, int, int]] = []  # (deliver_at, offset, length)
    payload = rng.randbytes(1 << 16)
    offset = 0
    step = 0
    inserts = 0

    def frame_op(off: int, length: int, fin: bool = False) -> Op:
        start = off % len(payload)
        data = (payload + payload)[start : start + length]
        return ("buf", "insert", (off, data, fin))

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
    ops.append(("buf", "insert", (offset, b"", True)))
    ops.append(("buf", "read", ()))
    return ops


def stream_ooo_ops(n_ops: int, rng: random.Random, piece: int = 300) -> list[Op]:
    """Heavy disorder: small pieces in random order with shifted, overlapping copies."""
    ops: list[Op] = []
    payload = rng.randbytes(1 << 16)
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
            start = off % len(payload)
            data = (payload + payload)[start : start + length]
            ops.append(("buf", "insert", (off, data, False)))
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
    targets = {"rs": impl.RangeSet(256), "buf": impl.ReassemblyBuffer(1 << 62)}
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


def measure(impl: ModuleType, ops: list[Op], repeat: int) -> float:
    """Best ops/s over ``repeat`` runs on fresh objects."""
    return len(ops) / min(run_once(impl, ops) for _ in range(repeat))


def results(impl: ModuleType, ops: list[Op]) -> list[Any]:
    """Every op's return value (untimed), to check both implementations agree."""
    return [fn(*args) for fn, args in bind(impl, ops)]


def workloads(n_ops: int, seed: int) -> dict[str, list[Op]]:
    rng = random.Random(seed)
    ack = ack_ops(n_ops // 2, rng)
    stream = stream_ops(n_ops - len(ack), rng)
    return {
        "ack": ack_ops(n_ops, random.Random(seed + 1)),
        "stream": stream_ops(n_ops, random.Random(seed + 2)),
        "stream-ooo": stream_ooo_ops(n_ops, random.Random(seed + 3)),
        "mixed": interleave(ack, stream, rng),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="C core vs pure twin (RangeSet, reassembly)")
    parser.add_argument("--ops", type=int, default=100_000, help="operations per workload")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (best kept)")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    try:
        from quicish.native import accelerated
    except ImportError as exc:
        print(f"C core not built ({exc}); run: python quicish/native/build_core.py")
        return 1
    rows = []
    for name, ops in workloads(args.ops, args.seed).items():
        if results(accelerated, ops) != results(pure, ops):
            print(f"MISMATCH in workload {name}")
            return 1
        c_rate = measure(accelerated, ops, args.repeat)
        py_rate = measure(pure, ops, args.repeat)
        rows.append((name, len(ops), c_rate, py_rate))
    print("| workload | ops | C ops/s | pure ops/s | C / pure |")
    print("|---|---:|---:|---:|---:|")
    for name, count, c_rate, py_rate in rows:
        print(f"| {name} | {count:,} | {c_rate:,.0f} | {py_rate:,.0f} | {c_rate / py_rate:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

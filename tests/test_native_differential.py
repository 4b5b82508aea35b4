"""Differential tests: the C core and the pure twin must agree on every operation.

Each sequence applies the same random operations to both implementations and
compares every result, every exception (type, QUIC code, message) and the full
observable state after each step. ``SEQUENCES`` seeded sequences per structure
run in a plain loop (fast), and hypothesis explores (and shrinks) more.

``make sanitize`` runs this file against the AddressSanitizer build
(``QUICISH_NATIVE_MODULE=quicish.native._core_asan``).
"""

from __future__ import annotations

import os
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import outcome

from quicish.native import accelerated, pure
from quicish.wire.buffer import Buffer
from quicish.wire.frames import push_ack_frame

SEQUENCES = 10_000  # random differential sequences per structure (the issue asks for 10k)
OPS_PER_SEQUENCE = 24
MAX = 1 << 62

Op = tuple[Any, ...]


# ---------------------------------------------------------------- RangeSet


def rs_state(rs: Any) -> tuple[Any, ...]:
    bounds = rs.bounds() if rs else None
    return (rs.ranges(), rs.descending(), list(rs), len(rs), bool(rs), bounds, rs.floor)


def reference_ack_frame(rs: Any, delay: int, ecn: Any, max_ranges: int) -> bytes:
    buf = Buffer()
    push_ack_frame(buf, rs.descending()[:max_ranges], delay, ecn)
    return bytes(buf.take())


def rs_apply(rs: Any, op: Op) -> tuple[Any, ...]:
    name = op[0]
    if name == "contains":
        return ("ok", op[1] in rs)
    if name == "bounds":
        return outcome(rs.bounds)
    result = outcome(getattr(rs, name), *op[1:])
    if name == "ack_frame" and result[0] == "ok":
        # the frame is the one wire.frames writes for the same ranges
        assert result[1] == reference_ack_frame(rs, *op[1:]), (op, rs)
    return result


def run_rangeset(max_ranges: int, ops: list[Op]) -> None:
    a = pure.RangeSet(max_ranges)
    b = accelerated.RangeSet(max_ranges)
    for i, op in enumerate(ops):
        ra = rs_apply(a, op)
        rb = rs_apply(b, op)
        assert ra == rb, (i, op, ra, rb)
        sa = rs_state(a)
        assert sa == rs_state(b), (i, op, sa, rs_state(b))
        assert len(a) <= max_ranges
    assert a == b


def rand_value(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.85:
        return rng.randrange(0, 64)
    if r < 0.95:
        return MAX - rng.randrange(0, 8)
    return rng.choice([-1, -7, MAX + 1, 1 << 64, 1 << 70])


def rand_varint(rng: random.Random) -> Any:
    """An ACK delay or ECN count: mostly valid (every varint size), sometimes not."""
    r = rng.random()
    if r < 0.9:
        return rng.choice([0, 1, 63, 64, 16_383, 16_384, 1 << 30, MAX - 1, rng.randrange(1 << 20)])
    return rng.choice([-1, MAX, 1 << 64, 1.0, None])


def rand_ack_frame_op(rng: random.Random) -> Op:
    r = rng.random()
    if r < 0.45:
        ecn: Any = None
    elif r < 0.95:
        ecn = (rand_varint(rng), rand_varint(rng), rand_varint(rng))
    else:
        ecn = rng.choice([(1, 2), (1, 2, 3, 4), 7, [1, 2, 3]])
    max_ranges = rng.choice([1, 1, 2, 3, 32, 32, 1 << 70, 0, -1, 2.0])
    return ("ack_frame", rand_varint(rng), ecn, max_ranges)


def rand_rs_op(rng: random.Random) -> Op:
    r = rng.random()
    if r < 0.3:
        start = rand_value(rng)
        return ("add", start, start + rng.choice([1, 1, 1, 2, 3, 5, 9, 20, 0, -1]))
    if r < 0.45:
        return ("add_packet", rand_value(rng))
    if r < 0.55:
        start = rand_value(rng)
        return ("subtract", start, start + rng.choice([1, 2, 4, 8, 30, 0]))
    if r < 0.62:
        return ("drop_below", rand_value(rng))
    if r < 0.77:
        return ("contains", rand_value(rng))
    if r < 0.92:
        return rand_ack_frame_op(rng)
    return ("bounds",)


def test_rangeset_random_sequences() -> None:
    rng = random.Random(0x5157)
    for _ in range(SEQUENCES):
        max_ranges = rng.choice([1, 2, 3, 5, 8, 256])
        ops = [rand_rs_op(rng) for _ in range(rng.randrange(1, 2 * OPS_PER_SEQUENCE))]
        run_rangeset(max_ranges, ops)


values = st.one_of(
    st.integers(0, 80), st.integers(MAX - 8, MAX + 2), st.sampled_from([-1, 1 << 64])
)
varints = st.one_of(
    st.integers(0, 100), st.integers(MAX - 3, MAX), st.sampled_from([-1, 64, 16_384, 1 << 30])
)
rs_ops = st.one_of(
    st.tuples(st.just("add"), values, values),
    st.tuples(st.just("add_packet"), values),
    st.tuples(st.just("subtract"), values, values),
    st.tuples(st.just("drop_below"), values),
    st.tuples(st.just("contains"), values),
    st.tuples(st.just("bounds")),
    st.tuples(
        st.just("ack_frame"),
        varints,
        st.one_of(st.none(), st.tuples(varints, varints, varints)),
        st.sampled_from([1, 2, 3, 32, 0]),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([1, 2, 4, 256]), st.lists(rs_ops, max_size=60))
def test_rangeset_hypothesis(max_ranges: int, ops: list[Op]) -> None:
    run_rangeset(max_ranges, ops)


# ------------------------------------------------------- ReassemblyBuffer


def ra_state(buf: Any) -> tuple[Any, ...]:
    return (
        buf.read_offset,
        buf.highest_offset,
        buf.final_size,
        buf.readable,
        buf.buffered,
        buf.finished,
        buf.max_offset,
        buf.fragments,
        buf.max_fragments,
    )


def ra_apply(buf: Any, op: Op) -> tuple[Any, ...]:
    name = op[0]
    if name == "insert":
        _, offset, data, fin, kind = op
        if kind == "bytearray":
            data = bytearray(data)
        elif kind == "memoryview":
            data = memoryview(b"\xee" + data)[1:]
        elif kind == "strided":  # not contiguous: the C core copies it first
            data = memoryview(bytes(b for c in data for b in (c, 0xEE)))[::2]
        return outcome(buf.insert, offset, data, fin)
    if name == "grow":
        return outcome(setattr, buf, "max_offset", op[1])
    if name == "limit":
        return outcome(setattr, buf, "max_fragments", op[1])
    return outcome(getattr(buf, name), *op[1:])


def run_reassembly(max_offset: int, ops: list[Op]) -> None:
    a = pure.ReassemblyBuffer(max_offset)
    b = accelerated.ReassemblyBuffer(max_offset)
    for i, op in enumerate(ops):
        ra = ra_apply(a, op)
        rb = ra_apply(b, op)
        assert ra == rb, (i, op, ra, rb)
        sa = ra_state(a)
        assert sa == ra_state(b), (i, op, sa, ra_state(b))
        assert sa[4] <= sa[1] - sa[0]  # buffered within [read_offset, highest_offset)


def rand_ra_op(rng: random.Random, truth: bytes, other: bytes) -> Op:
    r = rng.random()
    if r < 0.6:
        offset = rng.randrange(0, len(truth) + 8) if rng.random() < 0.97 else rand_value(rng)
        length = rng.choice([0, 1, 2, 3, 5, 8, 13, 21, 40])
        src = truth if rng.random() < 0.9 else other  # sometimes conflicting bytes
        data = src[max(offset, 0) : max(offset, 0) + length] if offset < len(src) else b""
        fin = rng.random() < 0.12
        kind = rng.choice(["bytes", "bytes", "bytearray", "memoryview", "strided"])
        return ("insert", offset, data, fin, kind)
    if r < 0.85:
        return ("read", rng.choice([-1, 0, 1, 3, 7, 16, 50, 1000]))
    if r < 0.92:
        return ("set_final_size", rng.randrange(-1, len(truth) + 4))
    if r < 0.95:
        return ("limit", rng.choice([0, 1, 2, 3, 5, 8, -1]))
    return ("grow", rng.choice([rng.randrange(0, len(truth) + 16), -1, MAX + 1]))


def test_reassembly_random_sequences() -> None:
    rng = random.Random(0xB0F)
    for _ in range(SEQUENCES):
        size = rng.randrange(0, 160)
        truth = rng.randbytes(size)
        other = rng.randbytes(size)
        max_offset = rng.choice([size, size, size + 10, max(size - 10, 0), 0, MAX])
        ops = [rand_ra_op(rng, truth, other) for _ in range(rng.randrange(1, 2 * OPS_PER_SEQUENCE))]
        run_reassembly(max_offset, ops)


ra_ops = st.one_of(
    st.tuples(
        st.just("insert"),
        st.one_of(st.integers(0, 120), st.sampled_from([MAX - 1, MAX, 1 << 64])),
        st.binary(max_size=40),
        st.booleans(),
        st.sampled_from(["bytes", "bytearray", "memoryview", "strided"]),
    ),
    st.tuples(st.just("read"), st.integers(-1, 60)),
    st.tuples(st.just("set_final_size"), st.integers(-1, 130)),
    st.tuples(st.just("grow"), st.integers(0, 200)),
    st.tuples(st.just("limit"), st.integers(-1, 6)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0, 50, 100, 160, MAX]), st.lists(ra_ops, max_size=50))
def test_reassembly_hypothesis(max_offset: int, ops: list[Op]) -> None:
    run_reassembly(max_offset, ops)


def test_stream_reassembles_identically() -> None:
    """Long shuffled streams with overlaps and reads of random sizes."""
    rng = random.Random(99)
    for _ in range(20):
        data = rng.randbytes(rng.randrange(1, 30_000))
        pieces: list[tuple[int, bytes, bool]] = []
        pos = 0
        while pos < len(data):
            n = rng.randrange(1, 1500)
            start = max(0, pos - rng.choice([0, 0, 0, 10, 300]))
            pieces.append((start, data[start : pos + n], pos + n >= len(data)))
            pos += n
        pieces += rng.sample(pieces, len(pieces) // 4)  # retransmissions
        rng.shuffle(pieces)
        ops: list[Op] = []
        for offset, piece, fin in pieces:
            ops.append(("insert", offset, piece, fin, "bytes"))
            if rng.random() < 0.5:
                ops.append(("read", rng.choice([-1, 100, 5000])))
        ops.append(("read", -1))
        run_reassembly(len(data), ops)
        buf = accelerated.ReassemblyBuffer(len(data))
        out = bytearray()
        for op in ops:
            if op[0] == "insert":
                ra_apply(buf, op)
            else:
                out += buf.read(op[1])
        assert bytes(out) == data
        assert buf.finished


def test_fragment_patterns_reassemble_identically() -> None:
    """Single-byte pieces highest first, with and without holes, interleaved from both
    ends, and hole fillers joining runs of unequal sizes (the C core's prepend, join and
    two-ended slot paths), with reads in between."""
    rng = random.Random(15)
    size = 3000
    data = rng.randbytes(size)
    patterns = [
        list(range(size - 1, -1, -1)),
        list(range(size - 2, -1, -2)) + list(range(size - 1, -1, -2)),
        [x for k in range(size // 2) for x in (k, size - 1 - k)],
        list(range(0, size, 3)) + list(range(2, size, 3)) + list(range(1, size, 3)),
        rng.sample(range(size), size),
    ]
    for order in patterns:
        ops: list[Op] = []
        for k, off in enumerate(order):
            n = 1 if k % 7 else rng.randrange(1, 40)
            ops.append(("insert", off, data[off : off + n], off + n >= size, "bytes"))
            if k % 97 == 0:
                ops.append(("read", rng.choice([-1, 1, 50])))
        ops.append(("read", -1))
        run_reassembly(size, ops)


def test_native_module_is_the_one_requested() -> None:
    """Guards `make sanitize`: the C side really is the module named in the environment."""
    expected = os.environ.get("QUICISH_NATIVE_MODULE") or "quicish.native._core"
    assert expected == accelerated.MODULE_NAME
    assert expected == accelerated._mod.__name__

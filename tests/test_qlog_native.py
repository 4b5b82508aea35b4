"""render_stream_packets: the C core's (py_qlog.c) and the pure twin's give the same bytes;
QlogTap: the C core's and the twin's do the same with the same calls.

The qlog writer renders its bulk packet records (one STREAM frame per packet) with the C
function when the core loads; the twin is the reference (its template is the one the
writer used before). ``make sanitize`` can run this file against the AddressSanitizer
build (``QUICISH_NATIVE_MODULE=quicish.native._core_asan``).
"""

from __future__ import annotations

import io
import json
import math
import os
import random
from collections import Counter
from typing import Any

import pytest

from quicish import native
from quicish.native import accelerated, pure
from quicish.proto.records import PingRecord, StreamRecord
from quicish.qlog.writer import QlogWriter
from quicish.wire.frames import StreamFrame

C = accelerated.render_stream_packets
PY = pure.render_stream_packets
NAMES = ("quic:packet_sent", "quic:packet_received")


def random_time(rng: random.Random, start: float) -> float:
    kind = rng.randrange(8)
    if kind == 0:
        return start - rng.uniform(0, 5)  # before the start: written as 0.000
    if kind == 1:  # on (or next to) a rounding tie of the third decimal
        tie = (rng.randrange(10**9) + 0.5) / 1e6
        return start + tie + rng.choice((0.0, 1e-16, -1e-16, 5e-13))
    if kind == 2:
        return start + rng.uniform(1e6, 1e13)  # past the C short cut (2^30 ms)
    if kind == 3:
        return start + rng.randrange(10**7) / 1e6  # whole microseconds
    return start + rng.uniform(0, 3600)


def random_record(rng: random.Random, start: float) -> tuple[Any, ...]:
    return (
        random_time(rng, start),
        rng.choice(NAMES),
        rng.choice(("1RTT", "0RTT")),
        rng.randrange(1 << rng.choice((6, 14, 30, 62))),
        rng.choice((0, 3, 4, 63, 64, 65, 1 << 20, (1 << 62) - 1)) + rng.randrange(4) * 4,
        rng.randrange(1 << rng.choice((10, 30, 40, 62))),
        rng.choice((True, False)),
        rng.randrange(1 << 14),
        rng.randrange(21, 1500) if rng.random() < 0.9 else rng.randrange(1 << 63),
    )


def test_c_and_python_give_the_same_bytes_on_random_records() -> None:
    rng = random.Random(17)
    for _ in range(200):
        start = rng.choice((0.0, 1000.25, rng.uniform(0, 1e6)))
        records = [random_record(rng, start) for _ in range(rng.randrange(1, 60))]
        lo = rng.randrange(len(records))
        hi = rng.randrange(lo, len(records) + 1)
        assert C(records, start, lo, hi) == PY(records, start, lo, hi)
        assert C(records, start, 0, len(records)) == PY(records, start, 0, len(records))


def test_the_records_are_the_template() -> None:
    records = [
        (10.0025, "quic:packet_sent", "1RTT", 7, 4, 1 << 40, True, 1200, 1252),
        (9.0, "quic:packet_received", "1RTT", 8, 64, 0, False, 0, 21),
    ]
    text = C(records, 10.0, 0, 2)
    assert text == (
        b'\x1e{"time":2.500,"name":"quic:packet_sent","data":{"header":{"packet_type":"1RTT",'
        b'"packet_number":7},"frames":[{"frame_type":"stream","stream_id":4,'
        b'"offset":1099511627776,"fin":true,"raw":{"length":1200}}],"raw":{"length":1252}}}\n'
        b'\x1e{"time":0.000,"name":"quic:packet_received","data":{"header":{"packet_type":"1RTT",'
        b'"packet_number":8},"frames":[{"frame_type":"stream","stream_id":64,"offset":0,'
        b'"fin":false,"raw":{"length":0}}],"raw":{"length":21}}}\n'
    )
    assert [json.loads(r)["data"]["frames"][0]["fin"] for r in text.split(b"\x1e")[1:]] == [
        True,
        False,
    ]


@pytest.mark.parametrize(
    "ms",
    [0.0005, 0.0015, 0.0025, 1.0005, 2.5e-4, 123.4565, 999.9995, 1e-9, 2.0**30, 2.0**30 - 1e-3],
)
def test_time_rounds_as_python_does(ms: float) -> None:
    record = (ms / 1000.0, "quic:packet_sent", "1RTT", 1, 0, 0, False, 1, 30)
    assert C([record], 0.0, 0, 1) == PY([record], 0.0, 0, 1)


def test_inf_nan_and_int_times() -> None:
    for now in (math.inf, math.nan, -math.inf, 5, True):
        record = (now, "quic:packet_sent", "1RTT", 1, 0, 0, 1, 1, 30)
        assert C([record], 1.0, 0, 1) == PY([record], 1.0, 0, 1)


def test_empty_and_bad_bounds() -> None:
    records = [(1.0, "quic:packet_sent", "1RTT", 1, 0, 0, False, 1, 30)]
    assert C(records, 0.0, 1, 1) == PY(records, 0.0, 1, 1) == b""
    assert C([], 0.0, 0, 0) == b""
    for lo, hi in ((-1, 1), (1, 0), (0, 2)):
        with pytest.raises(IndexError):
            C(records, 0.0, lo, hi)
        with pytest.raises(IndexError):
            PY(records, 0.0, lo, hi)


@pytest.mark.parametrize(
    "bad",
    [
        (1.0, "quic:packet_sent", "1RTT", None, 0, 0, False, 1, 30),  # packet number None
        (1.0, "quic:packet_sent", "1RTT", 1 << 64, 0, 0, False, 1, 30),  # beyond int64
        (1.0, b"quic:packet_sent", "1RTT", 1, 0, 0, False, 1, 30),  # bytes name
        (1.0, "quic:packet_sent", "1RTT", 1, 0, 0, None, 1, 30),  # fin None
        ("1.0", "quic:packet_sent", "1RTT", 1, 0, 0, False, 1, 30),  # str time
        (1.0, "quic:packet_sent", "1RTT", 1, 0, 0, False, 1),  # 8 fields
        [1.0, "quic:packet_sent", "1RTT", 1, 0, 0, False, 1, 30],  # a list
    ],
)
def test_c_refuses_what_it_does_not_render_exactly(bad: Any) -> None:
    good = (1.0, "quic:packet_sent", "1RTT", 1, 0, 0, False, 1, 30)
    with pytest.raises((TypeError, OverflowError)):
        C([good, bad], 0.0, 0, 2)
    assert C([good, bad], 0.0, 0, 1) == PY([good], 0.0, 0, 1)


def test_the_writer_falls_back_to_python_for_what_c_refuses() -> None:
    out = io.BytesIO()
    w = QlogWriter(out, bytes(8), True, start=0.0, close_stream=False)
    w.stream_packet("quic:packet_sent", 0.001, "1RTT", 1, 1252, 0, 0, 1200, False)
    w.stream_packet("quic:packet_sent", 0.002, "1RTT", 1 << 64, 1252, 0, 0, 1200, False)
    w.stream_packet("quic:packet_sent", 0.003, "1RTT", None, 1252, 0, 0, 1200, False)  # type: ignore[arg-type]
    w.close()
    events = [json.loads(r) for r in out.getvalue().split(b"\x1e")[2:]]
    assert [e["data"].get("header", {}).get("packet_number") for e in events] == [
        1,
        1 << 64,
        None,
    ]
    assert "quicish_error" in events[2]["data"] and events[2]["time"] == 3.0
    assert w.events_written == 3


def test_other_events_keep_their_places_among_bulk_records() -> None:
    out = io.BytesIO()
    w = QlogWriter(out, bytes(8), True, start=0.0, flush_every=5, close_stream=False)
    order = []
    for i in range(12):
        if i % 4 == 3:
            w.event("quic:stream_state_updated", {"stream_id": i}, i / 1000)
            order.append(("quic:stream_state_updated", i))
        else:
            w.stream_packet("quic:packet_sent", i / 1000, "1RTT", i, 1252, 0, i, 1, False)
            order.append(("quic:packet_sent", i))
    w.close()
    events = [json.loads(r) for r in out.getvalue().split(b"\x1e")[2:]]
    got = [
        (e["name"], e["data"].get("stream_id", e["data"].get("header", {}).get("packet_number")))
        for e in events
    ]
    assert got == order
    assert [e["time"] for e in events] == [float(i) for i in range(12)]
    assert w.events_written == 12


class _Trace:
    def __init__(self) -> None:
        self.now = -1.0
        self._phase = 0


class _Keys:
    phase = 0  # (a class attribute: the C tap reads it by name)


class _InstanceKeys:
    def __init__(self) -> None:
        self.phase = 0  # (an instance attribute: the C tap reads it from the instance dict)


def _tap_run(
    tap_type: Any,
    calls: list[tuple[str, tuple[Any, ...]]],
    bulk_type: Any = list,
    keys_type: Any = _Keys,
) -> list[Any]:
    """What a tap does with ``calls``: the records, the slow calls, the flushes, ``now``."""
    trace, keys = _Trace(), keys_type()
    bulk: Any = bulk_type()
    out: list[tuple[str, Any]] = []
    streams = {0, 4, 64}

    def flush() -> None:
        out.append(("flush", list(bulk)))
        bulk.clear()

    tap = tap_type(
        trace,
        bulk,
        streams,
        keys,
        flush,
        3,
        StreamFrame,
        lambda *a: out.append(("sent_slow", a)),
        lambda *a: out.append(("received_slow", a)),
        lambda *a: out.append(("stream_slow", a)),
        lambda *a: out.append(("burst_slow", a)),
    )
    for kind, args in calls:
        if kind == "phase":
            keys.phase = args[0]
        elif kind == "tap_phase":  # (the trace logged a key update: it tells the tap)
            tap.phase = args[0]
        else:
            try:
                getattr(tap, kind)(*args)
            except TypeError as exc:  # (a length of no len(): both raise)
                out.append(("raised", type(exc)))
        out.append(("now", (tap.now, trace.now)))
    return [*out, ("bulk", list(bulk))]


def _random_burst(
    rng: random.Random, now: float, pn: int, sid: Any, offset: int
) -> tuple[Any, ...]:
    """tap.burst's arguments: mostly a plain burst (FIN at its end or later, or unknown),
    sometimes an odd one (a value out of range or of another type, lists that differ)."""
    n = rng.randrange(0, 7)
    lengths: list[Any] = [rng.randrange(1, 1400) for _ in range(n)]
    packets: list[Any] = [bytes(length + rng.randrange(20, 40)) for length in lengths]
    end = offset + sum(lengths)
    final: Any = rng.choice((None, end, end + 1, end - lengths[-1] if n else None))
    if rng.random() < 0.15:
        odd = rng.randrange(6)
        if odd == 0:
            pn = (1 << 62) - rng.randrange(3)
        elif odd == 1:
            offset = -1
        elif odd == 2 and n:
            lengths[rng.randrange(n)] = 1 << 62
        elif odd == 3 and n:
            packets[rng.randrange(n)] = bytearray(5)
        elif odd == 4:
            lengths.append(5)
        else:
            final = 2.5
    return now, pn, sid, offset, final, packets, lengths


def _random_call(rng: random.Random) -> tuple[str, tuple[Any, ...]]:
    now, pn, size = rng.uniform(0, 10), rng.randrange(1 << 20), rng.randrange(21, 1500)
    sid = rng.choice((0, 4, 8, 64))
    fin: Any = rng.choice((False, False, False, True, 0))
    offset, length = rng.randrange(1 << 40), rng.randrange(1200)
    kind = rng.randrange(12)
    if kind == 0:
        return rng.choice(("phase", "tap_phase")), (rng.randrange(2),)
    if kind < 4:
        records: Any = [StreamRecord(sid, offset, length, fin)]
        if rng.random() < 0.1:
            records = records * 2 if rng.random() < 0.5 else [PingRecord()]
        return "sent", (now, pn, size, b"payload", records)
    if kind < 6:
        return "burst", _random_burst(rng, now, pn, sid, offset)
    if kind < 9:  # (the C opener's fields: stream_id, offset, data, fin, with_length)
        fields: Any = (sid, offset, memoryview(bytes(length)), fin, True)
        if rng.random() < 0.1:
            fields = rng.choice((fields[:3], [*fields], None, (sid, offset, 5, False, True)))
        return "stream_received", (now, pn, size, b"payload", fields)
    lone: Any = StreamFrame(sid, offset, bytes(length), fin)
    if rng.random() < 0.1:
        lone = rng.choice((True, False, None))
    return "received", (now, 4, pn, size, b"payload", lone)


def test_c_tap_does_what_the_pure_tap_does() -> None:
    rng = random.Random(9)
    seen = Counter[str]()
    for _ in range(300):
        calls = [_random_call(rng) for _ in range(rng.randrange(1, 40))]
        done = _tap_run(accelerated.QlogTap, calls)
        assert done == _tap_run(pure.QlogTap, calls)
        # the writer's C records: the same records, as equal tuples
        assert _tap_run(accelerated.QlogTap, calls, accelerated.BulkRecords) == done
        keyed = _tap_run(accelerated.QlogTap, calls, accelerated.BulkRecords, _InstanceKeys)
        assert keyed == _tap_run(pure.QlogTap, calls, list, _InstanceKeys) == done
        seen.update(kind for kind, _ in done)
        seen["recorded"] += sum(len(x) for kind, x in done if kind in ("flush", "bulk"))
    assert seen["sent_slow"] > 50 and seen["received_slow"] > 50 and seen["flush"] > 50
    assert seen["stream_slow"] > 50 and seen["burst_slow"] > 20 and seen["raised"] > 0
    assert seen["recorded"] > 1000


def test_c_tap_records_are_out_of_the_collectors_sight() -> None:
    """Its records hold only atomic values: untracked at once (no gen0 traversal each)."""
    import gc

    trace, keys, bulk = _Trace(), _Keys(), []  # type: ignore[var-annotated]
    tap = accelerated.QlogTap(
        trace, bulk, {0}, keys, lambda: None, 100, StreamFrame, print, print, print, print
    )
    tap.sent(1.5, 7, 1252, b"payload", [StreamRecord(0, 4096, 1200, False)])
    tap.received(1.75, 4, 9, 1252, b"payload", StreamFrame(0, 0, bytes(1200), False))
    tap.burst(2.0, 10, 0, 5296, None, [bytes(1252)], [1200])
    tap.stream_received(2.25, 11, 1252, b"payload", (0, 1200, memoryview(bytes(1200)), False, True))
    assert [r[:4] for r in bulk] == [
        (1.5, "quic:packet_sent", "1RTT", 7),
        (1.75, "quic:packet_received", "1RTT", 9),
        (2.0, "quic:packet_sent", "1RTT", 10),
        (2.25, "quic:packet_received", "1RTT", 11),
    ]
    assert not any(gc.is_tracked(r) for r in bulk)


def _odd_record(rng: random.Random, start: float) -> tuple[Any, ...]:
    """A record C keeps as its tuple: a value of another type or past int64."""
    rec = list(random_record(rng, start))
    i = rng.choice((0, 3, 4, 5, 6, 7, 8))
    rec[i] = {0: 12, 6: 0}.get(i, (1 << 63) + rng.randrange(9))
    if rng.random() < 0.2:
        rec[rng.choice((1, 2))] = None
    return tuple(rec)


def test_bulk_records_are_a_list_of_the_same_records() -> None:
    rng = random.Random(5)
    start = 1000.0
    for _ in range(40):
        recs = [
            _odd_record(rng, start) if rng.random() < 0.1 else random_record(rng, start)
            for _ in range(rng.randrange(0, 600))
        ]
        bulk = accelerated.BulkRecords()
        for rec in recs:
            bulk.append(rec)
        assert len(bulk) == len(recs) and list(bulk) == recs
        assert all(
            type(a) is type(b)
            for x, y in zip(bulk, recs, strict=True)
            for a, b in zip(x, y, strict=True)
        )
        if recs:
            assert bulk[-1] == recs[-1] and bulk[0] == recs[0]
        with pytest.raises(IndexError):
            bulk[len(recs)]
        lo = rng.randrange(len(recs) + 1)
        hi = rng.randrange(lo, len(recs) + 1)
        try:
            want: Any = PY(recs, start, lo, hi)
            C(recs, start, lo, hi)  # (C refuses what the list's render refuses)
        except (TypeError, OverflowError) as exc:
            want = type(exc)
        if isinstance(want, bytes):
            assert C(bulk, start, lo, hi) == want
        else:
            with pytest.raises(want):
                C(bulk, start, lo, hi)
        bulk.clear()
        assert len(bulk) == 0 and list(bulk) == [] and C(bulk, start, 0, 0) == b""
        bulk.append(recs[0] if recs else random_record(rng, start))
        assert len(bulk) == 1
    with pytest.raises(TypeError):
        accelerated.BulkRecords().append((1.0, "x"))
    with pytest.raises(IndexError):
        C(accelerated.BulkRecords(), 0.0, 0, 1)


def test_bulk_records_of_more_names_than_the_c_table_holds() -> None:
    """A plain record holds the index of its (name, packet_type) pair in a table of 32 kept
    for the process; past it records are kept as tuples, with the same text and values."""
    usual = (0.5, "quic:packet_sent", "1RTT", 0, 0, 0, False, 100, 140)
    accelerated.BulkRecords().append(usual)  # (the pair every transfer logs: in the table)
    recs = [
        (1.0 + i, f"quic:packet_{kind}_{i}", ptype, i, 0, i * 100, False, 100, 140)
        for i in range(40)
        for kind, ptype in (("sent", "1RTT"), ("received", "0RTT"))
    ]
    bulk = accelerated.BulkRecords()
    for rec in recs:
        bulk.append(rec)
    assert list(bulk) == recs
    assert C(bulk, 0.5, 0, len(recs)) == PY(recs, 0.5, 0, len(recs))
    # once the table is full, equal strs that are other objects use an entry of theirs
    again = accelerated.BulkRecords()
    copies = [
        (t, usual[1].encode().decode(), usual[2].encode().decode(), *usual[3:]) for t in (1.0, 2.0)
    ]
    for rec in copies:
        again.append(rec)
    assert list(again) == copies
    assert C(again, 0.5, 0, 2) == PY(copies, 0.5, 0, 2)
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        spool = accelerated.QlogSpool(fd)
        with pytest.raises(TypeError):  # (the spool takes no odd record: the writer renders)
            spool.submit(bulk, 0.5, [len(recs)], len(recs))
        spool.submit(again, 0.5, [2], 2)  # (plain records only: taken)
        spool.close()
        assert len(again) == 0 and spool.events_written == 2
    finally:
        os.close(fd)


def test_the_writer_keeps_bulk_records_in_c_and_falls_back_for_odd_ones() -> None:
    out = io.BytesIO()
    w = QlogWriter(out, b"\x01", True, start=0.0, close_stream=False)
    bulk: object = w.bulk
    assert type(bulk) is (accelerated.BulkRecords if native.ACCELERATED else list)
    w.stream_packet("quic:packet_sent", 0.5, "1RTT", 1, 1252, 0, 0, 1200, False)
    w.stream_packet("quic:packet_sent", 0.75, "1RTT", 1 << 64, 1252, 0, 0, 1200, True)
    w.close()
    events = [json.loads(r) for r in out.getvalue().split(b"\x1e")[2:]]
    assert [e["data"]["header"]["packet_number"] for e in events] == [1, 1 << 64]
    assert [e["time"] for e in events] == [500.0, 750.0]


def test_int_fields_at_the_int64_ends_and_digit_boundaries() -> None:
    edges = (0, 9, 10, 99, 100, -1, -9, -10, -(1 << 63), (1 << 63) - 1, 10**18 - 1, 10**18)
    rng = random.Random(3)
    recs = [
        (1.0, "quic:packet_sent", "1RTT", *rng.choices(edges, k=3), True, *rng.choices(edges, k=2))
        for _ in range(500)
    ]
    bulk = accelerated.BulkRecords()
    for rec in recs:
        bulk.append(rec)
    want = PY(recs, 0.5, 0, len(recs))
    assert C(recs, 0.5, 0, len(recs)) == want == C(bulk, 0.5, 0, len(recs))
    assert b'"packet_number":-9223372036854775808}' in want


def test_bulk_records_in_a_reference_cycle_are_collected() -> None:
    """An odd record may hold anything: the collector sees it (traverse) and breaks it."""
    import gc
    import weakref

    class Probe:
        bulk: Any = None

    probe = Probe()
    probe.bulk = accelerated.BulkRecords()
    probe.bulk.append((probe, "quic:packet_sent", "1RTT", 1, 0, 0, False, 1, 30))
    probe.bulk.append((1.0, "quic:packet_sent", "1RTT", 2, 0, 0, False, 1, 30))
    assert probe.bulk[0][0] is probe and len(probe.bulk) == 2
    gone = weakref.ref(probe)
    del probe
    gc.collect()
    assert gone() is None

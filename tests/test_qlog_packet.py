"""packet_record and acked_record: the C core's (py_qlog_packet.c), the pure twin's and
the trace's Python path (decode the payload, compact frames, the writer's render at
flush) give the same bytes for the packets they take, and decline (None) the others alike.

The trace logs non-bulk packets (ACK-only, ACK + STREAM...) with the C function when the
writer is its only sink; the Python path is the reference.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from typing import Any

import pytest

from quicish.native import accelerated, pure, pure_qlog
from quicish.proto.records import SentPacket
from quicish.proto.trace import _compact
from quicish.qlog.writer import QlogWriter
from quicish.wire import frames as F

C = accelerated.packet_record
PY = pure.packet_record
START = 1000.25
STREAMS = {0, 4, 8, 1 << 40}


def reference(
    now: float, name: str, ptype: str, pn: int, size: int, payload: bytes, exp: int
) -> bytes:
    """The record the writer writes from the trace's Python path."""
    out = io.BytesIO()
    writer = QlogWriter(out, b"\x01", True, start=START, close_stream=False)
    header = out.getvalue()
    frames = _compact(F.decode_frames(payload), exp)
    writer.packet(name, now, ptype, pn, size, frames)
    writer.close()
    return out.getvalue()[len(header) :]


def random_ack(rng: random.Random) -> F.AckFrame:
    largest = rng.randrange(1 << rng.choice((6, 14, 30, 50)))
    ranges = []
    stop = largest + 1
    for _ in range(rng.choice((1, 1, 2, 3, 5, 20))):
        if stop <= 0:
            break
        start = max(0, stop - 1 - rng.randrange(1 << rng.choice((0, 3, 10))))
        ranges.append((start, stop))
        stop = start - 2 - rng.randrange(1 << rng.choice((0, 4, 12)))
    delay = rng.choice((0, 1, 3, 100, 3125, 1 << 20, rng.randrange(1 << 40)))
    ecn = (
        (rng.randrange(1000), rng.randrange(1 << 20), rng.randrange(5))
        if rng.random() < 0.3
        else None
    )
    return F.AckFrame(ranges, delay, ecn)


def random_frame(rng: random.Random) -> Any:
    kind = rng.randrange(7)
    if kind == 0:
        return random_ack(rng)
    if kind == 1:
        return F.PaddingFrame(rng.randrange(1, 40))
    if kind == 2:
        return F.PingFrame()
    if kind == 3:
        return F.CryptoFrame(rng.randrange(1 << 20), bytes(rng.randrange(50)))
    if kind == 4:
        return F.HandshakeDoneFrame()
    sid = rng.choice(sorted(STREAMS))
    data = bytes(rng.randrange(1, 200))
    return F.StreamFrame(sid, rng.randrange(1 << rng.choice((6, 30, 50))), data, False, True)


def random_payload(rng: random.Random) -> bytes:
    frames = [random_frame(rng) for _ in range(rng.choice((1, 1, 2, 3, 6)))]
    # (a STREAM frame without its length runs to the payload's end: only as the last)
    if type(frames[-1]) is F.StreamFrame and rng.random() < 0.5:
        last = frames[-1]
        frames[-1] = F.StreamFrame(last.stream_id, last.offset, last.data, False, False)
    payload = F.encode_frames(frames)
    assert payload
    return payload


def test_the_same_bytes_as_the_python_path_on_random_packets() -> None:
    rng = random.Random(17)
    taken = 0
    for _ in range(3000):
        payload = random_payload(rng)
        now = START + rng.choice((rng.uniform(0, 100), -1.0, rng.randrange(10**6) / 1e6))
        name = rng.choice(("quic:packet_sent", "quic:packet_received"))
        ptype = rng.choice(("1RTT", "handshake", "initial"))
        pn, size = rng.randrange(1 << rng.choice((6, 30, 62))), rng.randrange(20, 1500)
        exp = rng.choice((0, 3, 8, 20))
        args = (START, now, name, ptype, pn, size, payload, exp, set(STREAMS))
        c, py = C(*args), PY(*args)
        assert c == py, payload.hex()
        delays = [f.delay for f in F.decode_frames(payload) if type(f) is F.AckFrame]
        delay = max(delays, default=0)
        if delay << exp < 1 << 53:
            assert c == reference(now, name, ptype, pn, size, payload, exp), payload.hex()
            taken += 1
        else:  # (the milliseconds of the delay are not exact: the Python path's)
            assert c is None
    assert taken > 2500


def test_a_transfer_ack_packet() -> None:
    payload = F.encode_frames([F.AckFrame([(900, 1001), (10, 890)], 1250, None)])
    got = C(START, START + 1.5, "quic:packet_received", "1RTT", 77, 45, payload, 3, set())
    assert got == (
        b'\x1e{"time":1500.000,"name":"quic:packet_received","data":{"header":'
        b'{"packet_type":"1RTT","packet_number":77},"frames":[{"frame_type":"ack",'
        b'"acked_ranges":[[900,1000],[10,889]],"ack_delay":10.0}],"raw":{"length":45}}}\n'
    )
    record = json.loads(got[1:])
    assert record["data"]["frames"][0]["acked_ranges"] == [[900, 1000], [10, 889]]


@pytest.mark.parametrize(
    "frames",
    [
        [F.StreamFrame(0, 0, b"x", True, True)],  # FIN: the trace logs the stream's state
        [F.StreamFrame(12, 0, b"x", False, True)],  # a stream not logged as open
        [F.AckFrame([(0, 5)], 1, None), F.MaxDataFrame(10)],  # another frame type
        [F.NewConnectionIdFrame(1, 0, b"\x01" * 8, b"\x02" * 16)],
        [F.AckFrame([(0, 5)], 1 << 50, None)],  # ms of the delay not exact (exponent 3)
    ],
)
def test_declined_packets_go_to_the_python_path(frames: list[Any]) -> None:
    payload = F.encode_frames(frames)
    args = (START, START + 1.0, "quic:packet_sent", "1RTT", 1, 100, payload, 3, {0})
    assert C(*args) is None
    assert PY(*args) is None


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x02\x05",  # truncated ACK
        b"\x02\x05\x00\x00\x06",  # first range below zero
        b"\x02\x05\x00\x01\x00\x04\x00",  # a gap below zero
        b"\x06\x00\x05ab",  # CRYPTO data past the end
        b"\x0a\x00\x05ab",  # STREAM data past the end
        b"\x40\x01",  # a type in the long form
        b"\x01\x1f",  # an unknown type after a PING
    ],
)
def test_malformed_payloads_are_declined(payload: bytes) -> None:
    args = (START, START, "quic:packet_received", "1RTT", 1, 100, payload, 3, {0})
    assert C(*args) is None
    assert PY(*args) is None


@pytest.mark.parametrize(
    "change",
    [
        {2: "packet_sent"},  # no namespace: the writer adds it
        {2: 'quic:"x'},
        {3: "1RTT\n"},
        {4: -1},
        {4: 1 << 62},
        {4: True},
        {5: 2.0},
        {0: 1},
        {1: None},
        {7: 21},
        {7: -1},
        {8: [0]},
        {8: frozenset({0})},
    ],
)
def test_odd_arguments_are_declined(change: dict[int, Any]) -> None:
    args: list[Any] = [START, START, "quic:packet_sent", "1RTT", 1, 100, b"\x01", 3, {0}]
    for i, v in change.items():
        args[i] = v
    assert C(*args) is None
    assert PY(*args) is None


def test_the_payload_may_be_any_buffer() -> None:
    payload = F.encode_frames([F.PingFrame(), F.PaddingFrame(30)])
    args: list[Any] = [
        START,
        START + 2.0,
        "quic:packet_sent",
        "initial",
        0,
        1200,
        payload,
        3,
        set(),
    ]
    want = C(*args)
    assert want is not None and b'"payload_length":30' in want
    for view in (memoryview(payload), bytearray(payload), memoryview(b"zz" + payload)[2:]):
        args[6] = view
        assert C(*args) == want
        assert PY(*args) == want
    with pytest.raises(TypeError):
        C(START, START, "quic:packet_sent", "1RTT", 1, 1, 5, 3, set())


def acked_reference(now: float, space: str, numbers: list[int]) -> bytes:
    """What the writer writes for the trace's packets_acked event on the Python path."""
    out = io.BytesIO()
    writer = QlogWriter(out, b"\x01", True, start=START, close_stream=False)
    header = out.getvalue()
    data = {"packet_number_space": space, "packet_numbers": numbers}
    writer.event("quic:packets_acked", data, now)
    writer.close()
    return out.getvalue()[len(header) :]


def sent(pn: int) -> SentPacket:
    return SentPacket(pn, 0.5, 1200, True, True, 2)


def test_acked_record_the_same_bytes_as_the_python_path() -> None:
    rng = random.Random(5)
    for _ in range(300):
        numbers = sorted(rng.sample(range(1 << rng.choice((9, 30, 61))), rng.randrange(1, 300)))
        now = START + rng.choice((rng.uniform(0, 1e5), -2.0))
        space = rng.choice(("initial", "handshake", "application_data"))
        acked = [sent(pn) for pn in numbers]
        c = accelerated.acked_record(START, now, "quic:packets_acked", space, acked)
        assert c == pure.acked_record(START, now, "quic:packets_acked", space, acked)
        assert c == acked_reference(now, space, numbers)


class OtherPacket:  # (pn by another class: read by name, not from SentPacket's slot)
    def __init__(self, pn: object) -> None:
        self.pn = pn


@pytest.mark.parametrize(
    "acked",
    [[sent(1), OtherPacket(-1)], [OtherPacket(1 << 62)], [OtherPacket("1")], [OtherPacket(True)]],
)
def test_acked_record_declines_odd_numbers(acked: list[Any]) -> None:
    args = (START, START, "quic:packets_acked", "initial", acked)
    assert accelerated.acked_record(*args) is None
    assert pure.acked_record(*args) is None


def test_acked_record_other_classes_and_odd_arguments() -> None:
    mixed = [sent(3), OtherPacket(4), sent(9)]
    want = accelerated.acked_record(START, START + 1.0, "quic:packets_acked", "initial", mixed)
    assert want is not None and want.endswith(b'"packet_numbers":[3,4,9]}}\n')
    assert pure.acked_record(START, START + 1.0, "quic:packets_acked", "initial", mixed) == want
    for args in (
        (START, START, "packets_acked", "initial", mixed),
        (START, START, "quic:packets_acked", 'in"itial', mixed),
        (START, START, "quic:packets_acked", "initial", tuple(mixed)),
        (1, START, "quic:packets_acked", "initial", mixed),
    ):
        assert accelerated.acked_record(*args) is None
        assert pure.acked_record(*args) is None
    with pytest.raises(AttributeError):
        accelerated.acked_record(START, START, "quic:packets_acked", "initial", [object()])


# ---- metrics_record ------------------------------------------------------------------------

METRICS_NAME = "quic:recovery_metrics_updated"


def _random_value(rng: random.Random, key: str) -> Any:
    kind = rng.randrange(60)
    if kind < 8:  # the engine's: RTTs and cwnd floats, counts ints
        return rng.choice((0.001, 0.0253, 0.333, 1e-7, 12000.0, 45678.5))
    if kind < 59:
        return rng.choice((0, 1, 1200, 14720, 1 << 40))
    return rng.choice(
        (None, float("inf"), float("nan"), -3.5, 1e300, 1 << 70, -(1 << 61), True, "x", 2.0**63)
    )


def _random_metrics(rng: random.Random) -> dict[str, Any]:
    keys = (*pure_qlog._RTT_METRICS, *pure_qlog._COUNT_METRICS, "pacing_rate")
    return {k: _random_value(rng, k) for k in keys if rng.random() < 0.8}


def _typed(last: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    return {k: (type(v), v) for k, v in last.items()}


def test_metrics_keys_are_the_schemas() -> None:
    from quicish.qlog.schema import COUNT_METRICS, RTT_METRICS

    assert pure_qlog._RTT_METRICS == RTT_METRICS
    assert pure_qlog._COUNT_METRICS == COUNT_METRICS


def test_metrics_record_the_same_bytes_as_the_python_path() -> None:
    """C and twin agree on every call (bytes, None or TypeError, and ``last``); what they
    write is what the writer's Python rendering writes (render_metrics_delta)."""
    from quicish.qlog.render import render_metrics_delta

    rng = random.Random(11)
    seen = {"record": 0, "none": 0, "declined": 0}
    for _ in range(300):
        lasts: list[dict[str, Any]] = [{}, {}, {}]
        now = START - 0.5
        metrics: dict[str, Any] = {}
        for _ in range(rng.randrange(1, 10)):
            now += rng.choice((0.0, 0.0004, 0.0125, 1.5))
            if not metrics or rng.random() < 0.7:  # (else the same again: nothing changed)
                metrics = _random_metrics(rng)
            outs: list[Any] = []
            for fn, last in (
                (accelerated.metrics_record, lasts[0]),
                (pure.metrics_record, lasts[1]),
            ):
                try:
                    outs.append(fn(START, now, METRICS_NAME, metrics, last))
                except TypeError:
                    outs.append(TypeError)
            assert outs[0] == outs[1]
            assert _typed(lasts[0]) == _typed(lasts[1])
            if outs[0] is TypeError:  # the writer's Python path, for all three
                seen["declined"] += 1
                for last in lasts:
                    with contextlib.suppress(TypeError, ValueError, OverflowError):
                        render_metrics_delta(metrics, last)
                continue
            delta = render_metrics_delta(metrics, lasts[2])
            assert _typed(lasts[2]) == _typed(lasts[0])
            if delta is None:
                seen["none"] += 1
                assert outs[0] is None
                continue
            seen["record"] += 1
            ms = max((now - START) * 1000.0, 0.0)
            expected = f'\x1e{{"time":{ms:.3f},"name":"{METRICS_NAME}","data":{delta}}}\n'
            assert outs[0] == expected.encode()
            json.loads(outs[0][1:])
    assert min(seen.values()) > 50, seen


@pytest.mark.parametrize(
    "change",
    [{0: 1}, {1: None}, {2: "recovery_metrics_updated"}, {2: "quic:a b"}, {3: []}, {4: None}],
)
def test_metrics_record_odd_arguments_raise(change: dict[int, Any]) -> None:
    args: list[Any] = [START, START + 1.0, METRICS_NAME, {"min_rtt": 0.01}, {}]
    for i, v in change.items():
        args[i] = v
    for fn in (accelerated.metrics_record, pure.metrics_record):
        with pytest.raises(TypeError):
            fn(*args)
        assert args[4] in ({}, None)


def test_writer_metrics_as_before() -> None:
    """The writer renders metrics at once (C) as it rendered them at flush: a sequence of
    metrics events gives the same text with the C function and with values it declines
    (a subclass of float: the Python path)."""

    class Odd(float):
        pass

    def run(odd: bool) -> bytes:
        out = io.BytesIO()
        writer = QlogWriter(out, b"\x01", True, start=START, close_stream=False)
        for i in range(40):
            rtt = 0.01 + (i % 7) * 0.001
            m = {"smoothed_rtt": Odd(rtt) if odd else rtt, "congestion_window": 12000 + i // 3}
            m["pacing_rate"] = 1.5e6
            writer.metrics(START + i / 100, m)
        writer.close()
        return out.getvalue().split(b"\x1e", 2)[2]  # (after the header: its wall clock)

    plain, odd = run(False), run(True)
    assert plain == odd and plain.count(b"\x1e") == 40 - 1

"""Flow control: SendCredit, ReceiveWindow, and blocking/unblocking between two managers."""

from __future__ import annotations

import random

import pytest
from proto_stream_pair import Pair, Side, frames_of

from quicish.errors import ErrorCode, ProtocolError
from quicish.proto.flow import ReceiveWindow, SendCredit
from quicish.wire import frames as F


# ---- SendCredit ------------------------------------------------------------------------------
def test_send_credit_consumes_and_only_rises() -> None:
    c = SendCredit(1000)
    c.consume(400)
    assert c.available == 600
    assert not c.on_max_data(900)
    assert c.limit == 1000
    assert c.on_max_data(2000)
    assert c.available == 1600


def test_data_blocked_once_per_limit_and_only_when_wanted() -> None:
    c = SendCredit(100)
    c.note_blocked()  # credit left: not blocked
    assert c.blocked_at is None
    c.consume(100)
    assert c.blocked_at is None  # nobody wanted more
    c.note_blocked()
    assert c.blocked_at == 100
    c.on_blocked_sent(100)
    assert c.blocked_at is None
    c.on_blocked_lost(100)
    assert c.blocked_at == 100
    c.on_blocked_sent(100)
    c.on_max_data(200)
    c.on_blocked_lost(100)  # stale: no longer blocked at 100
    assert c.blocked_at is None
    c.consume(100)
    c.note_blocked()
    assert c.blocked_at == 200


# ---- ReceiveWindow ---------------------------------------------------------------------------
def test_receive_window_flow_control_error() -> None:
    w = ReceiveWindow(1000)
    w.on_data(600)
    w.on_data(400)
    with pytest.raises(ProtocolError) as exc:
        w.on_data(1)
    assert exc.value.code == ErrorCode.FLOW_CONTROL_ERROR


def test_receive_window_update_due_after_half() -> None:
    w = ReceiveWindow(1000)
    w.on_data(1000)
    w.on_consumed(500)
    assert not w.update_due and w.update(1.0, 0.1) is None
    w.on_consumed(1)
    assert w.update_due
    assert w.update(1.0, 0.1) == 1501
    assert not w.update_due
    w.on_update_lost(1501)
    assert w.update(1.0, 0.1) == 1501
    w.on_update_lost(1000)
    assert w.update(1.0, 0.1) is None


@pytest.mark.parametrize(
    ("interval", "rtt", "expected"),
    [(0.05, 0.05, 8000), (0.5, 0.05, 1000), (0.001, 0.0, 1000)],
)
def test_receive_window_growth(interval: float, rtt: float, expected: int) -> None:
    w = ReceiveWindow(1000, max_window=8000)
    now = 0.0
    for _ in range(10):
        w.on_data(w.limit - w.received)
        w.on_consumed(w.received - w.consumed)
        now += interval
        assert w.update(now, rtt) == w.consumed + w.window
    assert w.window == expected
    assert w.limit == w.consumed + expected


# ---- end to end: two managers ------------------------------------------------------------------
def test_stream_flow_control_blocks_and_unblocks() -> None:
    pair = Pair(server_side=Side(max_stream_data=1000))
    data = random.Random(1).randbytes(10_000)
    sid = pair.client.open_stream()
    pair.client.write(sid, data, fin=True)
    pair.run()  # the server does not read: the client stops at the stream limit
    recv = pair.server.get_recv(sid)
    assert recv.highest_offset == 1000
    assert pair.client.get_send(sid).blocked_at is None  # reported already
    blocked = frames_of(pair, F.StreamDataBlockedFrame)
    assert [(f.stream_id, f.limit) for f in blocked] == [(sid, 1000)]
    got = b""
    for _ in range(1000):
        got += pair.server.read(sid)
        pair.step()
        if recv.is_finished:
            break
    assert got == data
    updates = [f.maximum for f in frames_of(pair, F.MaxStreamDataFrame)]
    assert updates and updates == sorted(updates)


def test_connection_flow_control_blocks_and_unblocks() -> None:
    pair = Pair(server_side=Side(max_data=3000, max_stream_data=100_000))
    payloads = {}
    for i in range(2):
        sid = pair.client.open_stream()
        payloads[sid] = random.Random(i).randbytes(5000)
        pair.client.write(sid, payloads[sid], fin=True)
    pair.run()
    received = sum(pair.server.get_recv(sid).highest_offset for sid in payloads)
    assert received == 3000
    assert pair.client.send_credit.available == 0
    assert [f.limit for f in frames_of(pair, F.DataBlockedFrame)] == [3000]
    got = dict.fromkeys(payloads, b"")
    for _ in range(1000):
        for sid in payloads:
            if sid in pair.server:
                got[sid] += pair.server.read(sid)
        if not pair.step() and all(len(got[s]) == 5000 for s in payloads):
            break
    assert got == payloads
    assert [f.maximum for f in frames_of(pair, F.MaxDataFrame)]  # credit was raised


def test_peer_exceeding_connection_limit_is_flow_control_error() -> None:
    pair = Pair(server_side=Side(max_data=1500, max_stream_data=1000))
    server = pair.server
    server.on_stream_frame(0, 0, bytes(1000), False)
    with pytest.raises(ProtocolError) as exc:
        server.on_stream_frame(4, 0, bytes(501), False)  # within its stream limit
    assert exc.value.code == ErrorCode.FLOW_CONTROL_ERROR


def test_peer_exceeding_stream_limit_is_flow_control_error() -> None:
    pair = Pair(server_side=Side(max_stream_data=1000))
    with pytest.raises(ProtocolError) as exc:
        pair.server.on_stream_frame(0, 500, bytes(501), False)
    assert exc.value.code == ErrorCode.FLOW_CONTROL_ERROR


def test_reset_counts_final_size_against_connection_window() -> None:
    pair = Pair(server_side=Side(max_data=2000, max_stream_data=1500))
    server = pair.server
    server.on_stream_frame(0, 0, bytes(100), False)
    assert server.on_reset_stream(0, 3, 1500)
    assert server.recv_window.received == 1500
    assert server.recv_window.consumed == 1500  # unread bytes released
    with pytest.raises(ProtocolError) as exc:
        server.on_reset_stream(4, 3, 501)
    assert exc.value.code == ErrorCode.FLOW_CONTROL_ERROR


def test_final_size_error_via_reset_stream() -> None:
    pair = Pair()
    server = pair.server
    server.on_stream_frame(0, 0, bytes(700), False)
    with pytest.raises(ProtocolError) as exc:
        server.on_reset_stream(0, 3, 600)
    assert exc.value.code == ErrorCode.FINAL_SIZE_ERROR


def test_windows_grow_for_a_fast_reader() -> None:
    pair = Pair(
        server_side=Side(
            max_data=16_000,
            max_data_limit=256_000,
            max_stream_data=16_000,
            max_stream_data_limit=128_000,
        ),
        room=1200,
        tick=0.001,
        rtt=0.05,
    )
    data = random.Random(3).randbytes(1_500_000)
    sid = pair.client.open_stream()
    pair.client.write(sid, data, fin=True)
    got = bytearray()
    pair.step()
    recv = pair.server.get_recv(sid)
    for _ in range(100_000):
        pair.step()
        got += pair.server.read(sid)
        if recv.is_finished:
            break
    assert bytes(got) == data
    assert recv.window.window == 128_000
    assert pair.server.recv_window.window == 256_000


def test_windows_stay_small_for_a_slow_reader() -> None:
    pair = Pair(
        server_side=Side(max_stream_data=16_000, max_stream_data_limit=128_000),
        tick=0.2,  # every packet takes four round trips: the reader is the bottleneck
        rtt=0.05,
    )
    data = bytes(200_000)
    sid = pair.client.open_stream()
    pair.client.write(sid, data, fin=True)
    pair.step()
    recv = pair.server.get_recv(sid)
    total = 0
    for _ in range(10_000):
        pair.step()
        total += len(pair.server.read(sid, 3000))
        if recv.is_finished:
            break
    assert total == len(data)
    assert recv.window.window == 16_000

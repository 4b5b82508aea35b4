"""StreamManager: ids, limits, implicit opening, errors, scheduling, cleanup."""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from typing import Any

import pytest
from proto_stream_pair import Pair, Side, frames_of, record_table

from quicish.errors import ErrorCode, ProtocolError, StreamError
from quicish.proto import stream_ids as ids
from quicish.proto.records import (
    MaxStreamDataRecord,
    Record,
    ResetStreamRecord,
    StreamRecord,
)
from quicish.proto.stream_manager import (
    StreamLimitReached,
    StreamLimits,
    StreamManager,
)
from quicish.wire import frames as F
from quicish.wire.buffer import Buffer

PEER = StreamLimits(1 << 30, 1 << 20, 1 << 20, 1 << 20, 10, 10)


def manager(is_client: bool = True, peer: StreamLimits | None = PEER, **kw: Any) -> StreamManager:
    return StreamManager(is_client, peer=peer, **kw)


# ---- stream ids ------------------------------------------------------------------------------
def test_stream_id_helpers() -> None:
    assert [ids.make_stream_id(i, True, True) for i in range(3)] == [0, 4, 8]
    assert [ids.make_stream_id(i, False, True) for i in range(3)] == [1, 5, 9]
    assert [ids.make_stream_id(i, True, False) for i in range(3)] == [2, 6, 10]
    assert [ids.make_stream_id(i, False, False) for i in range(3)] == [3, 7, 11]
    assert ids.is_bidirectional(5) and not ids.is_bidirectional(6)
    assert ids.is_client_initiated(6) and not ids.is_client_initiated(7)
    assert ids.is_local(2, True) and not ids.is_local(2, False) and ids.is_local(3, False)
    assert ids.stream_index(11) == 2
    # client uni (2): client sends, server receives; server uni (3): the reverse.
    assert ids.can_send(2, True) and not ids.can_receive(2, True)
    assert not ids.can_send(2, False) and ids.can_receive(2, False)
    assert ids.can_send(3, False) and ids.can_receive(3, True) and not ids.can_send(3, True)
    assert all(ids.can_send(s, c) and ids.can_receive(s, c) for s in (0, 1) for c in (True, False))


def test_open_stream_ids_and_halves() -> None:
    c = manager(True)
    assert [c.open_stream(True) for _ in range(3)] == [0, 4, 8]
    assert [c.open_stream(False) for _ in range(2)] == [2, 6]
    s = manager(False)
    assert s.open_stream(True) == 1 and s.open_stream(False) == 3
    uni = c.get(2)
    assert uni is not None and uni.send is not None and uni.recv is None
    bidi = c.get(0)
    assert bidi is not None and bidi.send is not None and bidi.recv is not None
    assert bidi.send.max_stream_data == 1 << 20
    with pytest.raises(StreamError):
        c.get_recv(2)
    with pytest.raises(StreamError):
        c.get_send(12)


# ---- stream limits ---------------------------------------------------------------------------
def test_open_stream_honours_peer_limit_and_streams_blocked() -> None:
    c = manager(True, peer=StreamLimits(1000, 100, 100, 100, 2, 0))
    c.open_stream()
    c.open_stream()
    assert c.streams_blocked(True) is None  # nobody tried yet
    with pytest.raises(StreamLimitReached) as exc:
        c.open_stream()
    assert isinstance(exc.value, StreamError) and exc.value.limit == 2 and exc.value.bidi
    with pytest.raises(StreamLimitReached):
        c.open_stream(False)
    assert c.streams_blocked(True) == 2
    assert c.streams_blocked(True) is None  # once per limit
    c.on_streams_blocked_lost(True, 2)
    assert c.streams_blocked(True) == 2
    assert c.streams_blocked(False) == 0
    assert not c.on_max_streams(True, 1)  # only raises
    assert c.on_max_streams(True, 3)
    assert c.streams_available(True) == 1
    assert c.open_stream() == 8
    with pytest.raises(ProtocolError) as perr:
        c.on_max_streams(True, (1 << 60) + 1)
    assert perr.value.code == ErrorCode.FRAME_ENCODING_ERROR


def test_peer_streams_open_implicitly() -> None:
    s = manager(False, local_max_streams_bidi=10)
    stream = s.on_stream_frame(8, 0, b"hi", False)  # client bidi index 2
    assert stream is not None and stream.stream_id == 8
    assert 0 in s and 4 in s and 8 in s
    assert s.get_recv(0).readable == 0 and s.get_recv(8).readable == 2
    # A lower stream arriving later finds the implicitly opened one.
    assert s.on_stream_frame(4, 0, b"x", True) is s.get(4)


def test_stream_limit_error() -> None:
    s = manager(False, local_max_streams_bidi=3, local_max_streams_uni=1)
    s.on_stream_frame(8, 0, b"", False)  # index 2: allowed
    with pytest.raises(ProtocolError) as exc:
        s.on_stream_frame(12, 0, b"", False)  # index 3
    assert exc.value.code == ErrorCode.STREAM_LIMIT_ERROR
    s.on_stream_frame(2, 0, b"", False)  # client uni index 0
    with pytest.raises(ProtocolError) as exc:
        s.on_stream_frame(6, 0, b"", False)
    assert exc.value.code == ErrorCode.STREAM_LIMIT_ERROR


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("on_stream_frame", (2, 0, b"x", False)),  # STREAM on our send-only uni stream
        ("on_reset_stream", (2, 1, 0)),  # RESET_STREAM on our send-only uni stream
        ("on_stream_data_blocked", (2, 0)),
        ("on_max_stream_data", (3, 100)),  # MAX_STREAM_DATA on the peer's uni stream
        ("on_stop_sending", (3, 1)),  # STOP_SENDING on the peer's uni stream
        ("on_stream_frame", (4, 0, b"x", False)),  # our bidi stream, never opened
        ("on_max_stream_data", (6, 100)),  # our uni stream, never opened
    ],
)
def test_stream_state_errors(call: str, args: tuple[Any, ...]) -> None:
    c = manager(True)
    c.open_stream(True)  # 0
    c.open_stream(False)  # 2
    with pytest.raises(ProtocolError) as exc:
        getattr(c, call)(*args)
    assert exc.value.code == ErrorCode.STREAM_STATE_ERROR


def test_frames_for_forgotten_streams_are_ignored() -> None:
    pair = Pair()
    sid = pair.client.open_stream()
    pair.client.write(sid, b"ping", fin=True)
    pair.run()
    assert pair.server.read(sid) == b"ping"
    pair.server.write(sid, b"pong", fin=True)
    pair.run()
    assert pair.client.read(sid) == b"pong"
    pair.run()
    assert sid not in pair.client and sid not in pair.server
    assert pair.server.on_stream_frame(sid, 0, b"ping", True) is None  # late duplicate
    assert not pair.server.on_reset_stream(sid, 1, 4)
    assert pair.client.on_stream_frame(sid, 0, b"pong", True) is None
    assert not pair.client.on_stop_sending(sid, 1)
    pair.client.on_max_stream_data(sid, 10_000)


def test_max_streams_raised_as_peer_streams_close() -> None:
    pair = Pair(server_side=Side(max_streams_bidi=2, max_streams_uni=1))
    client, server = pair.client, pair.server
    opened: list[int] = []
    for _ in range(6):
        while True:
            try:
                sid = client.open_stream()
                break
            except StreamLimitReached:
                assert pair.step(), "stuck at the stream limit"
        opened.append(sid)
        client.write(sid, b"req", fin=True)
        pair.run()
        assert server.read(sid) == b"req"
        server.write(sid, b"resp", fin=True)
        pair.run()
        assert client.read(sid) == b"resp"
        pair.run()
    assert opened == [0, 4, 8, 12, 16, 20]
    limits = [f.limit for f in frames_of(pair, F.MaxStreamsFrame) if f.bidi]
    assert limits == [3, 4, 5, 6, 7, 8]
    assert len(client) == 0 and len(server) == 0
    assert server.local_max_streams == (8, 1)


def test_max_streams_resent_when_lost() -> None:
    s = manager(False, local_max_streams_bidi=1)
    s.on_stream_frame(0, 0, b"a", True)
    assert s.read(0) == b"a"
    s.write(0, b"b", fin=True)
    buf = Buffer()
    records: list[tuple[Any, ...]] = []
    s.write_stream_frames(buf, 1200, records)
    record_table(s).on_acked(records)
    assert len(s) == 0
    assert s.max_streams_update(True) == 2
    assert s.max_streams_update(True) is None
    s.on_max_streams_lost(True)
    assert s.max_streams_update(True) == 2
    s.on_max_streams_lost(True, 1)  # stale value
    assert s.max_streams_update(True) is None


# ---- scheduling ------------------------------------------------------------------------------
def serve(m: StreamManager, packets: int, room: int = 1200) -> list[list[StreamRecord]]:
    """Build ``packets`` packets; return their records (STREAM frames only)."""
    out = []
    for _ in range(packets):
        buf = Buffer()
        records: list[Record] = []
        m.write_stream_frames(buf, room, records)
        assert buf.written <= room
        stream_records = [rec for rec in records if isinstance(rec, StreamRecord)]
        assert stream_records == records
        out.append(stream_records)
    return out


def test_round_robin_is_fair_within_one_frame() -> None:
    m = manager()
    sids = [m.open_stream() for _ in range(4)]
    for sid in sids:
        m.write(sid, bytes(200_000))
    served: Counter[int] = Counter()
    order = []
    for records in serve(m, 101):
        assert len(records) == 1  # big writes: one frame fills a packet
        served[records[0].stream_id] += records[0].length
        order.append(records[0].stream_id)
    assert order[:8] == sids + sids
    assert max(served.values()) - min(served.values()) <= 1200
    # Unequal demand: streams that finish leave the rotation, the rest share.
    m2 = manager()
    a, b, c = (m2.open_stream() for _ in range(3))
    m2.write(a, bytes(3000), fin=True)
    m2.write(b, bytes(100_000))
    m2.write(c, bytes(100_000))
    counts: Counter[int] = Counter()
    for records in serve(m2, 60):
        for rec in records:
            counts[rec.stream_id] += rec.length
    assert counts[a] == 3000
    assert abs(counts[b] - counts[c]) <= 1200


def test_small_frames_share_a_packet_and_rotation_continues() -> None:
    m = manager()
    sids = [m.open_stream() for _ in range(5)]
    for sid in sids:
        m.write(sid, b"x" * 300, fin=True)
    packets = [
        [(rec.stream_id, rec.length) for rec in records] for records in serve(m, 3, room=1000)
    ]
    assert packets[2] == []
    assert len(packets[0]) == 4  # three whole frames, then a piece of the fourth stream
    flat = [sid for p in packets for sid, _ in p]
    collapsed = [sid for i, sid in enumerate(flat) if i == 0 or flat[i - 1] != sid]
    # Each stream in turn; the one split across packets counts as served and goes last.
    assert collapsed == [*sids, sids[3]]
    assert all(
        sum(n for s, n in flat_p if s == sid) == 300
        for sid in sids
        for flat_p in [[x for p in packets for x in p]]
    )


def test_priority_lower_value_first_round_robin_within() -> None:
    m = manager()
    low = m.open_stream(priority=5)
    hi1 = m.open_stream(priority=-1)
    hi2 = m.open_stream(priority=-1)
    for sid in (low, hi1, hi2):
        m.write(sid, bytes(5000), fin=True)
    flat = [(rec.stream_id, rec.length) for records in serve(m, 14) for rec in records]
    first_low = [sid for sid, _ in flat].index(low)
    before: Counter[int] = Counter()
    for sid, n in flat[:first_low]:
        before[sid] += n
    assert before == Counter({hi1: 5000, hi2: 5000})  # all urgent data first
    assert [sid for sid, _ in flat[:4]] == [hi1, hi2, hi1, hi2]  # round robin among equals
    assert sum(n for sid, n in flat if sid == low) == 5000


def test_set_priority_moves_a_queued_stream() -> None:
    m = manager()
    a = m.open_stream()
    b = m.open_stream()
    m.write(a, bytes(10_000))
    m.write(b, bytes(10_000))
    m.set_priority(b, -1)
    order = [records[0].stream_id for records in serve(m, 4)]
    assert order == [b, b, b, b]


def test_credit_waiters_resume_on_max_data() -> None:
    m = manager(peer=StreamLimits(2000, 1 << 20, 1 << 20, 1 << 20, 10, 10))
    a, b = m.open_stream(), m.open_stream()
    m.write(a, bytes(5000))
    m.write(b, bytes(5000))
    sent = sum(rec.length for records in serve(m, 5) for rec in records)
    assert sent == 2000
    assert m.send_credit.blocked_at == 2000
    assert m.on_max_data(6000)
    sent = sum(rec.length for records in serve(m, 10) for rec in records)
    assert sent == 4000
    assert m.get_send(a).send_offset + m.get_send(b).send_offset == 6000


def test_has_pending_frames_tracks_work() -> None:
    m = manager(peer=StreamLimits(1000, 1 << 20, 1 << 20, 1 << 20, 10, 10))
    assert not m.has_pending_frames()
    sid = m.open_stream()
    m.write(sid, bytes(1500))
    assert m.has_pending_frames()
    serve(m, 3)
    buf = Buffer()
    records: list[tuple[Any, ...]] = []
    assert m.write_control_frames(buf, 1200, records)  # DATA_BLOCKED
    assert not m.has_pending_frames()  # blocked on credit, reported
    m.on_max_data(5000)
    assert m.has_pending_frames()


# ---- control frames and their records --------------------------------------------------------
def test_control_frames_and_loss_records() -> None:
    c = manager(True)
    a = c.open_stream()
    b = c.open_stream()
    c.write(a, bytes(100))
    serve(c, 1)
    c.reset_stream(a, 11)
    c.on_stream_frame(b, 0, bytes(10), False)
    c.stop_sending(b, 22)
    buf = Buffer()
    records: list[tuple[Any, ...]] = []
    assert c.write_control_frames(buf, 1200, records)
    frames = F.decode_frames(buf.data())
    assert F.ResetStreamFrame(a, 11, 100) in frames
    assert F.StopSendingFrame(b, 22) in frames
    assert sorted(type(r).__name__ for r in records) == ["ResetStreamRecord", "StopSendingRecord"]
    # Nothing more until something is lost.
    buf2: Buffer = Buffer()
    assert not c.write_control_frames(buf2, 1200, [])
    record_table(c).on_lost(records)
    buf3 = Buffer()
    records3: list[tuple[Any, ...]] = []
    assert c.write_control_frames(buf3, 1200, records3)
    assert F.decode_frames(buf3.data()) == frames
    record_table(c).on_acked([ResetStreamRecord(a)])
    assert c.get_send(a).is_done


def test_max_stream_data_frames_from_reads() -> None:
    s = manager(False, local_max_stream_data=1000)
    s.on_stream_frame(0, 0, bytes(1000), False)
    buf = Buffer()
    records: list[tuple[Any, ...]] = []
    assert not s.write_control_frames(buf, 1200, records, 0.0, 0.1)
    s.read(0, 600)
    assert s.write_control_frames(buf, 1200, records, 0.0, 0.1)
    assert F.decode_frames(buf.data()) == [F.MaxStreamDataFrame(0, 1600)]
    assert records == [MaxStreamDataRecord(0, 1600)]
    record_table(s).on_lost([records[0]])
    buf2 = Buffer()
    records2: list[tuple[Any, ...]] = []
    assert s.write_control_frames(buf2, 1200, records2, 0.0, 0.1)
    assert F.decode_frames(buf2.data()) == [F.MaxStreamDataFrame(0, 1600)]


def test_stop_sending_from_peer_resets_our_half() -> None:
    pair = Pair()
    sid = pair.client.open_stream()
    pair.client.write(sid, bytes(50_000))
    pair.step()
    assert pair.server.stop_sending(sid, 77)
    pair.run()
    send = pair.client.get_send(sid) if sid in pair.client else None
    resets = frames_of(pair, F.ResetStreamFrame)
    assert len(resets) == 1 and resets[0].error_code == 77
    assert resets[0].final_size >= 1000
    assert send is None or send.is_done
    # The server's receiving half is done; its sending half is still open.
    assert pair.server.get_recv(sid).is_done
    # Connection-level: every byte the client sent is accounted as consumed at the server.
    window = pair.server.recv_window
    assert window.received == window.consumed == resets[0].final_size


# ---- many streams, cleanup -------------------------------------------------------------------
def test_thousand_concurrent_streams_with_loss_all_delivered_and_forgotten() -> None:
    side = Side(max_streams_bidi=1000, max_data=1 << 22, max_stream_data=4096)
    pair = Pair(client_side=side, server_side=side, loss=0.1, seed=7)
    client, server = pair.client, pair.server
    rng = random.Random(5)
    payloads: dict[int, bytes] = {}
    for _ in range(1000):
        sid = client.open_stream()
        payloads[sid] = rng.randbytes(rng.randint(0, 3000))
        client.write(sid, payloads[sid], fin=True)
    got: dict[int, bytearray] = {sid: bytearray() for sid in payloads}
    for _ in range(20_000):
        pair.step()
        for frame in pair.sent_frames:  # an application reacting to data events
            if not isinstance(frame, F.StreamFrame):
                continue
            sid = frame.stream_id
            if sid in server and server.consume_readable(sid):
                got[sid] += server.read(sid)
                if server.get_recv(sid).is_finished:
                    server.write(sid, b"", fin=True)
            if sid in client and client.consume_readable(sid):
                assert client.read(sid) == b""
        pair.sent_frames.clear()
        if len(client) == 0 and len(server) == 0:
            break
    assert {sid: bytes(v) for sid, v in got.items()} == payloads
    assert len(client) == 0 and len(server) == 0
    pair.run()  # the last MAX_STREAMS
    for m in (client, server):
        assert not m.has_pending_frames()  # also prunes stale scheduler entries
        assert not m._control and not m._credit_waiters
        assert sum(len(q) for q in m._queues.values()) == 0
    assert server.local_max_streams[0] == 2000  # raised as streams closed


def test_stream_records_dispatch() -> None:
    m = manager()
    sid = m.open_stream()
    m.write(sid, b"abc", fin=True)
    (records,) = serve(m, 1)
    assert records == [StreamRecord(sid, 0, 3, True)]
    record_table(m).on_lost([records[0]])
    (again,) = serve(m, 1)
    assert again == records
    record_table(m).on_acked([again[0]])
    assert m.get_send(sid).is_done


def test_early_data_rejected_resends_everything_under_new_limits() -> None:
    remembered = StreamLimits(10_000, 8000, 8000, 8000, 10, 10)
    c = manager(True, peer=remembered)
    sid = c.open_stream()
    data = random.Random(9).randbytes(6000)
    c.write(sid, data, fin=True)
    sent = sum(rec.length for records in serve(c, 6) for rec in records)
    assert sent == 6000 and c.send_credit.used == 6000
    # The server rejects 0-RTT; its real limits are lower.
    c.on_peer_parameters(StreamLimits(3000, 2000, 2000, 2000, 10, 10))
    c.on_early_data_rejected()
    assert c.send_credit.used == 0 and c.send_credit.limit == 3000
    frames = [rec for records in serve(c, 6) for rec in records]
    assert frames[0].offset == 0  # from the start again
    assert sum(rec.length for rec in frames) == 2000  # stream limit now 2000
    assert c.get_send(sid).blocked_at == 2000


def test_manager_read_charges_connection_window() -> None:
    s = manager(False, local_max_data=1000, local_max_stream_data=1000)
    s.on_stream_frame(0, 0, bytes(800), False)
    assert s.read(0, 300) == bytes(300)
    assert s.recv_window.consumed == 300
    assert not s.recv_window.update_due
    s.read(0)
    assert s.recv_window.update_due
    buf = Buffer()
    records: list[tuple[Any, ...]] = []
    s.write_control_frames(buf, 1200, records, 1.0, 0.1)
    assert F.MaxDataFrame(1800) in F.decode_frames(buf.data())


def test_sendable_iterator_round_robin_and_break_semantics() -> None:
    m = manager()
    sids = [m.open_stream() for _ in range(3)]
    for sid in sids:
        m.write(sid, bytes(50_000))
    served: Counter[int] = Counter()
    order = []
    for _ in range(30):  # packets of 1000 bytes, built through the building blocks
        room = 1000
        for stream in m.sendable():
            if room < 100:
                break  # full: the stream just offered keeps its turn
            frame = m.next_frame(stream, room - 20)
            assert frame is not None
            room -= len(frame[1]) + 20
            served[stream.stream_id] += len(frame[1])
            order.append(stream.stream_id)
    assert order[:6] == sids + sids
    assert max(served.values()) - min(served.values()) <= 1000
    assert m.send_credit.used == sum(served.values())
    # Each stream is offered at most once per call.
    assert [s.stream_id for s in m.sendable()] == sids


def test_first_sendable_is_the_scheduler_s_first_stream() -> None:
    """``first_sendable`` (the reply and MTU-probe paths' question) answers what
    ``next(sendable(), None)`` answers, through writes, frames taken, priorities, credit
    running out and streams finishing, on two managers driven alike."""
    rng = random.Random(29)
    a, b = manager(), manager()
    sids: list[int] = []
    for step in range(3000):
        op = rng.randrange(6)
        if op == 0 and len(sids) < 6:
            sids.append(a.open_stream())
            assert b.open_stream() == sids[-1]
        elif op == 1 and sids:
            sid, n, fin = rng.choice(sids), rng.choice((0, 1, 64, 3000)), rng.random() < 0.05
            for m in (a, b):
                with contextlib.suppress(StreamError, KeyError):
                    m.write(sid, bytes(n), fin)
        elif op == 2 and sids:
            sid, priority = rng.choice(sids), rng.randrange(3)
            for m in (a, b):
                m.set_priority(sid, priority)
        else:  # a frame from the stream whose turn it is, if any
            first = a.first_sendable()
            expected = next(b.sendable(), None)
            assert (first and first.stream_id) == (expected and expected.stream_id), step
            if first is not None and expected is not None:
                size = rng.choice((10, 500, 1200))
                frame_a, frame_b = a.next_frame(first, size), b.next_frame(expected, size)
                assert (frame_a is None) == (frame_b is None)
        assert a.has_pending_frames() == b.has_pending_frames()

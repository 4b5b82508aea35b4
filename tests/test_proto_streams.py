"""SendStream and RecvStream: buffering, retransmission, FIN, reset, windows."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicish.errors import ErrorCode, ProtocolError, StreamError
from quicish.proto.recv_stream import RecvStream
from quicish.proto.send_stream import SendStream

BIG = 1 << 62


def drain(s: SendStream, max_len: int = 1000, credit: int = BIG) -> list[tuple[int, bytes, bool]]:
    out = []
    while (f := s.next_frame(max_len, credit)) is not None:
        out.append((f[0], bytes(f[1]), f[2]))
    return out


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# ---- SendStream ------------------------------------------------------------------------------
def test_frames_cover_data_in_order_with_fin_on_last() -> None:
    data = payload(2500)
    s = SendStream()
    s.write(data, end_stream=True)
    frames = drain(s, 1000)
    assert [(o, len(d), f) for o, d, f in frames] == [
        (0, 1000, False),
        (1000, 1000, False),
        (2000, 500, True),
    ]
    assert b"".join(d for _, d, _ in frames) == data
    assert s.next_frame(1000, BIG) is None


def test_credit_limits_new_bytes_and_reports_them() -> None:
    s = SendStream()
    s.write(payload(3000))
    f = s.next_frame(1000, 300)
    assert f is not None and (f[0], len(f[1])) == (0, 300)
    assert s.last_new_bytes == 300
    assert s.next_frame(1000, 0) is None and s.last_new_bytes == 0
    f = s.next_frame(1000, 5000)
    assert f is not None and (f[0], len(f[1])) == (300, 1000)
    assert s.last_new_bytes == 1000
    # Retransmissions cost no credit.
    s.on_lost(0, 300, False)
    f = s.next_frame(1000, 0)
    assert f is not None and (f[0], len(f[1])) == (0, 300)
    assert s.last_new_bytes == 0


def test_large_bytes_write_is_sent_without_copy() -> None:
    data = payload(4000)
    s = SendStream()
    s.write(data)
    f = s.next_frame(1000, BIG)
    assert f is not None
    assert isinstance(f[1], memoryview) and f[1].obj is data


def test_small_writes_coalesce_and_frames_span_chunks() -> None:
    s = SendStream()
    pieces = [payload(n, n) for n in (10, 20, 700, 5, 600, 3, 1500)]
    for p in pieces:
        s.write(p)
    frames = drain(s, 900)
    assert b"".join(d for _, d, _ in frames) == b"".join(pieces)
    assert all(len(d) == 900 for _, d, _ in frames[:-1])


def test_lost_ranges_first_and_acked_bytes_never_resent() -> None:
    data = payload(5000)
    s = SendStream()
    s.write(data, end_stream=True)
    frames = drain(s, 1000)
    assert len(frames) == 5
    # Packet with [1000, 2000) acked, then a frame covering [0, 3000) declared lost
    # (e.g. after a PTO requeue): only [0, 1000) and [2000, 3000) may come back.
    s.on_acked(1000, 1000, False)
    s.on_lost(0, 3000, False)
    re = drain(s, 600)
    assert [(o, len(d)) for o, d, _ in re] == [(0, 600), (600, 400), (2000, 600), (2600, 400)]
    for o, d, _ in re:
        assert d == data[o : o + len(d)]
    # Lost data that has since been acked is dropped from the queue.
    s.on_lost(3000, 1000, False)
    s.on_acked(3000, 1000, False)
    assert s.next_frame(1000, BIG) is None


def test_lost_last_range_carries_fin() -> None:
    data = payload(1500)
    s = SendStream()
    s.write(data, end_stream=True)
    frames = drain(s, 1000)
    assert frames[-1][2] is True
    s.on_lost(1000, 500, True)
    assert drain(s, 1000) == [(1000, data[1000:], True)]


def test_fin_only_frame_and_its_loss() -> None:
    s = SendStream()
    s.write(b"abc")
    assert drain(s) == [(0, b"abc", False)]
    s.write(b"", end_stream=True)
    assert drain(s) == [(3, b"", True)]
    s.on_acked(0, 3, False)
    assert not s.is_done
    s.on_lost(3, 0, True)
    assert drain(s) == [(3, b"", True)]
    s.on_acked(3, 0, True)
    assert s.is_done
    with pytest.raises(StreamError):
        s.write(b"more")


def test_write_after_fin_raises() -> None:
    s = SendStream()
    s.write(b"x", end_stream=True)
    with pytest.raises(StreamError):
        s.write(b"y")
    with pytest.raises(StreamError):
        s.write(b"", end_stream=True)


def test_bounded_buffer_space_frees_only_on_ack() -> None:
    s = SendStream(capacity=3000)
    assert s.writable_space == 3000
    s.write(payload(2000))
    assert (s.buffered, s.writable_space) == (2000, 1000)
    s.write(payload(1500))  # accepted beyond capacity (asyncio write semantics)
    assert (s.buffered, s.writable_space) == (3500, 0)
    frames = drain(s, 1000)
    assert s.writable_space == 0  # sending frees nothing
    s.on_acked(1000, 1000, False)  # out of order: prefix unchanged
    assert s.writable_space == 0 and s.acked_offset == 0
    s.on_acked(0, 1000, False)
    assert s.acked_offset == 2000 and s.writable_space == 1500
    for o, d, f in frames[2:]:
        s.on_acked(o, len(d), f)
    assert s.buffered == 0 and s.writable_space == 3000


def test_acked_chunks_are_released() -> None:
    s = SendStream()
    for i in range(300):
        s.write(payload(1000, i))
    for o, d, f in drain(s, 1200):
        s.on_acked(o, len(d), f)
    assert s.acked_offset == 300_000
    live = [c for c in s._chunks if len(c)]
    assert live == [] and len(s._chunks) < 300


def test_stream_flow_control_blocked_once_per_limit() -> None:
    s = SendStream(max_stream_data=1500)
    s.write(payload(4000))
    assert s.blocked_at is None
    frames = drain(s, 1000)
    assert sum(len(d) for _, d, _ in frames) == 1500
    assert s.blocked_at == 1500
    s.on_blocked_sent(1500)
    assert s.blocked_at is None
    s.on_blocked_lost(1500)
    assert s.blocked_at == 1500
    s.on_blocked_sent(1500)
    assert not s.on_max_stream_data(1000)  # only raises
    assert s.max_stream_data == 1500
    assert s.on_max_stream_data(3000)
    assert s.blocked_at is None
    frames = drain(s, 1000)
    assert sum(len(d) for _, d, _ in frames) == 1500 and s.send_offset == 3000
    assert s.blocked_at == 3000


def test_reset_final_size_is_bytes_sent() -> None:
    s = SendStream()
    s.write(payload(5000))
    for credit in (1000, 1000, 500, 0):
        s.next_frame(1000, credit)
    assert s.send_offset == 2500
    assert s.reset(7)
    assert s.reset_pending == (7, 2500)
    assert s.next_frame(1000, BIG) is None
    assert not s.has_pending
    with pytest.raises(StreamError):
        s.write(b"x")
    assert not s.reset(8)  # once
    s.on_reset_sent()
    assert s.reset_pending is None
    s.on_reset_lost()
    assert s.reset_pending == (7, 2500)
    s.on_reset_sent()
    s.on_acked(0, 1000, False)  # late acks are harmless
    assert not s.is_done
    s.on_reset_acked()
    assert s.is_done


def test_reset_after_everything_acked_is_refused() -> None:
    s = SendStream()
    s.write(b"abc", end_stream=True)
    for o, d, f in drain(s):
        s.on_acked(o, len(d), f)
    assert s.is_done
    assert not s.reset(1)
    assert s.reset_pending is None


def test_stop_sending_resets_with_its_code() -> None:
    s = SendStream()
    s.write(payload(100))
    drain(s)
    assert s.on_stop_sending(42)
    assert s.stop_sending_code == 42
    assert s.reset_pending == (42, 100)
    assert not s.on_stop_sending(43)
    assert s.stop_sending_code == 42


def test_requeue_unacked_and_requeue_all() -> None:
    data = payload(3000)
    s = SendStream()
    s.write(data, end_stream=True)
    drain(s, 1000)
    s.on_acked(1000, 1000, False)
    s.requeue_unacked()
    assert drain(s, 5000) == [(0, data[:1000], False), (2000, data[2000:], True)]
    s2 = SendStream()
    s2.write(data, end_stream=True)
    drain(s2, 1000)
    s2.requeue_all()
    first = s2.next_frame(1000, BIG)
    assert first is not None and first[0] == 0
    assert s2.last_new_bytes == 1000  # re-sent as new data (charged again)
    frames = drain(s2, 1000)
    assert bytes(first[1]) + b"".join(d for _, d, _ in frames) == data and frames[-1][2]


def test_done_after_out_of_order_acks() -> None:
    s = SendStream()
    s.write(payload(3000), end_stream=True)
    frames = drain(s, 1000)
    for o, d, f in reversed(frames):
        assert not s.is_done
        s.on_acked(o, len(d), f)
    assert s.is_done and s.buffered == 0


# ---- RecvStream ------------------------------------------------------------------------------
def test_recv_reorders_and_reports_growth() -> None:
    r = RecvStream(10_000)
    assert r.on_stream_frame(100, b"b" * 100, False) == 200
    assert r.read() == b""
    assert r.on_stream_frame(0, b"a" * 100, False) == 0
    assert r.on_stream_frame(50, b"a" * 50 + b"b" * 50, False) == 0  # overlap
    assert r.read(150) == b"a" * 100 + b"b" * 50
    assert r.on_stream_frame(200, b"c", True) == 1
    assert r.read() == b"b" * 50 + b"c"
    assert r.is_finished and r.is_done


def test_recv_flow_control_error() -> None:
    r = RecvStream(1000)
    r.on_stream_frame(0, b"x" * 1000, False)
    with pytest.raises(ProtocolError) as exc:
        r.on_stream_frame(1000, b"x", False)
    assert exc.value.code == ErrorCode.FLOW_CONTROL_ERROR


@pytest.mark.parametrize(
    ("frames", "final"),
    [
        ([(0, 500, False)], 400),  # reset below data received
        ([(0, 500, True)], 600),  # reset disagrees with FIN
    ],
)
def test_final_size_error_via_reset(frames: list[tuple[int, int, bool]], final: int) -> None:
    r = RecvStream(10_000)
    for o, n, f in frames:
        r.on_stream_frame(o, b"z" * n, f)
    with pytest.raises(ProtocolError) as exc:
        r.on_reset(1, final)
    assert exc.value.code == ErrorCode.FINAL_SIZE_ERROR


def test_reset_then_frames_checked_against_final_size() -> None:
    r = RecvStream(10_000)
    r.on_stream_frame(0, b"a" * 300, False)
    assert r.read(100) == b"a" * 100
    assert r.on_reset(9, 1000) == 700  # highest offset grows 300 -> 1000
    assert r.is_reset and r.is_done and r.reset_error_code == 9 and r.final_size == 1000
    assert r.take_released() == 900  # unread bytes up to the final size
    assert r.take_released() == 0
    assert r.read() == b""
    assert r.on_stream_frame(500, b"x" * 500, True) == 0  # consistent: ignored
    with pytest.raises(ProtocolError) as exc:
        r.on_stream_frame(900, b"x" * 200, False)
    assert exc.value.code == ErrorCode.FINAL_SIZE_ERROR
    with pytest.raises(ProtocolError) as exc:
        r.on_reset(9, 999)
    assert exc.value.code == ErrorCode.FINAL_SIZE_ERROR
    assert r.on_reset(9, 1000) == 0


def test_reset_beyond_window_is_flow_control_error() -> None:
    r = RecvStream(1000)
    with pytest.raises(ProtocolError) as exc:
        r.on_reset(1, 1001)
    assert exc.value.code == ErrorCode.FLOW_CONTROL_ERROR


def test_stop_sending_discards_and_releases() -> None:
    r = RecvStream(10_000)
    r.on_stream_frame(0, b"a" * 100, False)
    assert r.stop_sending(5)
    assert r.stop_sending_pending == 5
    assert r.take_released() == 100
    assert r.on_stream_frame(100, b"b" * 50, False) == 50
    assert r.take_released() == 50 and r.read() == b""
    r.on_stop_sending_sent()
    assert r.stop_sending_pending is None
    r.on_stop_sending_lost()
    assert r.stop_sending_pending == 5
    r.on_stop_sending_sent()
    r.on_stream_frame(150, b"c" * 10, True)  # final size now known
    r.on_stop_sending_lost()
    assert r.stop_sending_pending is None
    assert r.take_released() == 10 and r.is_done
    assert not r.update_due


def test_window_update_after_half_consumed() -> None:
    r = RecvStream(1000)
    r.on_stream_frame(0, b"a" * 1000, False)
    assert r.read(500) == b"a" * 500
    assert not r.update_due and r.max_stream_data_update(0.0, 0.1) is None
    r.read(1)
    assert r.update_due
    assert r.max_stream_data_update(0.0, 0.1) == 1501  # consumed + window
    assert r.max_stream_data == 1501 and not r.update_due
    r.on_stream_frame(1000, b"b" * 501, False)  # now within the limit
    with pytest.raises(ProtocolError):
        r.on_stream_frame(1501, b"b", False)
    r.on_max_stream_data_lost(1501)
    assert r.max_stream_data_update(0.0, 0.1) == 1501  # re-sent unchanged
    r.on_max_stream_data_lost(1000)  # stale value: nothing to re-send
    assert r.max_stream_data_update(0.0, 0.1) is None


def _consume_window(r: RecvStream, offset: int, now: float, rtt: float) -> tuple[int, int | None]:
    """Peer fills the window; reader reads it all; returns (new offset, update)."""
    n = r.max_stream_data - offset
    r.on_stream_frame(offset, bytes(n), False)
    r.read()
    return offset + n, r.max_stream_data_update(now, rtt)


def test_window_doubles_when_consumed_fast_up_to_max() -> None:
    r = RecvStream(1000, max_window=8000)
    offset, now, windows = 0, 0.0, []
    for _ in range(8):
        now += 0.01  # a window per 10 ms with a 50 ms RTT: fast
        offset, update = _consume_window(r, offset, now, 0.05)
        assert update == offset + r.window.window
        windows.append(r.window.window)
    assert windows == [1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000]


def test_window_stays_when_consumed_slowly() -> None:
    r = RecvStream(1000, max_window=8000)
    offset, now = 0, 0.0
    for _ in range(5):
        now += 1.0  # a window per second with a 50 ms RTT: the reader is the bottleneck
        offset, update = _consume_window(r, offset, now, 0.05)
        assert update == offset + 1000
    assert r.window.window == 1000


def test_readable_event_is_edge_triggered() -> None:
    r = RecvStream(10_000)
    assert not r.take_readable_event()
    r.on_stream_frame(0, b"ab", False)
    assert r.take_readable_event()
    r.on_stream_frame(2, b"cd", False)
    assert not r.take_readable_event()
    assert r.read(1) == b"a"
    r.on_stream_frame(4, b"e", True)
    assert r.take_readable_event()
    assert r.read() == b"bcde" and r.is_finished
    r.on_stream_frame(4, b"e", True)  # duplicate after the end
    assert not r.take_readable_event()
    r2 = RecvStream(100)
    r2.on_stream_frame(0, b"", True)  # empty stream: the end is news
    assert r2.take_readable_event()
    assert not r2.take_readable_event()


# ---- property: lossy, reordering, duplicating path --------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(0, 8000),
    seed=st.integers(0, 2**32),
    window=st.integers(1, 3000),
)
def test_random_loss_reorder_duplication_delivers_exact_bytes(
    size: int, seed: int, window: int
) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(size)
    send = SendStream(capacity=2000, max_stream_data=window)
    recv = RecvStream(window, max_window=4 * window)
    pos = 0
    while pos < len(data):  # random write sizes, with and without copies
        n = rng.randint(1, 1500)
        chunk = data[pos : pos + n]
        send.write(chunk if rng.random() < 0.5 else bytearray(chunk))
        pos += n
    send.write(b"", end_stream=True)
    acked = bytearray(len(data))  # 1 where the sender saw an ACK
    in_flight: list[tuple[int, bytes, bool]] = []
    late: list[tuple[int, bytes, bool]] = []  # declared lost but actually delivered
    window_updates: list[int] = []
    received = bytearray()
    now = 0.0
    for _ in range(200_000):
        if send.is_done:
            break
        now += 0.001
        r = rng.random()
        if r < 0.45:
            f = send.next_frame(rng.randint(1, 700), rng.choice((0, 100, 1 << 62)))
            if f is not None:
                off, chunk_view, fin = f
                chunk = bytes(chunk_view)
                assert chunk == data[off : off + len(chunk)]
                assert acked[off : off + len(chunk)].count(1) == 0, "re-sent acked bytes"
                in_flight.append((off, chunk, fin))
                continue
        if r < 0.85 and in_flight:
            off, chunk, fin = in_flight.pop(rng.randrange(len(in_flight)))
            fate = rng.random()
            if fate < 0.25:  # lost
                send.on_lost(off, len(chunk), fin)
                continue
            recv.on_stream_frame(off, chunk, fin)
            if rng.random() < 0.2:  # duplicated
                recv.on_stream_frame(off, chunk, fin)
            if fate < 0.35:  # delivered, but the ACK is late: declared lost first
                send.on_lost(off, len(chunk), fin)
                late.append((off, chunk, fin))
            else:
                send.on_acked(off, len(chunk), fin)
                acked[off : off + len(chunk)] = b"\x01" * len(chunk)
        elif r < 0.9 and late:
            off, chunk, fin = late.pop(rng.randrange(len(late)))
            send.on_acked(off, len(chunk), fin)
            acked[off : off + len(chunk)] = b"\x01" * len(chunk)
        else:
            received += recv.read(rng.randint(1, 2000))
            update = recv.max_stream_data_update(now, 0.02)
            if update is not None:
                window_updates.append(update)
                send.on_max_stream_data(update)
        if not in_flight and not late and not send.has_pending and not send.is_done:
            # Nothing in flight and nothing to send: must be waiting for a window update.
            received += recv.read()
            update = recv.max_stream_data_update(now, 0.02)
            assert update is not None, "deadlock"
            send.on_max_stream_data(update)
    assert send.is_done
    received += recv.read()
    assert bytes(received) == data
    assert recv.is_finished
    assert window_updates == sorted(window_updates)

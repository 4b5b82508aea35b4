"""Flow control end to end (RFC 9000 section 4): blocking and unblocking at the stream and
the connection level, the BLOCKED frames, and receive windows that grow on a long fat path."""

from __future__ import annotations

import random

import pytest
from pairs import FrameSpy, Sender, connected, make_net, wire_frames

from quicish.simlink import LinkSpec
from quicish.wire import frames as F

FIXED = {"max_data_limit": 0, "max_stream_data_limit": 0}  # no automatic window growth


def test_stream_level_blocking_and_unblocking() -> None:
    window = 16 << 10
    net = make_net(server_kw={"max_stream_data": window, "max_data": 1 << 20, **FIXED})
    spy = FrameSpy(net.client)
    server_spy = FrameSpy(net.server)
    c, s = connected(net)
    s.reading = False
    sid = net.client.open_stream()
    data = random.Random(1).randbytes(200_000)
    net.client.send_stream_data(sid, data, end_stream=True)
    net.settle(c, s, duration=2)
    recv = net.server._streams.get_recv(sid)
    # Exactly the window arrived and nothing beyond it was sent.
    assert recv.highest_offset == window and recv.readable == window
    assert net.client._streams.get_send(sid).send_offset == window
    blocked = spy.of(F.StreamDataBlockedFrame)
    assert [(f.stream_id, f.limit) for f in blocked] == [(sid, window)]
    assert spy.of(F.DataBlockedFrame) == []
    # Reading more than half the window sends MAX_STREAM_DATA; progress resumes.
    s.read(sid, window // 2 + 1)
    net.settle(c, s, duration=0.5)
    updates = server_spy.of(F.MaxStreamDataFrame)
    assert updates and updates[0].stream_id == sid and updates[0].maximum > window
    assert recv.highest_offset == updates[-1].maximum
    # A second STREAM_DATA_BLOCKED names the new limit.
    assert spy.of(F.StreamDataBlockedFrame)[-1].limit == updates[-1].maximum
    s.reading = True
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=30)
    assert bytes(s.data[sid]) == data
    # A fixed window never exceeded its size.
    assert all(
        f.maximum - prev <= window
        for prev, f in zip([window] + [u.maximum for u in updates], updates, strict=False)
    )


def test_connection_level_blocking_and_unblocking() -> None:
    limit = 40_000
    net = make_net(server_kw={"max_data": limit, "max_stream_data": 1 << 20, **FIXED})
    spy = FrameSpy(net.client)
    server_spy = FrameSpy(net.server)
    c, s = connected(net)
    s.reading = False
    sids = [net.client.open_stream() for _ in range(4)]
    blobs = {sid: random.Random(sid).randbytes(50_000) for sid in sids}
    for sid in sids:
        net.client.send_stream_data(sid, blobs[sid], end_stream=True)
    net.settle(c, s, duration=2)
    received = sum(net.server._streams.get_recv(sid).highest_offset for sid in sids)
    assert received == limit
    assert [f.limit for f in spy.of(F.DataBlockedFrame)] == [limit]
    assert spy.of(F.StreamDataBlockedFrame) == []
    # Round robin spread the credit over the streams.
    assert all(net.server._streams.get_recv(sid).highest_offset > 0 for sid in sids)
    s.reading = True
    assert net.run_until(lambda: set(sids) <= s.finished, c, s, timeout=30)
    for sid in sids:
        assert bytes(s.data[sid]) == blobs[sid]
    max_data = [f.maximum for f in server_spy.of(F.MaxDataFrame)]
    assert max_data and max_data == sorted(max_data) and max_data[-1] >= 200_000
    assert len(spy.of(F.DataBlockedFrame)) >= 2  # blocked again at later limits


def test_blocked_frames_resent_when_lost() -> None:
    """The first STREAM_DATA_BLOCKED is lost; it is re-sent (the peer learns why we stall)."""
    window = 8 << 10
    net = make_net(server_kw={"max_stream_data": window, **FIXED})
    spy = FrameSpy(net.client)
    c, s = connected(net)
    s.reading = False
    sid = net.client.open_stream()
    first_blocked: list[int] = []

    def drop(direction: str, index: int, data: bytes, now: float) -> bool:
        if direction != "up" or first_blocked:
            return False
        frames = wire_frames(net.server, data) or []
        if any(isinstance(f, F.StreamDataBlockedFrame) for f in frames):
            first_blocked.append(index)
            return True
        return False

    net.drop = drop
    net.client.send_stream_data(sid, bytes(50_000))
    net.settle(c, s, duration=3)
    assert first_blocked
    sent = spy.of(F.StreamDataBlockedFrame)
    assert len(sent) == 2 and {f.limit for f in sent} == {window}
    assert net.server._streams.get_recv(sid).highest_offset == window


def test_receive_window_grows_on_long_fat_path() -> None:
    """100 ms RTT, 100 Mbit/s (1.25 MB in flight to fill it), 128 KB / 64 KB initial
    windows: a fixed window would cap the transfer at 128 KB per RTT (3 MB in >= 2.4 s);
    auto-tuning grows the windows, within the configured maximum, and it takes far less."""
    link = LinkSpec(delay=0.05, bandwidth=100e6, queue=2000)
    size = 3 << 20
    server_kw = {
        "max_data": 128 << 10,
        "max_stream_data": 64 << 10,
        "max_data_limit": 4 << 20,
        "max_stream_data_limit": 2 << 20,
    }
    net = make_net(link=link, server_kw=server_kw, client_kw={"max_data": 16 << 20})
    server_spy = FrameSpy(net.server)
    c, s = connected(net)
    sid = net.client.open_stream()
    data = random.Random(3).randbytes(size)
    sender = Sender(net.client, sid, data, window=8 << 20)
    start = net.now
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60, hook=sender.pump)
    assert bytes(s.data[sid]) == data
    elapsed = net.now - start
    fixed_bound = size / (128 << 10) * 0.1
    assert elapsed < fixed_bound / 2, (elapsed, fixed_bound)
    conn_window = net.server._streams.recv_window
    assert conn_window.window == 4 << 20  # grew to the configured maximum, not beyond
    steps = [f.maximum for f in server_spy.of(F.MaxStreamDataFrame)]
    assert max(b - a for a, b in zip([64 << 10, *steps], steps, strict=False)) > 1 << 20


def test_slow_reader_keeps_window_small() -> None:
    """A reader that takes a little at a time does not get its window inflated."""
    net = make_net(
        link=LinkSpec(delay=0.02),
        server_kw={"max_stream_data": 32 << 10, "max_stream_data_limit": 8 << 20},
    )
    c, s = connected(net)
    s.reading = False
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, bytes(400_000))

    next_read = [net.now]

    def slow_read() -> None:
        sender.pump()
        if net.now >= next_read[0]:  # 4 KB every 100 ms: 40 KB/s, far below the path's rate
            s.read(sid, 4096)
            next_read[0] = net.now + 0.1

    assert net.run_until(
        lambda: len(s.data.get(sid, b"")) >= 100_000, c, s, timeout=60, hook=slow_read, tick=0.1
    )
    recv = net.server._streams.get_recv(sid)
    assert recv.window.window == 32 << 10
    assert recv.highest_offset - recv.read_offset <= 32 << 10
    assert recv.highest_offset > 100_000


@pytest.mark.parametrize("seed", range(4))
def test_tight_windows_under_loss_reorder_duplication(seed: int) -> None:
    """Fixed 8 KB stream and 24 KB connection windows, 4 streams at a time, 15 % loss,
    reordering and duplication, traffic both ways: no flow-control error (retransmissions
    and duplicates are never charged twice), no stall (lost MAX_DATA / MAX_STREAM_DATA /
    MAX_STREAMS are re-sent), all bytes exact."""
    kw = {"max_data": 24_000, "max_stream_data": 8_000, "max_streams_bidi": 4, **FIXED}
    net = make_net(
        link=LinkSpec(delay=0.01, loss=0.15, reorder=0.1, duplicate=0.1),
        seed=seed,
        client_kw=kw,
        server_kw=kw,
    )
    c, s = connected(net, timeout=60)
    blobs: dict[int, bytes] = {}
    senders: list[Sender] = []
    answered: set[int] = set()

    def hook() -> None:
        while len(blobs) < 12 and net.client._streams.streams_available(True):
            sid = net.client.open_stream()
            blobs[sid] = random.Random(sid).randbytes(50_000)
            senders.append(Sender(net.client, sid, blobs[sid], chunk=5000, window=20_000))
        for sender in senders:
            sender.pump()
        for sid in s.finished - answered:
            net.server.send_stream_data(sid, bytes(s.data[sid][:30_000]), end_stream=True)
            answered.add(sid)

    assert net.run_until(lambda: len(c.finished) == 12, c, s, timeout=300, hook=hook)
    for sid, blob in blobs.items():
        assert bytes(s.data[sid]) == blob and bytes(c.data[sid]) == blob[:30_000]
    assert c.terminated is None and s.terminated is None
    assert net.client.stats().packets_lost > 10

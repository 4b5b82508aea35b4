"""Streams through two connections: many concurrent streams, stream limits, unidirectional
streams, fair interleaving, RESET_STREAM and STOP_SENDING (RFC 9000 sections 2-4, 19)."""

from __future__ import annotations

import random

import pytest
from pairs import FrameSpy, Pair, Sender, connected, make_net

from quicish.errors import ConfigError, ConnectionStateError, StreamError
from quicish.proto import events as ev
from quicish.proto.stream_manager import StreamLimitReached
from quicish.simlink import LinkSpec
from quicish.wire import frames as F


def payload(sid: int) -> bytes:
    rng = random.Random(sid)
    return rng.randbytes(200 + rng.randrange(1800))


@pytest.mark.parametrize("loss", [0.0, 0.03])
def test_thousand_concurrent_streams(loss: float) -> None:
    """1,000 bidirectional streams open at once; every request is echoed back reversed."""
    kw = {"max_streams_bidi": 1000, "max_data": 8 << 20}
    net = make_net(link=LinkSpec(delay=0.01, loss=loss), seed=12, client_kw=kw, server_kw=kw)
    c, s = connected(net)
    sids = [net.client.open_stream() for _ in range(1000)]
    assert len(set(sids)) == 1000 and sids[-1] == 4 * 999
    with pytest.raises(StreamLimitReached):
        net.client.open_stream()
    for sid in sids:
        net.client.send_stream_data(sid, payload(sid), end_stream=True)
    answered: set[int] = set()

    def echo() -> None:
        for sid in list(s.finished - answered):
            net.server.send_stream_data(sid, bytes(s.data[sid])[::-1], end_stream=True)
            answered.add(sid)

    ok = net.run_until(lambda: len(c.finished) == 1000, c, s, timeout=120, hook=echo)
    assert ok, (len(s.finished), len(c.finished))
    for sid in sids:
        assert bytes(s.data[sid]) == payload(sid)
        assert bytes(c.data[sid]) == payload(sid)[::-1]
    # Streams are forgotten once both halves are done, on both sides.
    net.settle(c, s, duration=1)
    assert len(net.client._streams) == 0 and len(net.server._streams) == 0
    # ... and the server granted more streams as they closed (MAX_STREAMS).
    assert net.client._streams.peer_max_streams[0] >= 1000 + 900


def test_stream_limit_raised_as_streams_close() -> None:
    """Peer allows 10 streams at a time; 200 requests complete, with STREAMS_BLOCKED sent
    when the limit stopped us and MAX_STREAMS raising it (the interop "multiplexing")."""
    net = make_net(server_kw={"max_streams_bidi": 10})
    spy = FrameSpy(net.client)
    server_spy = FrameSpy(net.server)
    c, s = connected(net)
    total = 200
    opened: list[int] = []

    answered: set[int] = set()

    def open_more() -> None:
        while len(opened) < total:
            try:
                sid = net.client.open_stream()
            except StreamLimitReached:
                break
            opened.append(sid)
            net.client.send_stream_data(sid, b"GET /%d\r\n" % sid, end_stream=True)
        for sid in s.finished - answered:
            assert bytes(s.data[sid]) == b"GET /%d\r\n" % sid
            net.server.send_stream_data(sid, b"file %d" % sid, end_stream=True)
            answered.add(sid)

    assert net.run_until(lambda: len(c.finished) == total, c, s, timeout=60, hook=open_more)
    for sid in opened:
        assert bytes(c.data[sid]) == b"file %d" % sid
    assert len(c.of(ev.StreamsAvailable)) > 5
    blocked = spy.of(F.StreamsBlockedFrame)
    assert blocked and all(f.bidi for f in blocked)
    assert blocked[0].limit == 10
    raises = [f.limit for f in server_spy.of(F.MaxStreamsFrame) if f.bidi]
    assert raises == sorted(raises) and raises[-1] >= total
    # At no time did the server hold more than 10 open client streams.
    assert max(raises) - 10 <= len(s.finished)


def test_unidirectional_streams(pair: Pair) -> None:
    net, c, s = pair
    uni = [net.client.open_stream(bidirectional=False) for _ in range(5)]
    assert uni == [2, 6, 10, 14, 18]
    for sid in uni:
        net.client.send_stream_data(sid, b"u%d" % sid * 100, end_stream=True)
    server_uni = net.server.open_stream(bidirectional=False)
    assert server_uni == 3
    net.server.send_stream_data(server_uni, b"from server", end_stream=True)
    assert net.run_until(lambda: set(uni) <= s.finished and server_uni in c.finished, c, s)
    for sid in uni:
        assert bytes(s.data[sid]) == b"u%d" % sid * 100
    assert bytes(c.data[server_uni]) == b"from server"
    # The receiving side cannot write on a peer's unidirectional stream, nor read its own.
    with pytest.raises(StreamError):
        net.server.send_stream_data(net.server.open_stream(False) - 4, b"x")  # sid 3: done
    with pytest.raises(StreamError):
        net.client.read_stream(net.client.open_stream(bidirectional=False))


def test_round_robin_interleaves_streams() -> None:
    """Two bulk streams on a slow link progress together (round robin), not one after
    the other."""
    kw = {"max_data": 16 << 20, "max_stream_data": 8 << 20}
    net = make_net(link=LinkSpec(delay=0.01, bandwidth=20e6, queue=50), client_kw=kw, server_kw=kw)
    c, s = connected(net)
    a, b = net.client.open_stream(), net.client.open_stream()
    senders = [Sender(net.client, sid, bytes(1 << 20)) for sid in (a, b)]

    def pump() -> None:
        for snd in senders:
            snd.pump()

    assert net.run_until(
        lambda: len(s.data.get(a, b"")) + len(s.data.get(b, b"")) > 1 << 20,
        c,
        s,
        timeout=30,
        hook=pump,
    )
    got_a, got_b = len(s.data[a]), len(s.data[b])
    assert 0.8 < got_a / got_b < 1.25, (got_a, got_b)
    assert net.run_until(lambda: {a, b} <= s.finished, c, s, timeout=30, hook=pump)


def test_reset_stream_reports_code_and_final_size(pair: Pair) -> None:
    net, c, s = pair
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"x" * 5000)
    assert net.run_until(lambda: len(s.data.get(sid, b"")) == 5000, c, s)
    net.client.reset_stream(sid, 42)
    assert net.run_until(lambda: sid in s.resets, c, s)
    assert s.resets[sid] == (42, 5000)
    with pytest.raises(StreamError):
        net.client.send_stream_data(sid, b"more")
    # The server can still answer on its half; once that finishes the stream is gone.
    net.server.send_stream_data(sid, b"bye", end_stream=True)
    assert net.run_until(lambda: sid in c.finished, c, s)
    assert bytes(c.data[sid]) == b"bye"
    net.settle(c, s)
    assert net.client._streams.get(sid) is None and net.server._streams.get(sid) is None


def test_reset_under_loss_releases_connection_credit() -> None:
    """A reset stream's unread and never-sent bytes are credited back to the connection
    window: with max_data 64 KB, 20 streams of 60 KB each reset halfway still let a final
    stream through."""
    net = make_net(
        link=LinkSpec(delay=0.01, loss=0.05),
        seed=13,
        server_kw={
            "max_data": 64 << 10,
            "max_stream_data": 64 << 10,
            "max_data_limit": 64 << 10,
            "max_stream_data_limit": 64 << 10,
        },
    )
    c, s = connected(net)
    for _ in range(20):
        sid = net.client.open_stream()
        net.client.send_stream_data(sid, bytes(30_000))
        net.run_until(lambda: len(s.data.get(sid, b"")) >= 20_000, c, s, timeout=30)  # noqa: B023
        net.client.reset_stream(sid, 7)
        assert net.run_until(lambda: sid in s.resets, c, s, timeout=30)  # noqa: B023
        code, final = s.resets[sid]
        assert code == 7 and 20_000 <= final <= 30_000
    last = net.client.open_stream()
    net.client.send_stream_data(last, bytes(50_000), end_stream=True)
    assert net.run_until(lambda: last in s.finished, c, s, timeout=60)
    assert len(s.data[last]) == 50_000


def test_reset_before_any_data(pair: Pair) -> None:
    net, c, s = pair
    sid = net.client.open_stream()
    net.client.reset_stream(sid, 9)
    assert net.run_until(lambda: sid in s.resets, c, s)
    assert s.resets[sid] == (9, 0)


def test_stop_sending_makes_peer_reset_with_its_code(pair: Pair) -> None:
    net, c, s = pair
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, bytes(2 << 20))
    assert net.run_until(lambda: len(s.data.get(sid, b"")) > 100_000, c, s, hook=sender.pump)
    net.server.stop_sending(sid, 77)

    def pump() -> None:
        if not net.client.is_terminated and sid not in c.stops:
            sender.pump()

    assert net.run_until(lambda: sid in s.resets, c, s, hook=pump)
    assert c.stops[sid] == 77
    code, final = s.resets[sid]
    assert code == 77
    stream = net.client._streams.get(sid)
    assert stream is None or (stream.send is not None and stream.send.final_size == final)
    assert final >= 100_000
    with pytest.raises(StreamError):
        net.client.send_stream_data(sid, b"more")
    # The stream is otherwise healthy: the server's half still works.
    net.server.send_stream_data(sid, b"done", end_stream=True)
    assert net.run_until(lambda: sid in c.finished, c, s)
    assert bytes(c.data[sid]) == b"done"


def test_stop_sending_after_fin_is_a_no_op() -> None:
    net = make_net()
    spy = FrameSpy(net.server)
    c, s = connected(net)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"all of it", end_stream=True)
    assert net.run_until(lambda: net.client.stream_send_done(sid), c, s)
    assert sid in s.finished
    net.server.stop_sending(sid, 5)  # our receiving half already saw the FIN: nothing to stop
    net.settle(c, s, duration=0.2)
    assert spy.of(F.StopSendingFrame) == [] and sid not in c.stops
    with pytest.raises(StreamError):
        net.client.stop_sending(net.client.open_stream(bidirectional=False), 5)  # send-only


def test_empty_stream_with_fin_and_write_after_fin(pair: Pair) -> None:
    net, c, s = pair
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"", end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s)
    assert bytes(s.data[sid]) == b""
    with pytest.raises(StreamError):
        net.client.send_stream_data(sid, b"late")
    with pytest.raises(StreamError):
        net.client.send_stream_data(1001, b"never opened")


def test_datagrams_both_ways_and_unreliable() -> None:
    kw = {"max_datagram_frame_size": 1200}
    net = make_net(link=LinkSpec(delay=0.01, loss=0.2), seed=21, client_kw=kw, server_kw=kw)
    c, s = connected(net, timeout=30)
    sent = [b"dgram %03d" % i + bytes(990) for i in range(50)]  # one per packet
    for d in sent:
        net.client.send_datagram(d)
    net.server.send_datagram(b"pong")
    net.settle(c, s, duration=2)
    assert [e.data for e in c.of(ev.DatagramReceived)] in ([b"pong"], [])
    got = [e.data for e in s.of(ev.DatagramReceived)]
    assert got and set(got) <= set(sent) and len(set(got)) == len(got)
    assert len(got) < len(sent)  # lost ones are not re-sent (RFC 9221 5)
    with pytest.raises(ConfigError, match="too large"):
        net.client.send_datagram(bytes(1300))  # larger than a packet


def test_datagram_refused_when_peer_did_not_offer() -> None:
    net = make_net(client_kw={"max_datagram_frame_size": 1200})
    _c, _s = connected(net)
    with pytest.raises(ConnectionStateError):
        net.client.send_datagram(b"x")  # the server did not advertise the extension


@pytest.mark.parametrize("seed", range(3))
def test_resets_and_stop_sending_storm_under_loss(seed: int) -> None:
    """40 streams; the server stops some, the client resets others, on a lossy, reordering
    link: every stream ends either byte-exact or reset with the right code, and the
    connection survives."""
    net = make_net(link=LinkSpec(delay=0.01, loss=0.1, reorder=0.1, duplicate=0.05), seed=seed)
    c, s = connected(net, timeout=60)
    rng = random.Random(seed)
    sids = [net.client.open_stream() for _ in range(40)]
    senders = {
        sid: Sender(
            net.client, sid, rng.randbytes(rng.randrange(1, 200_000)), chunk=8000, window=50_000
        )
        for sid in sids
    }
    stopped: set[int] = set()
    reset: set[int] = set()

    def hook() -> None:
        for sid, sender in senders.items():
            if sid not in c.stops and sid not in reset:
                sender.pump()
            if sid % 8 == 0 and sid not in stopped and len(s.data.get(sid, b"")) > 1000:
                net.server.stop_sending(sid, 100 + sid)
                stopped.add(sid)
            if sid % 12 == 4 and sid not in reset and sender.pos > 10_000:
                net.client.reset_stream(sid, 7)
                reset.add(sid)

    def done() -> bool:
        return all(sid in s.finished or sid in s.resets for sid in sids)

    assert net.run_until(done, c, s, timeout=120, hook=hook)
    assert c.terminated is None and s.terminated is None
    assert stopped and reset
    for sid in sids:
        if sid in s.resets:
            code, final = s.resets[sid]
            assert code == (7 if sid in reset and sid not in c.stops else 100 + sid)
            assert final <= len(senders[sid].data)
        else:
            assert bytes(s.data[sid]) == senders[sid].data
    for sid, code in c.stops.items():
        assert code == 100 + sid

"""Connection lifecycle (RFC 9000 section 10): application close, closing and draining
periods of three PTOs, idle timeout with the negotiated minimum, keep-alive; all on the
virtual clock."""

from __future__ import annotations

import pytest
from pairs import FrameSpy, Net, Pair, Peer, connected, make_net
from support import cyclic_garbage

from quicish.errors import ConnectionClosedError, ErrorCode
from quicish.proto import events as ev
from quicish.simlink import LinkSpec
from quicish.wire import frames as F


def _count_datagrams(net: Net) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {"up": [], "down": []}
    net.taps.append(lambda d, data, now: seen[d].append(now))
    return seen


def test_application_close_reaches_peer_and_times_out() -> None:
    net = make_net(link=LinkSpec(delay=0.02))
    c, s = connected(net)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"request")
    net.settle(c, s, duration=0.2)
    wire = _count_datagrams(net)
    closed_at = net.now
    client_pto = net.client._recovery.pto_interval()
    net.client.close(error_code=0x42, reason="bye now", now=net.now)
    c.poll()
    assert c.terminated == ev.ConnectionTerminated(0x42, "bye now", None, False)
    with pytest.raises(ConnectionClosedError):
        net.client.send_stream_data(sid, b"more")
    assert net.run_until(lambda: s.terminated is not None, c, s, timeout=1)
    assert s.terminated == ev.ConnectionTerminated(0x42, "bye now", None, True)
    received_at = net.now
    assert received_at == pytest.approx(closed_at + 0.02)
    server_pto = net.server._recovery.pto_interval()
    # Closing (client) and draining (server) last three PTOs, then the connection is closed.
    assert net.run_until(lambda: net.client.is_closed and net.server.is_closed, c, s, timeout=5)
    assert net.client.is_closed and net.server.is_closed
    assert net.client.next_timer() is None and net.server.next_timer() is None
    # Each side reached "closed" exactly at its own deadline.
    assert max(closed_at + 3 * client_pto, received_at + 3 * server_pto) == pytest.approx(net.now)
    # The client sent one CONNECTION_CLOSE; the draining server sent nothing at all.
    assert len(wire["up"]) == 1 and wire["down"] == []
    assert net.client.datagrams_to_send(net.now) == []


def test_closing_timing_each_side() -> None:
    net = make_net(link=LinkSpec(delay=0.03))
    c, s = connected(net)
    net.settle(c, s, duration=0.5)
    t0 = net.now
    pto = net.client._recovery.pto_interval()
    assert pto > 0.06
    net.client.close(now=t0)
    closed: dict[str, float] = {}

    def watch() -> None:
        for name, conn in (("client", net.client), ("server", net.server)):
            if conn.is_closed and name not in closed:
                closed[name] = net.now

    assert net.run_until(lambda: len(closed) == 2, c, s, timeout=5, hook=watch)
    assert closed["client"] == pytest.approx(t0 + 3 * pto)
    assert closed["server"] == pytest.approx(t0 + 0.03 + 3 * net.server._recovery.pto_interval())
    assert c.terminated is not None and c.terminated.error_code == 0
    assert s.terminated is not None and s.terminated.by_peer and s.terminated.error_code == 0


def test_closing_endpoint_answers_with_close_again() -> None:
    """The first CONNECTION_CLOSE is lost: the peer keeps sending, and the closing endpoint
    answers with CONNECTION_CLOSE again, so the peer still learns the code."""
    net = make_net(link=LinkSpec(delay=0.02))
    c, s = connected(net)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(100))
    net.settle(c, s, duration=0.1)
    first: list[int] = []

    def drop(direction: str, index: int, data: bytes, now: float) -> bool:
        if direction == "down" and not first:
            first.append(index)
            return True
        return False

    net.drop = drop
    net.server.close(error_code=7, reason="go away", now=net.now)
    net.client.send_stream_data(sid, bytes(100))  # elicits an answer from the closing server
    assert net.run_until(lambda: c.terminated is not None, c, s, timeout=2)
    assert first
    assert c.terminated == ev.ConnectionTerminated(7, "go away", None, True)


def test_close_during_handshake_is_application_error() -> None:
    """RFC 9000 10.2.3: an application close before 1-RTT keys goes out as a transport
    CONNECTION_CLOSE with APPLICATION_ERROR and no reason."""
    net = make_net()
    c, s = Peer(net.client), Peer(net.server)
    net.run_until(lambda: net.server._handshake.tls is not None, c, s, timeout=1)
    assert not net.server.handshake_complete
    net.server.close(error_code=99, reason="secret", now=net.now)
    assert net.run_until(lambda: c.terminated is not None, c, s, timeout=2)
    assert c.terminated is not None and c.terminated.by_peer
    assert c.terminated.error_code == ErrorCode.APPLICATION_ERROR
    assert c.terminated.reason == ""


@pytest.mark.parametrize(
    ("client_idle", "server_idle", "expected"),
    [(5.0, 30.0, 5.0), (30.0, 4.0, 4.0), (0.0, 6.0, 6.0)],
)
def test_idle_timeout_negotiated_minimum(
    client_idle: float, server_idle: float, expected: float
) -> None:
    net = make_net(client_kw={"idle_timeout": client_idle}, server_kw={"idle_timeout": server_idle})
    wire = _count_datagrams(net)
    c, s = connected(net)
    net.settle(c, s, duration=0.2)  # let the last ACKs go
    quiet_since = max(wire["up"][-1], wire["down"][-1])
    assert net.run_until(lambda: net.client.is_closed and net.server.is_closed, c, s, timeout=60)
    for peer in (c, s):
        assert peer.terminated == ev.ConnectionTerminated(0, "idle timeout", None, False)
    # Both closed silently, about ``expected`` seconds after the last packet.
    assert max(wire["up"][-1], wire["down"][-1]) == quiet_since
    assert expected <= net.now - quiet_since <= expected + 0.1


def test_no_idle_timeout_when_both_disable_it() -> None:
    net = make_net(client_kw={"idle_timeout": 0.0}, server_kw={"idle_timeout": 0.0})
    c, s = connected(net)
    net.settle(c, s, duration=0.5)
    assert net.client.next_timer() is None and net.server.next_timer() is None
    net.settle(c, s, duration=100)
    assert not net.client.is_terminated and not net.server.is_terminated


def test_activity_restarts_idle_timer() -> None:
    net = make_net(client_kw={"idle_timeout": 5.0})
    c, s = connected(net)
    sid = net.client.open_stream()
    for _ in range(6):  # a message every 3 s for 18 s: more than three idle periods
        net.client.send_stream_data(sid, b"tick")
        net.settle(c, s, duration=3)
        assert not net.client.is_terminated and not net.server.is_terminated
    assert bytes(s.data[sid]) == b"tick" * 6
    last = net.now - 3
    assert net.run_until(lambda: net.client.is_closed and net.server.is_closed, c, s, timeout=20)
    assert 5.0 <= net.now - last <= 5.2


def test_keep_alive_prevents_idle_timeout() -> None:
    net = make_net(client_kw={"idle_timeout": 5.0, "keep_alive": 2.0})
    spy = FrameSpy(net.client)
    c, s = connected(net)
    net.settle(c, s, duration=30)
    assert not net.client.is_terminated and not net.server.is_terminated
    pings = spy.of(F.PingFrame)
    assert 10 <= len(pings) <= 16  # one every ~2 s


def test_idle_timeout_with_lossy_link_and_no_traffic() -> None:
    """Idle timeout is not confused by losses: both sides still close at the deadline."""
    net = make_net(
        link=LinkSpec(delay=0.01, loss=0.2),
        seed=4,
        client_kw={"idle_timeout": 3.0},
        server_kw={"idle_timeout": 3.0},
    )
    c, s = connected(net, timeout=30)
    assert net.run_until(lambda: net.client.is_closed and net.server.is_closed, c, s, timeout=30)
    assert c.terminated is not None and c.terminated.reason == "idle timeout"
    assert s.terminated is not None and s.terminated.reason == "idle timeout"


def test_events_after_close_are_terminal(pair: Pair) -> None:
    """After closing, the API refuses new work and nothing more is reported."""
    net, c, s = pair
    net.client.close(now=net.now)
    assert net.run_until(lambda: net.client.is_closed and net.server.is_closed, c, s, timeout=5)
    for conn in (net.client, net.server):
        with pytest.raises(ConnectionClosedError):
            conn.open_stream()
        conn.receive_datagram(b"\x40" + bytes(60), ("10.0.0.9", 1), net.now)
        conn.handle_timer(net.now + 100)
        assert conn.next_event() is None and conn.datagrams_to_send(net.now) == []


def test_closing_endpoint_ignores_frames_and_limits_answers() -> None:
    """After close(), data still in flight from the peer is not delivered (no events after
    ConnectionTerminated), and CONNECTION_CLOSE answers back off exponentially."""
    net = make_net(link=LinkSpec(delay=0.05, bandwidth=20e6))
    c, s = connected(net)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"request")
    net.settle(c, s, duration=0.2)
    net.server.send_stream_data(sid, bytes(60_000))
    net.settle(c, s, duration=0.001)  # the server's flight is on the wire
    net.client.close(error_code=3, now=net.now)
    wire = _count_datagrams(net)
    delivered = net.down.counters.delivered
    assert net.run_until(lambda: net.client.is_closed, c, s, timeout=5)
    assert len(c.data.get(sid, b"")) == 0
    assert isinstance(c.events[-1], ev.ConnectionTerminated)
    down, up = net.down.counters.delivered - delivered, len(wire["up"])
    assert down >= 8
    # One close at first, then at most one answer per power of two datagrams received.
    assert 2 <= up <= 2 + down.bit_length()


def test_closed_connections_hold_no_reference_cycle() -> None:
    """Closed connections with streams still open both ways are freed by reference counting
    alone: their streams, TLS and recovery state hold no reference cycle."""
    with cyclic_garbage() as leaked:
        _close_with_streams_open()  # everything it made is unreferenced once it returns
    assert leaked == []


def _close_with_streams_open() -> None:
    net = make_net(link=LinkSpec(delay=0.01))
    c, s = connected(net)
    for _ in range(3):
        sid = net.client.open_stream()
        net.client.send_stream_data(sid, b"unfinished request")
    net.settle(c, s, duration=0.1)
    assert net.server._streams._streams, "the server must have open streams at close"
    client, server = net.client, net.server
    client.close(now=net.now)
    assert net.run_until(lambda: client.is_closed and server.is_closed, c, s, timeout=5)

"""The relay as a shared bottleneck, over real UDP on loopback: several servers behind one
link (``more_upstreams``), per-flow byte counts, and the queueing-delay record."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import pytest
from test_netem_relay import STAMP, udp

from quicish.netem import Counters, LinkConfig, Netem
from quicish.netem.counters import DELAY_BIN, FlowCounters, QueueDelay


@pytest.fixture
def servers() -> Iterator[list[socket.socket]]:
    socks = [udp(), udp()]
    yield socks
    for sock in socks:
        sock.close()


def _drain(sock: socket.socket, into: list[tuple[float, bytes, tuple[str, int]]]) -> None:
    while True:
        try:
            data, source = sock.recvfrom(65535)
        except BlockingIOError:
            return
        into.append((time.monotonic(), data, source[:2]))


def test_queue_delay_percentiles_and_round_trip() -> None:
    q = QueueDelay()
    assert q.percentile(50) == 0.0 and q.mean == 0.0
    for ms in (0, 0, 1, 2, 10):
        q.add(ms / 1000)
    assert q.count == 5 and q.max == pytest.approx(0.010)
    assert q.mean == pytest.approx(0.0026)
    assert q.percentile(50) == pytest.approx(0.001 + DELAY_BIN)  # the bin's upper edge
    assert q.percentile(20) == pytest.approx(DELAY_BIN)
    assert q.percentile(100) == pytest.approx(0.010)
    back = QueueDelay.from_dict(q.to_dict())
    assert back == q
    counters = Counters(flows=[FlowCounters("127.0.0.1:1", "127.0.0.1:2", 10, 1, 20, 2)])
    counters.to_server.queue_delay = q
    assert Counters.from_dict(counters.to_dict()) == counters


def test_two_servers_behind_one_relay(servers: list[socket.socket]) -> None:
    a, b = servers
    clients = [udp(), udp()]
    try:
        with Netem(
            a.getsockname(), more_upstreams=(b.getsockname(),), both=LinkConfig(delay_ms=2)
        ) as relay:
            assert len(relay.addresses) == 2 and relay.addresses[0] == relay.address
            clients[0].sendto(b"to a", relay.addresses[0])
            clients[1].sendto(b"to b" + bytes(96), relay.addresses[1])
            got: dict[socket.socket, bytes] = {}
            while len(got) < 2:
                readable, _, _ = select.select([a, b], [], [], 2.0)
                assert readable, "a datagram did not arrive"
                for sock in readable:
                    data, source = sock.recvfrom(200)
                    got[sock] = data
                    sock.sendto(b"reply " + data[:4], source)
            replies = []
            for sock in clients:
                assert select.select([sock], [], [], 2.0)[0]
                replies.append(sock.recvfrom(200)[0])
            live = relay.counters()
        assert got[a] == b"to a" and got[b].startswith(b"to b")
        assert replies == [b"reply to a", b"reply to b"]
        flows = {f.upstream: f for f in live.flows}
        host, port = a.getsockname()
        flow_a = flows[f"{host}:{port}"]
        host, port = b.getsockname()
        flow_b = flows[f"{host}:{port}"]
        assert (flow_a.to_server_packets, flow_a.to_server_bytes) == (1, 4)
        assert (flow_b.to_server_packets, flow_b.to_server_bytes) == (1, 100)
        assert (flow_a.to_client_bytes, flow_b.to_client_bytes) == (10, 10)
        host, port = clients[0].getsockname()[:2]
        assert flow_a.client == f"{host}:{port}"
    finally:
        for sock in clients:
            sock.close()


def test_two_flows_share_the_rate_and_the_queue(servers: list[socket.socket]) -> None:
    """Two clients, each offering the whole link rate, to two servers: together they get
    the link's rate (not twice it), about half each, and the shared queue drops the rest."""
    a, b = servers
    rate = 8.0  # Mbit/s: a 1000-byte packet takes 1 ms
    count, interval = 300, 0.001  # per client: 300 packets at 1 per ms (the link rate)
    clients = [udp(), udp()]
    arrivals: dict[socket.socket, list[tuple[float, bytes, tuple[str, int]]]] = {a: [], b: []}
    pad = bytes(1000 - STAMP.size)
    try:
        with Netem(
            a.getsockname(),
            more_upstreams=(b.getsockname(),),
            to_server=LinkConfig(rate_mbit=rate, queue=20),
        ) as relay:
            start = time.monotonic()
            sent = 0
            while sent < count:
                now = time.monotonic()
                while sent < count and start + sent * interval <= now:
                    order = (0, 1) if sent % 2 else (1, 0)  # no flow always first
                    for i in order:
                        clients[i].sendto(STAMP.pack(sent, now) + pad, relay.addresses[i])
                    sent += 1
                readable, _, _ = select.select([a, b], [], [], 0.0005)
                for sock in readable:
                    _drain(sock, arrivals[sock])
            quiet = time.monotonic() + 0.2
            while time.monotonic() < quiet:
                for sock in select.select([a, b], [], [], 0.05)[0]:
                    _drain(sock, arrivals[sock])
            final = relay.stop()
        got_a, got_b = len(arrivals[a]), len(arrivals[b])
        both = sorted(at for sock in (a, b) for at, _, _ in arrivals[sock])
        span = both[-1] - both[0]
        measured = (len(both) - 1) * 1000 * 8 / span / 1e6
        assert measured == pytest.approx(rate, rel=0.15)  # one link, not one per flow
        assert final.to_server.dropped_queue >= 0.3 * 2 * count
        assert got_a + got_b == final.to_server.forwarded
        assert 0.3 <= got_a / (got_a + got_b) <= 0.7
        per_flow = sorted(f.to_server_packets for f in final.flows)
        assert per_flow == sorted([got_a, got_b])
        # The queue stayed full: most packets waited close to 20 ms (20 packets of 1 ms).
        delay = final.to_server.queue_delay
        assert delay.count == final.to_server.forwarded
        assert 0.012 <= delay.percentile(50) <= 0.0215
        assert delay.max <= 0.0215
    finally:
        for sock in clients:
            sock.close()


def test_queue_delay_is_zero_on_an_idle_link(servers: list[socket.socket]) -> None:
    a, _ = servers
    client = udp()
    try:
        with Netem(a.getsockname(), to_server=LinkConfig(rate_mbit=8.0)) as relay:
            for i in range(20):  # one 1000-byte packet (1 ms) every 5 ms: never queued
                client.sendto(STAMP.pack(i, time.monotonic()) + bytes(988), relay.address)
                time.sleep(0.005)
            time.sleep(0.05)
            final = relay.stop()
        delay = final.to_server.queue_delay
        assert delay.count == 20
        assert delay.percentile(90) <= DELAY_BIN
        assert final.to_client.queue_delay.count == 0  # no rate limit that way
    finally:
        client.close()

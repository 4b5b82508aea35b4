"""Tracer hook (qlog-style events) and stream priorities of the sans-IO connection."""

from __future__ import annotations

from pairs import Peer, make_net

from quicish.simlink import LinkSpec


def test_tracer_sees_sent_received_lost_and_metrics() -> None:
    lossy = LinkSpec(delay=0.01, loss=0.05)
    net = make_net(to_server=lossy, seed=7)
    seen: dict[str, int] = {}
    net.client.tracer = lambda name, data: seen.__setitem__(name, seen.get(name, 0) + 1)
    server_log = Peer(net.server)
    assert net.run(lambda: net.client.handshake_complete, 10)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(300_000), end_stream=True)
    assert net.run_until(lambda: sid in server_log.finished, server_log, timeout=60)
    stats = net.client.stats()
    assert seen["packet_sent"] >= stats.packets_sent - 10  # tracer attached after connect
    assert seen["packet_received"] > 0
    assert seen["packet_lost"] == stats.packets_lost > 0
    assert seen["recovery_metrics_updated"] > 0
    net.client.tracer = None
    before = dict(seen)
    net.client.send_stream_data(net.client.open_stream(), b"x", end_stream=True)
    net.run(lambda: False, 0.5)
    assert seen == before  # detached: no more calls


def test_lower_priority_value_is_sent_first() -> None:
    net = make_net()
    log = Peer(net.server)
    assert net.run(lambda: net.client.handshake_complete, 5)
    low, high = net.client.open_stream(), net.client.open_stream()
    net.client.set_stream_priority(high, -1)
    net.client.send_stream_data(low, bytes(100_000), end_stream=True)
    net.client.send_stream_data(high, bytes(100_000), end_stream=True)
    order: list[int] = []

    def until() -> bool:
        log.poll()
        for sid in (low, high):
            if sid in log.finished and sid not in order:
                order.append(sid)
        return len(order) == 2

    assert net.run(until, 30)
    assert order == [high, low]

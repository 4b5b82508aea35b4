"""ECN (RFC 9000 section 13.4): codepoints counted per packet-number space, reported in
ACK_ECN frames, and CE marks answered by the congestion controller without any loss."""

from __future__ import annotations

import select

from pairs import FrameSpy, Sender, connected, make_net

from quicish.proto.packet_space import APPLICATION
from quicish.simlink import LinkSpec
from quicish.udp import ECT0, UdpSocket
from quicish.wire import frames as F


def test_ack_frames_report_ect0_counts() -> None:
    net = make_net(link=LinkSpec(delay=0.01, ecn=ECT0))
    client, server = connected(net)
    spy = FrameSpy(net.server)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, bytes(400_000))
    delivered = lambda: sid in server.finished  # noqa: E731
    assert net.run_until(delivered, client, server, timeout=30, hook=sender.pump)
    acks = spy.of(F.AckFrame)
    assert acks and all(a.ecn is not None for a in acks)
    ect0 = [a.ecn[0] for a in acks if a.ecn is not None]
    assert ect0 == sorted(ect0)  # counts never decrease
    space = net.server._spaces[APPLICATION]
    assert 0 < ect0[-1] <= space.ecn_counts[0]
    assert space.ecn_counts[1] == space.ecn_counts[2] == 0


def test_no_ecn_reported_without_marks() -> None:
    net = make_net(link=LinkSpec(delay=0.01))
    client, server = connected(net)
    spy = FrameSpy(net.server)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, bytes(100_000))
    delivered = lambda: sid in server.finished  # noqa: E731
    assert net.run_until(delivered, client, server, timeout=30, hook=sender.pump)
    assert spy.of(F.AckFrame) and all(a.ecn is None for a in spy.of(F.AckFrame))


def test_congestion_experienced_reduces_window_without_loss() -> None:
    marked = LinkSpec(delay=0.01, ecn=ECT0, congestion_marks=0.02)
    net = make_net(to_server=marked, to_client=LinkSpec(delay=0.01, ecn=ECT0), seed=3)
    client, server = connected(net)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, bytes(2_000_000))
    delivered = lambda: sid in server.finished  # noqa: E731
    assert net.run_until(delivered, client, server, timeout=60, hook=sender.pump)
    assert net.up.counters.ce_marked > 0
    cc = net.client._recovery.cc
    assert cc.congestion_events > 0  # CE answered like a loss...
    assert net.client.stats().packets_lost == 0  # ...though nothing was lost
    ce_counted = net.server._spaces[APPLICATION].ecn_counts[2]
    assert 0 < ce_counted <= net.up.counters.ce_marked


def test_udp_socket_marks_ect0_and_reads_the_codepoint() -> None:
    a = UdpSocket.bind("127.0.0.1", 0)
    b = UdpSocket.bind("127.0.0.1", 0)
    try:
        assert a.ecn and b.ecn
        assert a.send([b"x" * 100], b.address) == []
        assert select.select([b.sock], [], [], 5.0)[0]
        ((data, addr, ecn),) = b.receive()
        assert data == b"x" * 100 and addr == a.address and ecn == ECT0
    finally:
        a.close()
        b.close()

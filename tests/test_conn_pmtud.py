"""Path MTU discovery in the sans-IO engine (RFC 9000 14.3, RFC 8899) on the simulated
network: the ceiling reached, the peer's max_udp_payload_size honoured, a path with a
smaller MTU (datagrams over N bytes dropped) settled below it without congestion response,
black holes, a new path, discovery off, the qlog event."""

from __future__ import annotations

import random
from typing import Any

from pairs import Net, Peer, connected, make_net, make_path_pair

from quicish.proto import events as ev
from quicish.proto.pmtud import BASE_PLPMTU, MAX_PROBES, MIN_STEP
from quicish.simlink import LinkSpec
from quicish.wire.packet import PacketType, parse_header
from quicish.wire.transport_params import TransportParameters

BIG = {"max_data": 16 << 20, "max_stream_data": 8 << 20}
DATA = random.Random(19).randbytes(1 << 20)
LINK = LinkSpec(delay=0.01, bandwidth=50e6, queue=100_000)  # 50 Mbit/s, 20 ms RTT, no drops


def upload(net: Net, c: Peer, s: Peer, data: bytes = DATA, timeout: float = 30.0) -> int:
    """The client sends ``data`` on a new stream; returns the stream id once all arrived."""
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, data, end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=timeout), "not delivered"
    assert bytes(s.data[sid]) == data
    return sid


def sizes(net: Net, up: bool) -> list[int]:
    return [len(d) for _, is_up, d, _ in net.wire if is_up == up]


def mtu_path(limit: int) -> Any:
    """A drop filter: the path carries UDP payloads of at most ``limit`` bytes."""
    return lambda direction, index, data, now: len(data) > limit


def test_small_answers_go_without_a_probe_ahead_of_them() -> None:
    """A message smaller than a probe (a request, its answer) is not held up behind an MTU
    probe: no probe while only small writes wait; the first probe goes with bulk data."""
    net = make_net(client_kw=BIG, server_kw=BIG)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    for _ in range(5):
        upload(net, c, s, data=bytes(64))
        net.settle(c, s, duration=0.05)
    assert net.client.stats().mtu_probes_sent == 0
    assert net.client.stats().max_datagram_size == BASE_PLPMTU
    upload(net, c, s)
    st = net.client.stats()
    assert (st.max_datagram_size, st.mtu_probes_sent) == (1452, 1)


def test_quicish_pair_reaches_the_default_ceiling_with_one_probe() -> None:
    net = make_net(client_kw=BIG, server_kw=BIG)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    # nothing to send, no probe: an idle connection stays at 1200 bytes
    net.settle(c, s, duration=0.5)
    assert net.client.stats().mtu_probes_sent == 0
    assert net.client.stats().max_datagram_size == BASE_PLPMTU
    start = len(net.wire)
    upload(net, c, s)
    st = net.client.stats()
    assert (st.max_datagram_size, st.mtu_probes_sent, st.mtu_probes_lost) == (1452, 1, 0)
    up = [len(d) for _, is_up, d, _ in net.wire[start:] if is_up]
    assert max(up) == 1452 and up.count(1452) > 600  # the 1 MB went in 1452-byte datagrams
    # the congestion controller and the pacer moved with the builder
    assert net.client._recovery.cc.max_datagram_size == net.client._pacer.max_datagram_size == 1452
    assert net.client._recovery.cc.minimum_window == 2 * 1452


def test_the_ceiling_is_configurable_and_the_peer_limit_is_honoured() -> None:
    # the client may go to 9000, the server only receives 4000 (and says so)
    net = make_net(
        client_kw={**BIG, "max_datagram_size": 9000},
        server_kw={**BIG, "max_datagram_size": 4000},
    )
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    params = net.client._handshake.peer_params
    assert isinstance(params, TransportParameters) and params.max_udp_payload_size == 4000
    upload(net, c, s)
    assert net.client.stats().max_datagram_size == 4000
    assert max(sizes(net, up=True)) == 4000
    # and a Config of 65527 reaches 65527 on a path that carries it (the probe waits
    # until the congestion window has room for it)
    net = make_net(
        client_kw={**BIG, "max_datagram_size": 65527},
        server_kw={**BIG, "max_datagram_size": 65527},
    )
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    upload(net, c, s)
    upload(net, c, s)
    assert net.client.stats().max_datagram_size == 65527
    assert max(sizes(net, up=True)) == 65527 and net.client.stats().mtu_probes_sent == 1


def test_a_path_with_a_smaller_mtu_settles_below_it_without_congestion_response() -> None:
    """The path drops every datagram over 1350 bytes (both ways): the search gives up 1452
    after MAX_PROBES lost probes, settles within MIN_STEP below 1350, the transfer is
    byte-exact and never stalls, and no lost probe counted as congestion."""
    limit = 1350
    net = make_net(client_kw=BIG, server_kw=BIG, link=LINK)
    net.drop = mtu_path(limit)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    t0 = net.now
    upload(net, c, s, DATA * 4, timeout=10.0)
    elapsed = net.now - t0
    st = net.client.stats()
    assert limit - MIN_STEP < st.max_datagram_size <= limit
    assert st.mtu_probes_lost >= MAX_PROBES and st.packets_lost == st.mtu_probes_lost
    assert net.dropped["up"] == st.mtu_probes_lost  # only probes were too big
    cc = net.client._recovery.cc
    assert cc.congestion_events == 0 and cc.recovery_start_time == float("-inf")
    # every datagram over the limit was a probe: the data went at the found size
    assert sum(n > limit for n in sizes(net, up=True)) == st.mtu_probes_lost
    # no stall: the same transfer on a clean path at 1200 bytes is not much faster
    ref = make_net(client_kw={**BIG, "max_datagram_size": 1200}, server_kw=BIG, link=LINK)
    rc, rs = Peer(ref.client), Peer(ref.server)
    connected(ref, rc, rs)
    r0 = ref.now
    upload(ref, rc, rs, DATA * 4)
    assert elapsed < 1.5 * (ref.now - r0) + 0.1, (elapsed, ref.now - r0)


def test_a_black_hole_drops_back_to_1200_and_the_search_finds_the_new_mtu() -> None:
    """At 1452 the path starts dropping everything over 1280 bytes (a tunnel came up):
    after BLACK_HOLE_PTOS probe timeouts the sender goes back to 1200, the data flows
    again and a new search settles below 1280."""
    net = make_net(client_kw=BIG, server_kw=BIG, link=LINK)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    upload(net, c, s, DATA[:200_000])
    assert net.client.stats().max_datagram_size == 1452
    net.drop = mtu_path(1280)
    upload(net, c, s, DATA * 4, timeout=30.0)
    st = net.client.stats()
    assert st.mtu_black_holes == 1
    assert 1280 - MIN_STEP < st.max_datagram_size <= 1280
    assert c.terminated is None and s.terminated is None


def test_a_new_path_starts_again_at_1200() -> None:
    net, c, s = make_path_pair(client_kw=BIG, server_kw=BIG)
    connected(net, c, s)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"GET\r\n", end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=2)
    net.server.send_stream_data(sid, DATA, end_stream=True)
    assert net.run_until(lambda: len(c.data.get(sid, b"")) > 300_000, c, s, timeout=10)
    assert net.server.stats().max_datagram_size == 1452
    seen: list[tuple[int | None, int]] = []
    net.server.tracer = lambda name, data: (
        seen.append((data.get("old"), data["new"])) if name == "mtu_updated" else None
    )
    net.client_addrs[0] = ("10.0.9.9", 40000)  # a new IP address: a new path
    assert net.run_until(lambda: sid in c.finished, c, s, timeout=30)
    assert bytes(c.data[sid]) == DATA
    assert seen[:2] == [(1452, 1200), (1200, 1452)]
    assert net.server.stats().mtu_probes_sent == 2


def test_discovery_off_sends_max_datagram_size_from_the_start() -> None:
    net = make_net(
        client_kw={**BIG, "pmtud": False, "max_datagram_size": 1400},
        server_kw={**BIG, "pmtud": False, "max_datagram_size": 1400},
    )
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    upload(net, c, s, DATA[:100_000])
    st = net.client.stats()
    assert (st.max_datagram_size, st.mtu_probes_sent) == (1400, 0)
    assert max(sizes(net, up=True)) == 1400


def test_max_datagram_size_1200_fixes_the_size() -> None:
    net = make_net(client_kw={**BIG, "max_datagram_size": 1200}, server_kw=BIG)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    sid = upload(net, c, s, DATA[:300_000])
    assert net.client.stats().mtu_probes_sent == 0
    assert max(sizes(net, up=True)) == 1200
    # the server was told: its answers stay at 1200 too
    net.server.send_stream_data(sid, DATA[:300_000], end_stream=True)
    assert net.run_until(lambda: sid in c.finished, c, s, timeout=10)
    assert net.server.stats().mtu_probes_sent == 0 and max(sizes(net, up=False)) == 1200


def test_the_probe_is_ping_and_padding_and_the_change_is_traced() -> None:
    net = make_net(client_kw=BIG, server_kw=BIG)
    c, s = Peer(net.client), Peer(net.server)
    events: list[tuple[str, dict[str, Any]]] = []
    net.client.tracer = lambda name, data: events.append((name, data))
    connected(net, c, s)
    upload(net, c, s, DATA[:100_000])
    updates = [d for name, d in events if name == "mtu_updated"]
    assert updates == [{"old": 1200, "new": 1452, "done": True}]
    probes = [d for name, d in events if name == "packet_sent" and d["raw"]["length"] == 1452]
    frames = probes[0]["frames"]
    assert [f["frame_type"] for f in frames] == ["ping", "padding"]
    # on the wire: one 1-RTT packet filling the datagram
    (probe,) = [d for _, up, d, _ in net.wire if up and len(d) == 1452][:1]
    header = parse_header(probe, 0, short_dcid_len=8)
    assert header.packet_type == PacketType.ONE_RTT and header.packet_end == 1452


def test_queued_datagrams_that_no_longer_fit_are_dropped_when_the_size_falls() -> None:
    kw = {**BIG, "max_datagram_frame_size": 65536}
    net = make_net(client_kw=kw, server_kw=kw)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    upload(net, c, s, DATA[:100_000])
    assert net.client.stats().max_datagram_size == 1452
    net.client.send_datagram(b"big" * 400)  # 1200 bytes: fits 1452, not 1200
    net.client.send_datagram(b"small")
    net.client._builder.set_datagram_size(BASE_PLPMTU, net.now)  # (as a black hole does)
    assert list(net.client._builder.datagrams_out or ()) == [b"small"]
    assert net.run_until(lambda: bool(s.of(ev.DatagramReceived)), c, s, timeout=1)
    net.settle(c, s, duration=0.2)
    assert [e.data for e in s.of(ev.DatagramReceived)] == [b"small"]

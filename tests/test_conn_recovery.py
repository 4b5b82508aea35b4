"""Loss recovery and congestion control through two connections (RFC 9002): PTO after a
blackout, RTT estimation, ACK pacing, slow start, one reduction per loss episode,
persistent congestion."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest
from pairs import FrameSpy, Net, Peer, Sender, connected, datagram_types, make_net, wire_frames
from support import patch_method

from quicish.proto.congestion.base import initial_window
from quicish.simlink import LinkSpec
from quicish.wire import frames as F
from quicish.wire.packet import PacketType

BIG = {"max_data": 16 << 20, "max_stream_data": 8 << 20}
RENO = {**BIG, "congestion_control": "newreno"}


def start_transfer(net: Net, size: int, seed: int = 1) -> tuple[Peer, Peer, int, bytes, Sender]:
    c, s = connected(net)
    data = random.Random(seed).randbytes(size)
    sid = net.client.open_stream()
    return c, s, sid, data, Sender(net.client, sid, data)


class PtoWatch:
    def __init__(self, net: Net) -> None:
        self.net = net
        self.max_pto = 0
        self.probe_times: list[float] = []

    def __call__(self) -> None:
        count = self.net.client.stats().pto_count
        if count > self.max_pto:
            self.max_pto = count
            self.probe_times.append(self.net.now)


def test_pto_recovers_after_two_second_blackout() -> None:
    blackout = (0.6, 2.6)
    link = LinkSpec(delay=0.01, bandwidth=8e6, queue=50, blackout=blackout)
    net = make_net(link=link, client_kw=BIG, server_kw=BIG)
    c, s, sid, data, sender = start_transfer(net, 2 << 20)
    assert net.now < blackout[0]
    watch = PtoWatch(net)

    def hook() -> None:
        sender.pump()
        watch()

    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60, hook=hook)
    assert bytes(s.data[sid]) == data
    assert c.terminated is None and s.terminated is None
    assert net.up.counters.blackout_drops > 10
    # The PTO backed off exponentially during the blackout: 1, 2, 4, ... periods.
    assert watch.max_pto >= 4
    gaps = [b - a for a, b in zip(watch.probe_times, watch.probe_times[1:], strict=False)]
    assert all(b > 1.8 * a for a, b in itertools.pairwise(gaps)), gaps
    # The first probe after the blackout got through and recovery resumed promptly: the
    # PTO period at the end of the blackout is below 2.5 s.
    assert watch.probe_times[-1] < blackout[1] + 2.5
    assert net.client.stats().pto_count == 0


def test_blackhole_pattern_transfer_completes() -> None:
    """The interop "blackhole": the link goes dark for 2 s after every 5 s."""
    link = LinkSpec(delay=0.015, bandwidth=5e6, queue=50)
    net = make_net(link=link, client_kw=BIG, server_kw=BIG)
    c, s, sid, data, sender = start_transfer(net, 4 << 20, seed=2)
    net.drop = lambda direction, index, d, now: (now % 7.0) >= 5.0
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=200, hook=sender.pump)
    assert bytes(s.data[sid]) == data
    assert sum(net.dropped.values()) > 0
    assert net.now > 7.0  # it did run into the dark periods


def test_rtt_estimate_matches_path() -> None:
    net = make_net(link=LinkSpec(delay=0.05), client_kw=BIG, server_kw=BIG)
    c, s, sid, _data, sender = start_transfer(net, 500_000)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=30, hook=sender.pump)
    st = net.client.stats()
    assert st.min_rtt == pytest.approx(0.1, abs=1e-9)
    # Delayed ACKs (max_ack_delay 25 ms) are subtracted: smoothed stays near the path RTT.
    assert 0.1 <= st.smoothed_rtt < 0.115
    assert st.latest_rtt >= 0.1


def test_ack_every_second_packet_and_delayed_ack() -> None:
    net = make_net(client_kw=BIG, server_kw=BIG)
    c, s, sid, _data, sender = start_transfer(net, 1 << 20)
    before_c, before_s = net.client.stats(), net.server.stats()
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=30, hook=sender.pump)
    sent = net.client.stats().packets_sent - before_c.packets_sent
    acks = net.server.stats().packets_sent - before_s.packets_sent
    assert 0.4 < acks / sent < 0.62, (acks, sent)
    # A lone ack-eliciting packet is acknowledged after max_ack_delay (25 ms), not at once.
    times: list[tuple[str, float]] = []
    net.taps.append(lambda d, data, now: times.append((d, now)))
    net.settle(c, s, duration=0.5)
    times.clear()
    net.client.send_stream_data(net.client.open_stream(), b"x", end_stream=True)
    net.settle(c, s, duration=0.5)
    up = [t for d, t in times if d == "up"]
    down = [t for d, t in times if d == "down"]
    assert len(up) == 1 and len(down) == 1
    assert down[0] - (up[0] + 0.01) == pytest.approx(0.025, abs=1e-6)


def test_gap_triggers_immediate_ack() -> None:
    """A packet arriving after a gap is acknowledged at once (RFC 9000 13.2.1)."""
    net = make_net(client_kw=BIG, server_kw=BIG)
    c, s = connected(net)
    times: list[tuple[str, float, int]] = []
    dropped: list[int] = []

    def drop(direction: str, index: int, data: bytes, now: float) -> bool:
        if direction == "up" and not dropped and len(data) > 1000:
            dropped.append(index)
            return True
        return False

    net.drop = drop
    net.taps.append(lambda d, data, now: times.append((d, now, len(data))))
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(3000))  # three packets, the first is lost
    net.settle(c, s, duration=0.3)
    up = [t for d, t, _ in times if d == "up"]
    down = [t for d, t, _ in times if d == "down"]
    assert dropped and down[0] == pytest.approx(up[1] + 0.01, abs=1e-9)
    assert bytes(s.data[sid]) == bytes(3000)


class CcAudit:
    """Checks every congestion controller call of a connection against RFC 9002 7.3."""

    def __init__(self, net: Net) -> None:
        self.cc = cc = net.client._recovery.cc
        self.growth_checks = 0
        self.reductions: list[tuple[float, int, int]] = []  # (now, cwnd before, after)
        self.persistent: list[int] = []
        acked = cc.on_ack
        event = cc.on_congestion_event
        persistent = cc.on_persistent_congestion

        def on_acked(
            counted: int, largest_sent: float, now: float, rtt: Any, prior: int | None = None
        ) -> None:
            # Recovery counts only in-flight packets sent outside the recovery period.
            assert not counted or not cc.in_recovery(largest_sent)
            before, ssthresh = cc.cwnd, cc.ssthresh
            limited = prior is None or cc.is_cwnd_limited(prior)
            acked(counted, largest_sent, now, rtt, prior)
            if not counted or not limited:
                assert cc.cwnd == before  # app-limited or in recovery: no growth
            elif before + counted <= ssthresh:
                assert cc.cwnd == before + counted  # slow start: +bytes acked
                self.growth_checks += 1
            else:
                assert before <= cc.cwnd <= before + counted

        def on_event(sent_time: float, now: float) -> bool:
            before = cc.cwnd
            reduced = event(sent_time, now)
            if reduced:
                self.reductions.append((now, before, cc.cwnd))
            else:
                assert cc.cwnd == before
            return reduced

        def on_persistent() -> None:
            persistent()
            self.persistent.append(cc.cwnd)

        patch_method(cc, "on_ack", on_acked)
        patch_method(cc, "on_congestion_event", on_event)
        patch_method(cc, "on_persistent_congestion", on_persistent)


def test_slow_start_grows_by_bytes_acked() -> None:
    net = make_net(link=LinkSpec(delay=0.02), client_kw=RENO, server_kw=BIG)
    audit = CcAudit(net)
    c, s, sid, _data, sender = start_transfer(net, 2 << 20)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=30, hook=sender.pump)
    cc = net.client._recovery.cc
    assert cc.cwnd == net.client.stats().cwnd
    assert cc.ssthresh == math.inf and cc.congestion_events == 0
    assert audit.growth_checks > 50 and not audit.reductions
    assert cc.cwnd > 20 * initial_window(1200)


def _drop_burst(net: Net, first: int, count: int) -> list[int]:
    """Drop ``count`` consecutive data datagrams to the server from the ``first``-th on."""
    hits: list[int] = []

    def drop(direction: str, index: int, data: bytes, now: float) -> bool:
        if direction == "up" and len(data) > 1000 and first <= index < first + count:
            hits.append(index)
            return True
        return False

    net.drop = drop
    return hits


@pytest.mark.parametrize(("algo", "beta"), [("newreno", 0.5), ("cubic", 0.7)])
def test_one_reduction_per_loss_episode(algo: str, beta: float) -> None:
    """Five packets of one flight are lost: one congestion event, cwnd * beta; a later,
    separate loss is a second event."""
    net = make_net(
        link=LinkSpec(delay=0.02), client_kw={**BIG, "congestion_control": algo}, server_kw=BIG
    )
    audit = CcAudit(net)
    c, s, sid, data, sender = start_transfer(net, 3 << 20)
    hits = _drop_burst(net, 60, 5)
    cc = net.client._recovery.cc
    assert net.run_until(lambda: len(audit.reductions) >= 1, c, s, timeout=30, hook=sender.pump)
    assert len(hits) == 5
    # Let recovery finish: all five were declared lost, in one episode.
    net.run_until(lambda: net.client.stats().packets_lost >= 5, c, s, timeout=5, hook=sender.pump)
    net.settle(c, s, duration=0.2, hook=sender.pump)
    assert net.client.stats().packets_lost == 5
    assert len(audit.reductions) == 1
    _, before, after = audit.reductions[0]
    assert after == max(int(before * beta), cc.minimum_window)
    assert cc.ssthresh == after
    # A second, separate loss episode later: a second reduction.
    second = _drop_burst(net, net.index["up"] + 30, 1)
    assert net.run_until(lambda: len(audit.reductions) == 2, c, s, timeout=10, hook=sender.pump)
    assert len(second) == 1
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60, hook=sender.pump)
    assert bytes(s.data[sid]) == data
    assert cc.congestion_events == 2 and not audit.persistent


def test_persistent_congestion_collapses_window() -> None:
    """Everything sent during a 1.5 s outage of the path to the server is lost, spanning
    more than the persistent congestion duration: cwnd falls to the minimum window."""
    net = make_net(link=LinkSpec(delay=0.02), client_kw=RENO, server_kw=BIG)
    audit = CcAudit(net)
    c, s, sid, data, sender = start_transfer(net, 3 << 20)
    assert net.run_until(
        lambda: net.client._recovery.cc.cwnd > 100_000, c, s, timeout=10, hook=sender.pump
    )
    t0 = net.now
    net.drop = lambda direction, index, d, now: direction == "up" and t0 <= now < t0 + 1.5
    assert net.run_until(lambda: bool(audit.persistent), c, s, timeout=10, hook=sender.pump)
    cc = net.client._recovery.cc
    assert audit.persistent == [2 * 1200] and cc.minimum_window == 2400
    assert net.client._recovery.persistent_congestion_events == 1
    # min_rtt was reset to the latest sample (RFC 9002 5.2), and the transfer recovers.
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60, hook=sender.pump)
    assert bytes(s.data[sid]) == data


def test_short_loss_burst_is_not_persistent_congestion() -> None:
    net = make_net(link=LinkSpec(delay=0.02), client_kw=RENO, server_kw=BIG)
    audit = CcAudit(net)
    c, s, sid, data, sender = start_transfer(net, 2 << 20)
    _drop_burst(net, 40, 8)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60, hook=sender.pump)
    assert bytes(s.data[sid]) == data
    assert audit.persistent == [] and len(audit.reductions) == 1


def test_lost_packet_contents_resent_in_new_packets() -> None:
    """Dropped STREAM bytes come back in packets with new numbers; the receiver sees every
    number at most once (apart from link duplicates)."""
    net = make_net(link=LinkSpec(delay=0.01), client_kw=BIG, server_kw=BIG)
    c, s, sid, data, sender = start_transfer(net, 300_000)
    lost_ranges: list[tuple[int, int]] = []
    resent: list[tuple[int, int]] = []

    def drop(direction: str, index: int, d: bytes, now: float) -> bool:
        if direction != "up":
            return False
        frames = wire_frames(net.server, d) or []
        streams = [(f.offset, len(f.data)) for f in frames if isinstance(f, F.StreamFrame)]
        if streams and index % 17 == 5:
            lost_ranges.extend(streams)
            return True
        for off, n in streams:
            if any(a <= off < a + m for a, m in lost_ranges):
                resent.append((off, n))
        return False

    net.drop = drop
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=30, hook=sender.pump)
    assert bytes(s.data[sid]) == data
    assert lost_ranges and len(resent) >= len(lost_ranges)
    assert net.client.stats().stream_bytes_retransmitted >= sum(n for _, n in lost_ranges)


def test_probes_repeat_unacknowledged_stream_data() -> None:
    """RFC 9002 6.2.4: with nothing new to send, a PTO probe carries the oldest unacknowledged
    data (not a bare PING), so one probe that gets through repairs the loss even while every
    ACK is lost."""
    net = make_net(link=LinkSpec(delay=0.01))
    client, server = connected(net)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"GET /x\r\n", end_stream=True)
    assert net.run_until(lambda: sid in server.finished, client, server, timeout=5)
    spy = FrameSpy(net.server)
    start = net.now
    net.down.spec.blackout = (start, start + 3.0)  # everything to the client is lost for 3 s
    net.server.send_stream_data(sid, b"x" * 1000, end_stream=True)
    net.run_until(lambda: net.now > start + 2.9, client, server, timeout=5)
    copies = [f for f in spy.of(F.StreamFrame) if f.stream_id == sid and f.offset == 0]
    assert len(copies) >= 3  # the original and the data repeated by at least two probes
    assert net.run_until(lambda: sid in client.finished, client, server, timeout=30)
    assert bytes(client.data[sid]) == b"x" * 1000


def test_probe_repeats_data_not_already_repeated() -> None:
    """RFC 9002 6.2.4 probes repeat the oldest unacknowledged data. When no ACK comes
    back, the oldest packets are the first data and its earlier probe copies; the probe
    must not fill both packets with that same data while newer lost data (a response)
    waits: it takes the two oldest packets that add something."""
    from quicish.proto.packet_space import APPLICATION
    from quicish.simlink import SERVER_ADDR

    net = make_net()
    c, s = connected(net)
    net.settle(c, s, duration=0.5)
    client, server = net.client, net.server
    now = net.now
    sid = server.open_stream()
    server.send_stream_data(sid, b"a" * 300)
    assert server.datagrams_to_send(now)  # lost
    for _ in range(2):
        server._builder.arm_probe(APPLICATION)
        assert server.datagrams_to_send(now)  # the probe copies of "a": lost too
    server.send_stream_data(sid, b"b" * 300)
    assert server.datagrams_to_send(now)  # the response: lost
    server._builder.arm_probe(APPLICATION)
    probes = server.datagrams_to_send(now)
    assert probes and all(wire_frames(client, d) is not None for d, _ in probes)
    for datagram, _ in probes:
        client.receive_datagram(datagram, SERVER_ADDR, now)
    c.poll()
    assert bytes(c.data[sid]) == b"a" * 300 + b"b" * 300


def test_server_answers_late_handshake_probes_with_handshake_done() -> None:
    """A client that still sends Handshake packets after the server dropped its Handshake
    keys has not heard HANDSHAKE_DONE: the server sends it at once (not at its own,
    backed-off probe timeout), and stops once a HANDSHAKE_DONE was acknowledged."""
    from quicish.simlink import CLIENT_ADDR
    from quicish.wire.packet import PacketType, encode_long_header

    net = make_net()
    c, s = connected(net)
    net.settle(c, s, duration=0.5)
    client, server = net.client, net.server
    now = net.now
    assert server._builder.handshake_done_acked  # the normal handshake got it acknowledged
    body = bytes(40)
    late = (
        encode_long_header(
            PacketType.HANDSHAKE,
            server.version,
            server.host_cid,
            client.host_cid,
            b"",
            len(body),
            7,
            1,
        )
        + body
    )

    def answer() -> list[Any]:
        dropped = server.stats().packets_dropped
        server.receive_datagram(late, CLIENT_ADDR, now)
        assert server.stats().packets_dropped == dropped + 1  # undecryptable: dropped
        return [f for d, _ in server.datagrams_to_send(now) for f in wire_frames(client, d) or []]

    assert not any(isinstance(f, F.HandshakeDoneFrame) for f in answer())
    server._builder.handshake_done_acked = False  # as if every HANDSHAKE_DONE had been lost
    assert any(isinstance(f, F.HandshakeDoneFrame) for f in answer())


@pytest.mark.parametrize("split", [False, True], ids=["one-flight", "split-flight"])
def test_server_probe_repeats_initial_and_handshake_together(split: bool) -> None:
    """RFC 9002 6.2.4: a probe timeout with both Initial and Handshake data in flight
    repeats both, coalesced. A client that lost the server's flight needs the Initial (for
    the Handshake keys) and the Handshake data; probes of one space at a time alternated
    between them, so under bursty loss a client could wait out several backed-off rounds
    (the interop matrix's handshakeloss cell: 30 s without a ServerHello, 9 sent)."""
    net = make_net()
    net.server.split_first_flight = split  # (aio's server sends the ServerHello alone)
    flight = 2 if split else 1
    net.drop = lambda direction, index, data, now: direction == "down" and index < flight
    assert net.run_until(lambda: net.index["down"] > flight, timeout=5.0)
    probe = [data for _, up, data, _ in net.wire if not up][flight]
    assert datagram_types(probe) == [PacketType.INITIAL, PacketType.HANDSHAKE]
    assert len(probe) == 1200  # padded: it carries an ack-eliciting Initial
    connected(net)
    assert net.server._recovery.pto_timeouts == 1  # the one probe round was enough


def test_client_probe_repeats_handshake_and_application_data_together() -> None:
    """The client's side of RFC 9002 6.2.4: its Finished and its first request lost, the
    Handshake probe carries the request again in a coalesced 1-RTT packet (the server may
    have 1-RTT keys already, and the request is what the user waits for)."""
    net = make_net()
    client = net.client
    sent: list[int] = []  # the stream, once the request is written

    def request() -> None:
        if client.handshake_complete and not sent:
            sent.append(client.open_stream())
            client.send_stream_data(sent[0], b"GET /", end_stream=True)

    # the client's datagrams after its first: the Finished and the request, until the probe
    net.drop = lambda direction, index, data, now: (
        direction == "up" and index >= 1 and client.stats().pto_count == 0
    )
    assert net.run_until(lambda: client.stats().pto_count == 1, hook=request, timeout=5.0)
    net.run_until(lambda: net.index["up"] > net.dropped["up"] + 1, timeout=1.0)
    probe = [data for _, up, data, _ in net.wire if up][net.dropped["up"] + 1]
    assert datagram_types(probe) == [PacketType.HANDSHAKE, PacketType.ONE_RTT]
    _, s = connected(net)
    s.read_pending()
    assert bytes(s.data[sent[0]]) == b"GET /"

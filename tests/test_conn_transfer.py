"""Bulk transfers over impaired simulated links, byte-exact (RFC 9000 sections 2-4, 13;
RFC 9002): loss, reordering, duplication, corruption, bandwidth limits, key updates."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pairs import Net, Peer, Sender, connected, make_net
from support import patch_method

from quicish import native
from quicish.native import RangeSet
from quicish.proto.connection import Connection
from quicish.proto.lean_receive import LeanReceiver
from quicish.proto.packet_builder import PacketBuilder
from quicish.proto.records import SentPacket, StreamRecord
from quicish.proto.stream_burst import StreamBurst
from quicish.simlink import LinkSpec

BIG = {"max_data": 16 << 20, "max_stream_data": 8 << 20}
# The packet counts some tests expect are for 1200-byte datagrams (path MTU discovery off).
FIXED = {**BIG, "max_datagram_size": 1200}


class ResendAudit:
    """Fails if a STREAM byte range is sent again after the peer acknowledged it
    (RFC 9000 13.3: retransmit only what is lost and unacknowledged)."""

    def __init__(self, conn: Connection) -> None:
        self.acked: dict[int, RangeSet] = {}
        self.violations: list[tuple[int, int, int]] = []
        self.frames_sent = 0
        sent_hook = conn._recovery.on_packet_sent
        burst_hook = conn._recovery.on_packets_sent
        acked_hook = conn._frames.on_packets_acked

        def audit(pkt: SentPacket) -> None:
            for rec in pkt.frames:
                if isinstance(rec, StreamRecord) and rec.length:
                    self.frames_sent += 1
                    rs = self.acked.get(rec.stream_id)
                    if rs is not None and _overlaps(rs, rec.offset, rec.offset + rec.length):
                        self.violations.append((rec.stream_id, rec.offset, rec.length))

        def on_sent(pkt: SentPacket) -> None:
            audit(pkt)
            sent_hook(pkt)

        def on_burst(space: int, pkts: list[SentPacket]) -> None:  # (the bulk path's)
            for pkt in pkts:
                audit(pkt)
            burst_hook(space, pkts)

        def on_acked(packets: list[SentPacket]) -> None:
            for pkt in packets:
                for rec in pkt.frames:
                    if isinstance(rec, StreamRecord) and rec.length:
                        rs = self.acked.setdefault(rec.stream_id, RangeSet(1 << 16))
                        rs.add(rec.offset, rec.offset + rec.length)
            acked_hook(packets)

        patch_method(conn._recovery, "on_packet_sent", on_sent)
        patch_method(conn._recovery, "on_packets_sent", on_burst)
        patch_method(conn._frames, "on_packets_acked", on_acked)


def _overlaps(rs: RangeSet, start: int, stop: int) -> bool:
    for a, b in rs:
        if a >= stop:
            return False
        if b > start:
            return True
    return False


def one_way(net: Net, size: int, seed: int = 1, timeout: float = 600.0) -> tuple[bytes, Peer, Peer]:
    c, s = connected(net)
    data = random.Random(seed).randbytes(size)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, data)
    ok = net.run_until(lambda: sid in s.finished, c, s, timeout=timeout, hook=sender.pump)
    assert ok, f"transfer stalled at {len(s.data.get(sid, b''))} of {size} bytes"
    got = bytes(s.data[sid])
    assert len(got) == size and got == data
    return data, c, s


def test_transfer_20mb_loss_reorder_duplicate() -> None:
    """20 MB under 5 % loss, 3 % reordering and 2 % duplication arrives byte-exact; lost
    data is re-sent, acknowledged data never is."""
    net = make_net(
        link=LinkSpec(delay=0.01, loss=0.05, reorder=0.03, duplicate=0.02),
        seed=3,
        client_kw=FIXED,
        server_kw=FIXED,
    )
    audit = ResendAudit(net.client)
    one_way(net, 20 << 20)
    st = net.client.stats()
    assert net.up.counters.lost > 500 and net.up.counters.duplicated > 100
    assert st.packets_lost >= net.up.counters.lost * 0.9
    # Only data declared lost, or repeated by a PTO probe (RFC 9002 6.2.4), is sent again.
    resendable = st.stream_bytes_lost + st.stream_bytes_probed
    assert 0 < st.stream_bytes_retransmitted <= resendable
    assert st.stream_bytes_probed < st.stream_bytes_lost  # probes are the exception
    assert audit.frames_sent > 17000 and audit.violations == []
    assert net.server.stats().packets_duplicate > 100
    # Nothing is left in flight or buffered once the FIN is acknowledged.
    net.run(lambda: net.client.stats().bytes_in_flight == 0, timeout=5)
    assert net.client.stats().bytes_in_flight == 0


def test_transfer_burst_loss() -> None:
    """The interop runner's "transferloss": 2 % loss in bursts of 3, both directions."""
    net = make_net(
        link=LinkSpec(delay=0.015, loss=0.02 / 3, burst=3), seed=4, client_kw=BIG, server_kw=BIG
    )
    audit = ResendAudit(net.client)
    one_way(net, 3 << 20)
    assert net.up.counters.lost >= 30
    assert audit.violations == []


def test_transfer_corruption_counted() -> None:
    """Corrupted datagrams fail AEAD (or header checks) and are dropped and counted; the
    data is re-sent and arrives intact."""
    net = make_net(link=LinkSpec(delay=0.01, corrupt=0.03), seed=5, client_kw=BIG, server_kw=BIG)
    one_way(net, 2 << 20)
    for conn, direction in ((net.server, net.up), (net.client, net.down)):
        st = conn.stats()
        rejected = st.packets_undecryptable + st.packets_dropped
        assert rejected == direction.counters.corrupted
    assert net.server.stats().packets_undecryptable > 20
    assert net.client.stats().packets_lost > 20


def test_transfer_both_directions_at_once() -> None:
    net = make_net(
        link=LinkSpec(delay=0.02, loss=0.03, reorder=0.02), seed=6, client_kw=BIG, server_kw=BIG
    )
    c, s = connected(net)
    up = random.Random(1).randbytes(1_500_000)
    down = random.Random(2).randbytes(1_000_000)
    sid = net.client.open_stream()
    senders = [Sender(net.client, sid, up)]

    def hook() -> None:
        if sid in s.data and len(senders) == 1:
            senders.append(Sender(net.server, sid, down))
        for snd in senders:
            snd.pump()

    ok = net.run_until(
        lambda: sid in s.finished and sid in c.finished, c, s, timeout=300, hook=hook
    )
    assert ok
    assert bytes(s.data[sid]) == up and bytes(c.data[sid]) == down
    # Both halves are done: the stream is forgotten on both sides.
    net.settle(c, s, duration=1)
    assert net.client._streams.get(sid) is None and net.server._streams.get(sid) is None


def test_goodput_on_bandwidth_limited_link() -> None:
    """10 Mbit/s, 30 ms RTT, 25-packet drop-tail queue: goodput close to the link rate."""
    spec = LinkSpec(delay=0.015, bandwidth=10e6, queue=25)
    net = make_net(link=spec, client_kw=BIG, server_kw=BIG)
    c, s = connected(net)
    data = random.Random(7).randbytes(3 << 20)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, data)
    start = net.now
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=120, hook=sender.pump)
    assert bytes(s.data[sid]) == data
    goodput = len(data) * 8 / (net.now - start)
    assert goodput > 6e6, goodput


def test_key_update_mid_transfer() -> None:
    net = make_net(
        link=LinkSpec(delay=0.01, loss=0.02, reorder=0.02), seed=8, client_kw=BIG, server_kw=BIG
    )
    c, s = connected(net)
    data = random.Random(9).randbytes(2 << 20)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, data)
    updated: list[float] = []

    def hook() -> None:
        sender.pump()
        if not updated and len(s.data.get(sid, b"")) > 500_000:
            net.client.request_key_update()
            updated.append(net.now)

    assert net.run_until(lambda: sid in s.finished, c, s, timeout=120, hook=hook)
    assert bytes(s.data[sid]) == data
    assert net.client.stats().key_updates == 1
    assert net.server.stats().key_updates == 1
    assert net.client._keys.phase == net.server._keys.phase == 1
    assert c.terminated is None and s.terminated is None


def test_back_to_back_key_updates_are_paced() -> None:
    """Asking for a second key update before the first is acknowledged defers it (RFC 9001
    6.1); the peer follows every update and no packet becomes undecryptable."""
    net = make_net(
        link=LinkSpec(delay=0.01, reorder=0.1, reorder_delay=0.015),
        seed=4,
        # (15 ms reordering at this packet rate defeats 1-byte packet numbers now and then,
        # RFC 9000 17.1: the seed is one where no packet is reordered that far at 1200 B)
        client_kw=FIXED,
        server_kw=FIXED,
    )
    c, s = connected(net)
    data = random.Random(4).randbytes(2 << 20)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, data)
    asked = [0]

    def hook() -> None:
        sender.pump()
        if len(s.data.get(sid, b"")) > 300_000 * (asked[0] + 1) and asked[0] < 3:
            asked[0] += 1
            net.client.request_key_update()
            net.client.request_key_update()  # deferred until the first is acknowledged
            net.server.request_key_update()  # and the server too, at the same time

    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60, hook=hook)
    assert bytes(s.data[sid]) == data
    updates = net.client.stats().key_updates
    assert updates >= 6 and net.server.stats().key_updates == updates
    assert net.client._keys.phase == net.server._keys.phase
    assert net.server.stats().packets_undecryptable == 0
    assert net.client.stats().packets_undecryptable == 0


def _sent_trace(lean: bool, monkeypatch: Any) -> tuple[list[tuple[Any, ...]], int]:
    """Every packet the client sends in a lossy 2 MB transfer, and how many the lean
    builder made; ``lean=False`` turns the lean builder off."""
    with monkeypatch.context() as m:
        calls = [0]
        build = PacketBuilder.build_stream_datagram

        def counting(self: PacketBuilder, now: float) -> bytes | None:
            calls[0] += 1
            return build(self, now)

        m.setattr(PacketBuilder, "build_stream_datagram", counting)
        if not lean:
            m.setattr(PacketBuilder, "lean_ready", lambda self, reply=False: False)
        net = make_net(
            link=LinkSpec(delay=0.01, loss=0.02, reorder=0.02),
            seed=8,
            client_kw=FIXED,
            server_kw=FIXED,
        )
        trace: list[tuple[Any, ...]] = []

        def tracer(event: str, data: dict[str, Any]) -> None:
            if event == "packet_sent":
                header = data["header"]
                frames = json.dumps(data["frames"], sort_keys=True)
                trace.append(
                    (net.now, header["packet_type"], header["packet_number"], data["raw"], frames)
                )

        net.client.tracer = tracer
        one_way(net, 2 << 20)
        return trace, calls[0]


def test_lean_stream_builder_sends_exactly_what_the_general_builder_would(
    monkeypatch: Any,
) -> None:
    """The bulk fast path (``_build_stream_datagram``) is only an optimisation: under loss
    and reordering the client sends the same packets at the same times with it and
    without it."""
    lean, lean_calls = _sent_trace(True, monkeypatch)
    general, general_calls = _sent_trace(False, monkeypatch)
    assert general_calls == 0 and lean_calls > 1000
    assert len(lean) > 1700
    assert lean == general


def _sent_packets(
    burst: bool,
    kw: dict[str, Any],
    monkeypatch: Any,
    link: LinkSpec | None = None,
    lean: bool = True,
    general: bool = False,
) -> tuple[list[Any], int]:
    """Every packet the client records as sent in a lossy 3 MB transfer (number, time,
    size, records), every datagram it hands over (time, size), and how many packets the
    burst path made; ``burst=False`` turns the burst path off (the lean builder then
    makes each packet). No tracer: with one (other than a qlog file alone) the burst declines."""
    with monkeypatch.context() as m:
        made = [0]
        fill = StreamBurst.fill

        def counting(self: StreamBurst, *args: Any) -> int:
            n = 0 if not burst else fill(self, *args)
            made[0] += n
            return n

        m.setattr(StreamBurst, "fill", counting)
        if not lean:
            m.setattr(LeanReceiver, "take", lambda self, *args: False)
        if general:  # (no lean builder, so no burst either: every packet the general way)
            m.setattr(PacketBuilder, "lean_ready", lambda self, reply=False: False)
        link = link or LinkSpec(delay=0.01, loss=0.02, reorder=0.02)
        net = make_net(link=link, seed=8, client_kw=kw, server_kw=kw)
        sent: list[Any] = []
        record = net.client._recovery.on_packet_sent
        record_burst = net.client._recovery.on_packets_sent
        send = net.client.datagrams_to_send

        def on_sent(pkt: SentPacket) -> None:
            sent.append((pkt.pn, pkt.sent_time, pkt.size, pkt.in_flight, tuple(pkt.frames)))
            record(pkt)

        def on_burst(space: int, pkts: list[SentPacket]) -> None:  # (the bulk path's)
            for p in pkts:
                sent.append((p.pn, p.sent_time, p.size, p.in_flight, tuple(p.frames)))
            record_burst(space, pkts)

        def datagrams(now: float) -> list[tuple[bytes, tuple[str, int]]]:
            out = send(now)
            sent.extend((now, len(d)) for d, _ in out)
            return out

        patch_method(net.client._recovery, "on_packet_sent", on_sent)
        patch_method(net.client._recovery, "on_packets_sent", on_burst)
        patch_method(net.client, "datagrams_to_send", datagrams)
        one_way(net, 3 << 20)
        sent.append((net.client.stats(), net.server.stats()))
        return sent, made[0]


@pytest.mark.skipif(not native.CRYPTO_ACCELERATED, reason="the burst needs the C cipher")
def test_burst_path_sends_exactly_what_the_lean_builder_would(monkeypatch: Any) -> None:
    """The bulk burst (``stream_burst.py``, N packets per C call) is only an optimisation:
    under loss and reordering, at 1200 bytes and with path MTU discovery growing the
    datagrams, the client sends packets of the same numbers, sizes, times and frames,
    and the same datagrams, with it and without it, and as the general builder alone (the
    packet bytes themselves are compared with the lean builder's in test_native_burst.py)."""
    for kw in (FIXED, BIG, {**BIG, "congestion_control": "bbr"}):
        bursts, made = _sent_packets(True, kw, monkeypatch)
        lean, none = _sent_packets(False, kw, monkeypatch)
        assert none == 0 and made > 1000
        assert len(bursts) > 4000
        assert bursts == lean
    general, none = _sent_packets(True, FIXED, monkeypatch, general=True)
    assert none == 0
    assert general == _sent_packets(True, FIXED, monkeypatch)[0]  # and the general builder's


def test_lean_receive_path_changes_nothing(monkeypatch: Any) -> None:
    """The lean receive path (``lean_receive.py``, both sides: STREAM packets on one, ACKs on
    the other) is only an optimisation: under loss, reordering, duplication, corruption and
    CE marks the client sends the same packets at the same times, and both sides end with
    the same counters (duplicates, undecryptable packets, ...), with it and without it."""
    link = LinkSpec(
        delay=0.01, loss=0.02, reorder=0.03, duplicate=0.02, corrupt=0.01, ecn=2,
        congestion_marks=0.002,
    )  # fmt: skip
    lean, _ = _sent_packets(True, FIXED, monkeypatch, link)
    general, _ = _sent_packets(True, FIXED, monkeypatch, link, lean=False)
    client, server = lean[-1]
    assert server.packets_duplicate > 20 and server.packets_undecryptable > 20
    assert client.packets_lost > 20
    assert len(lean) > 4000
    assert lean == general


def test_bulk_packets_take_the_lean_receive_path(monkeypatch: Any) -> None:
    """After the handshake, every 1-RTT datagram of a clean transfer is taken by the lean
    receive path (no general header parse: ``LeanReceiver.take``, or ``_receive_short``
    when traced), and the bytes and counters are unchanged."""
    net = make_net(client_kw=FIXED, server_kw=FIXED)
    c, s = connected(net)
    general: list[int] = []
    lean = {"taken": 0}
    receive_packet = Connection._receive_packet
    receive_short = Connection._receive_short
    take = LeanReceiver.take

    def counting_take(self: LeanReceiver, *args: Any) -> bool:
        taken = take(self, *args)
        if self is net.server._lean:
            lean["taken"] += taken
        return taken

    monkeypatch.setattr(LeanReceiver, "take", counting_take)

    def counting_general(self: Connection, *args: Any) -> None:
        general.append(args[2].packet_type)
        receive_packet(self, *args)

    def counting_lean(self: Connection, data: bytes, now: float) -> bool:
        taken = receive_short(self, data, now)
        lean["taken"] += taken
        return taken

    server = net.server
    before = server.stats().packets_received
    patch_method(server, "_receive_packet", counting_general.__get__(server))
    patch_method(server, "_receive_short", counting_lean.__get__(server))
    data = random.Random(5).randbytes(2 << 20)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, data)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60, hook=sender.pump)
    assert bytes(s.data[sid]) == data
    received = server.stats().packets_received - before
    assert received > 1500 and lean["taken"] == received and general == []

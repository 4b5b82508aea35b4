"""Engine hardening against hostile peers (issue 15): bounded sent-packet tracking,
duplicate suppression past the ACK range limit, skipped packet numbers, 0-RTT key discard."""

from __future__ import annotations

import pytest
from pairs import (
    CLIENT_ADDR,
    Net,
    Pair,
    Peer,
    connected,
    encode,
    make_net,
    make_pair,
    poll,
    ticket_and_context,
)

from quicish import Config, ConfigError
from quicish.errors import ErrorCode
from quicish.proto import events as ev
from quicish.proto.connection import Connection
from quicish.proto.packet_space import ACK_RANGES_LIMIT, APPLICATION
from quicish.proto.records import SentPacket
from quicish.wire import frames as F
from quicish.wire.packet import PacketType, encode_long_header, encode_short_header
from quicish.wire.protection import PacketProtector

AEAD_TAG = 16


def seal_at(sender: Connection, pn: int, payload: bytes) -> bytes:
    """``payload`` sealed in a 1-RTT packet with ``sender``'s keys at packet number ``pn``,
    which is written in 4 bytes, so it decodes right far behind the largest received (not
    recorded anywhere: the receiver's answers are not delivered back)."""
    space = sender._spaces[APPLICATION]
    assert space.tx is not None
    truncated, pn_length = pn & 0xFFFFFFFF, 4
    header = encode_short_header(
        sender.peer_cid, truncated, pn_length, False, bool(sender._keys.phase)
    )
    body = payload + bytes(max(0, 4 - pn_length - len(payload)))
    return space.tx.seal_packet(header, body, pn)


def test_replay_after_more_than_64_gaps_is_not_processed_again() -> None:
    """RFC 9000 12.3: a packet is processed once, even after the received-PN set dropped
    the range that held it (more gaps than ACK_RANGES_LIMIT)."""
    net = make_net(
        client_kw={"max_datagram_frame_size": 1200}, server_kw={"max_datagram_frame_size": 1200}
    )
    connected(net)
    client, server = net.client, net.server
    now = net.now
    while server.next_event() is not None:
        pass
    pn = client._spaces[APPLICATION].next_pn + 10
    old = seal_at(client, pn, encode(F.DatagramFrame(b"once")))
    server.receive_datagram(old, CLIENT_ADDR, now)
    for _ in range(ACK_RANGES_LIMIT + 6):  # one packet every other number: a gap each time
        pn += 2
        server.receive_datagram(seal_at(client, pn, encode(F.PingFrame())), CLIENT_ADDR, now)
    duplicates = server.stats_counters.packets_duplicate
    server.receive_datagram(old, CLIENT_ADDR, now)  # the same bytes again
    got = []
    while (event := server.next_event()) is not None:
        if isinstance(event, ev.DatagramReceived):
            got.append(event.data)
    assert got == [b"once"]
    assert server.stats_counters.packets_duplicate == duplicates + 1


def test_ack_only_packets_never_acknowledged_are_not_tracked_forever() -> None:
    """A peer that sends 50,000 PINGs and never acknowledges anything: the server answers
    with ACK-only packets and keeps a bounded number of them (not in flight: their loss
    needs no action), while its ACK-of-ACK bookkeeping still works."""
    net = make_net()
    connected(net)
    client, server = net.client, net.server
    now = net.now
    space = client._spaces[APPLICATION]
    pn = space.next_pn
    ping = encode(F.PingFrame())
    for _ in range(50_000):
        server.receive_datagram(seal_at(client, pn, ping), CLIENT_ADDR, now)
        pn += 1
        now += 0.0001
        server.datagrams_to_send(now)
    assert server.stats_counters.packets_sent > 20_000
    tracked = len(server._recovery.outstanding(APPLICATION))
    assert tracked <= 512
    assert server.config.max_ack_only_packets == 512  # the default
    assert server._recovery.packets_forgotten >= 24_000
    assert len(server._recovery._spaces[APPLICATION].packets) == tracked
    assert not server.is_terminated


def zero_rtt_packet(client: Connection, tx: PacketProtector, payload: bytes, now: float) -> bytes:
    """``payload`` in a 0-RTT packet under key ``tx`` with the client's next packet number
    (recorded as sent, so that the server's ACK of it is legitimate)."""
    space = client._spaces[APPLICATION]
    pn = space.next_pn
    space.next_pn = pn + 1
    header = encode_long_header(
        PacketType.ZERO_RTT,
        client.version,
        client.peer_cid,
        client.host_cid,
        b"",
        len(payload) + AEAD_TAG,
        pn,
        4,
    )
    packet = tx.seal_packet(header, payload, pn)
    client._recovery.on_packet_sent(SentPacket(pn, now, len(packet), True, True, APPLICATION))
    return packet


def test_server_discards_zero_rtt_keys_after_the_handshake() -> None:
    """RFC 9001 4.9.3: after 1-RTT packets arrive the server keeps its 0-RTT read key only a
    short while (3 PTO): a 0-RTT packet after that is dropped and counted, not processed."""
    ticket, ctx, end = ticket_and_context()
    net, c, s = make_pair(session_ticket=ticket, early_data=True, context=ctx, start=end + 1)
    client, server = net.client, net.server
    early_tx = client._keys.zero_rtt_tx
    assert early_tx is not None
    connected(net, c, s)
    assert server.early_data_accepted
    # Just after the handshake, a late 0-RTT packet is still read (reordering).
    sid = client.open_stream()
    late = encode(F.StreamFrame(sid, 0, b"late", False))
    server.receive_datagram(zero_rtt_packet(client, early_tx, late, net.now), CLIENT_ADDR, net.now)
    poll(s)
    assert sid in s.data
    assert server._keys.zero_rtt_rx is not None
    # 3 PTO after the handshake, the key is gone (a timer of its own).
    deadline = net.now + 3 * server._recovery.pto_duration()
    assert net.run(lambda: server._keys.zero_rtt_rx is None, 10.0)
    assert net.now <= deadline + 0.001
    assert not server.is_terminated
    dropped = server.stats_counters.packets_dropped
    received = server.stats_counters.packets_received
    sid2 = client.open_stream()
    later = encode(F.StreamFrame(sid2, 0, b"too late", False))
    server.receive_datagram(zero_rtt_packet(client, early_tx, later, net.now), CLIENT_ADDR, net.now)
    poll(s)
    assert sid2 not in s.data
    assert server.stats_counters.packets_dropped == dropped + 1
    assert server.stats_counters.packets_received == received


def _transfer(net: Net, c: Peer, s: Peer, size: int) -> int:
    """The server sends ``size`` bytes to the client on a new stream; returns the stream."""
    sid = net.server.open_stream()
    net.server.send_stream_data(sid, bytes(size), end_stream=True)
    assert net.run_until(lambda: sid in c.finished, c, s, timeout=30)
    return sid


def test_sender_skips_packet_numbers_without_losing_anything(pair: Pair) -> None:
    """RFC 9000 21.4: now and then a 1-RTT packet number is never sent; nothing is declared
    lost for it and an honest peer's ACKs never cover it."""
    net, c, s = pair
    _transfer(net, c, s, 2 << 20)  # about 1,800 packets
    skipped = net.server._recovery.skipped_packet_numbers(APPLICATION)
    assert skipped, "no packet number was skipped"
    assert len(skipped) <= 8  # only the most recent are kept
    assert net.server.stats().packets_lost == 0
    assert not net.server.is_terminated and not net.client.is_terminated
    received = net.client._spaces[APPLICATION].received
    assert not any(pn in received for pn in skipped)


def test_ack_of_a_skipped_packet_number_closes_with_protocol_violation(pair: Pair) -> None:
    """An optimistic ACK (covering a packet number never sent) ends the connection."""
    net, c, s = pair
    server = net.server
    sid = server.open_stream()
    server.send_stream_data(sid, bytes(4 << 20))
    recovery = server._recovery

    def sent_past_a_skip() -> bool:
        skipped = recovery.skipped_packet_numbers(APPLICATION)
        return bool(skipped) and (recovery.largest_sent(APPLICATION) or 0) > skipped[-1]

    assert net.run_until(sent_past_a_skip, c, s, timeout=30), "no packet number was skipped"
    skip = server._recovery.skipped_packet_numbers(APPLICATION)[-1]
    largest = server._recovery.largest_sent(APPLICATION)
    assert largest is not None and largest > skip
    ack = encode(F.AckFrame([(skip - 2, largest + 1)]))  # everything up to the newest
    server.receive_datagram(
        seal_at(net.client, net.client._spaces[APPLICATION].next_pn, ack), CLIENT_ADDR, net.now
    )
    assert server.is_terminated
    closes = [e for e in iter(server.next_event, None) if isinstance(e, ev.ConnectionTerminated)]
    assert closes and closes[0].error_code == ErrorCode.PROTOCOL_VIOLATION
    assert not closes[0].by_peer


def test_config_knobs() -> None:
    cfg = Config()
    assert cfg.max_ack_only_packets == 512
    assert cfg.pn_skip_interval == 256
    with pytest.raises(ConfigError, match="max_ack_only_packets"):
        Config(max_ack_only_packets=0)
    with pytest.raises(ConfigError, match="pn_skip_interval"):
        Config(pn_skip_interval=-1)


def test_skipping_can_be_turned_off() -> None:
    net = make_net(server_kw={"pn_skip_interval": 0})
    c, s = connected(net)
    _transfer(net, c, s, 1 << 20)
    assert net.server._recovery.skipped_packet_numbers(APPLICATION) == []

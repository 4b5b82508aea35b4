"""PATH_CHALLENGE floods (issue 15, item 7): at most one PATH_RESPONSE per received datagram,
sent within the congestion window and, on a path not validated, within its 3x
anti-amplification limit; padded to 1200 bytes only to validate a new path (or to answer a
challenge that came padded itself), never to multiply a small challenge on the current path.
"""

from __future__ import annotations

import os

from conn_net import connected, encode, make_net, wire_frames

from quicish.proto.connection import Connection
from quicish.proto.packet_space import APPLICATION
from quicish.proto.recovery import SentPacket
from quicish.simlink import CLIENT_ADDR
from quicish.wire import frames as F
from quicish.wire.packet import encode_packet_number, encode_short_header

NEW_ADDR = ("10.9.9.9", 4444)


def _seal(sender: Connection, payload: bytes, now: float) -> bytes:
    """``payload`` in a 1-RTT packet with the sender's keys and next packet number."""
    space = sender._spaces[APPLICATION]
    assert space.tx is not None
    pn = space.next_pn
    space.next_pn = pn + 1
    truncated, pn_length = encode_packet_number(pn, sender._recovery.largest_acked(APPLICATION))
    header = encode_short_header(
        sender.peer_cid, truncated, pn_length, False, bool(sender._keys.phase)
    )
    packet = space.tx.seal_packet(header, payload, pn)
    sender._recovery.on_packet_sent(SentPacket(pn, now, len(packet), True, False, APPLICATION))
    return packet


def _challenges(n: int = 4) -> bytes:
    return encode(*[F.PathChallengeFrame(os.urandom(8)) for _ in range(n)])


def test_challenge_flood_on_the_current_path_is_not_amplified() -> None:
    net = make_net()
    c, s = connected(net)
    server = net.server
    net.settle(c, s, duration=0.5)
    sent_before = server.stats().bytes_sent
    injected = responses = 0
    for _ in range(1000):
        packet = _seal(net.client, _challenges(), net.now)
        injected += len(packet)
        server.receive_datagram(packet, CLIENT_ADDR, net.now)
        for data, _ in server.datagrams_to_send(net.now):
            frames = wire_frames(net.client, data) or []
            found = [f for f in frames if isinstance(f, F.PathResponseFrame)]
            assert len(found) <= 1  # one answer per datagram received, the latest challenge
            responses += len(found)
            net.client.receive_datagram(data, ("127.0.0.1", 4433), net.now)
        net.settle(c, s, duration=0.001)
    sent = server.stats().bytes_sent - sent_before
    print(
        f"\n{injected} bytes of challenges -> {sent} bytes back ({sent / injected:.2f}x), "
        f"{responses} responses"
    )
    assert 0 < responses <= 1000
    assert sent <= 1.5 * injected


def test_challenge_flood_on_a_new_path_stays_within_three_times() -> None:
    net = make_net()
    c, s = connected(net)
    server = net.server
    net.settle(c, s, duration=0.5)
    received = sent = padded = 0
    for i in range(300):
        packet = _seal(net.client, _challenges(), net.now)
        received += len(packet)
        server.receive_datagram(packet, NEW_ADDR, net.now)
        for data, addr in server.datagrams_to_send(net.now):
            if addr == NEW_ADDR:
                sent += len(data)
                padded += len(data) >= 1200
        net.now += 0.001
        server.handle_timer(net.now)
        assert sent <= 3 * received, f"after {i + 1} datagrams"
    print(
        f"\nnew path: {received} bytes in, {sent} out ({sent / received:.2f}x), "
        f"{padded} padded datagrams"
    )
    # Answered (the challenges and the server's own PATH_CHALLENGE), but the small datagrams
    # leave no room to pad any of it.
    assert sent > 0 and padded == 0


def test_padded_challenge_gets_a_padded_response_on_the_current_path() -> None:
    """A peer validating the path MTU (its challenge datagram expanded to 1200 bytes, RFC
    9000 8.2.1) gets its PATH_RESPONSE in a datagram of 1200 bytes too (8.2.2)."""
    net = make_net()
    c, s = connected(net)
    server = net.server
    net.settle(c, s, duration=0.5)
    data = os.urandom(8)
    payload = encode(F.PathChallengeFrame(data))
    packet = _seal(net.client, payload + bytes(1200 - len(payload)), net.now)
    assert len(packet) >= 1200
    server.receive_datagram(packet, CLIENT_ADDR, net.now)
    out = server.datagrams_to_send(net.now)
    answers = [
        d
        for d, _ in out
        if any(
            isinstance(f, F.PathResponseFrame) and f.data == data
            for f in wire_frames(net.client, d) or []
        )
    ]
    assert len(answers) == 1 and len(answers[0]) >= 1200

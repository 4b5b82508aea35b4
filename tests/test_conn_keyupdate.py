"""Key update rules (RFC 9001 section 6) on the simulated network: automatic updates before
the confidentiality limit, KEY_UPDATE_ERROR for consecutive updates, AEAD_LIMIT_REACHED at
the integrity limit. (Manual updates and pacing of requests: test_conn_transfer.py.)"""

from __future__ import annotations

import pytest
from pairs import Net, connected, make_pair

from quicish.errors import ErrorCode
from quicish.proto import events as ev
from quicish.simlink import CLIENT_ADDR, SERVER_ADDR

DATA = bytes(range(256)) * 4000  # 1 MB


def test_automatic_key_updates_before_the_confidentiality_limit() -> None:
    net, c, s = make_pair(client_kw={"max_data": 4 << 20}, server_kw={"max_data": 4 << 20})
    connected(net, c, s)
    assert net.client._keys.update_limit == (1 << 23) * 3 // 4  # AES-GCM: 2^23 packets
    net.client._keys.update_limit = 100  # pretend the limit is near
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, DATA, end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=30)
    assert bytes(s.data[sid]) == DATA
    updates = net.client.stats().key_updates
    assert updates >= 3  # ~900 packets: an update 100 packets after the previous one was acked
    assert net.server.stats().key_updates == updates  # the server followed each one
    assert net.client._keys.phase == net.server._keys.phase
    assert net.server.stats().packets_undecryptable == 0
    assert not c.of(ev.ConnectionTerminated) and not s.of(ev.ConnectionTerminated)


def test_chacha20_limit_is_never_reached_in_practice() -> None:
    net, c, s = make_pair(client_kw={"cipher_suites": ["chacha20"]})
    connected(net, c, s)
    assert net.client._keys.update_limit == (1 << 62) * 3 // 4


def test_consecutive_key_updates_are_key_update_error() -> None:
    net, c, s = make_pair()
    connected(net, c, s)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"x" * 100)
    assert net.run_until(lambda: net.client._recovery.largest_acked(2) is not None, c, s, timeout=2)
    net.client.request_key_update()  # allowed: something of phase 0 was acknowledged
    assert net.client.stats().key_updates == 1
    net.client.send_stream_data(sid, b"y" * 100)
    first = net.client.datagrams_to_send(net.now)
    # A misbehaving client updates again at once, without waiting for an acknowledgement.
    net.client._keys.phase_start_pn = 0
    net.client._keys.update_requested = True
    net.client._keys.maybe_update()
    assert net.client.stats().key_updates == 2
    net.client.send_stream_data(sid, b"z" * 100)
    second = net.client.datagrams_to_send(net.now)
    for data, _ in first + second:  # the server gets both before it sends anything
        net.server.receive_datagram(data, CLIENT_ADDR, net.now)
    s.poll()
    closed = s.of(ev.ConnectionTerminated)
    assert closed and closed[0].error_code == ErrorCode.KEY_UPDATE_ERROR
    assert net.server.stats().key_updates == 1


def test_integrity_limit_closes_with_aead_limit_reached() -> None:
    net, c, s = make_pair()
    connected(net, c, s)
    net.client._keys.integrity_limit = 5
    sid = net.server.open_stream()
    net.server.send_stream_data(sid, b"hello")
    datagram = net.server.datagrams_to_send(net.now)[0][0]
    for i in range(5):
        forged = bytearray(datagram)
        forged[-1 - i] ^= 0xFF  # a broken tag: authentication fails
        net.client.receive_datagram(bytes(forged), SERVER_ADDR, net.now)
    c.poll()
    closed = c.of(ev.ConnectionTerminated)
    assert closed and closed[0].error_code == ErrorCode.AEAD_LIMIT_REACHED
    assert net.client.stats().packets_undecryptable == 5


def _forged_flipped_phase(net: Net, pn: int) -> bytes:
    """A 1-RTT packet from the client with the key phase bit flipped and a broken tag: what
    an attacker (who cannot seal) sends to probe the receiver's next-generation keys."""
    from quicish.proto.packet_space import APPLICATION
    from quicish.wire.packet import encode_packet_number, encode_short_header

    client = net.client
    tx = client._spaces[APPLICATION].tx
    assert tx is not None
    truncated, pn_length = encode_packet_number(pn, None)
    header = encode_short_header(
        client.peer_cid, truncated, pn_length, False, not client._keys.phase
    )
    packet = bytearray(tx.seal_packet(header, b"\x01" + bytes(40), pn))
    packet[-1] ^= 0xFF  # the AEAD tag no longer verifies
    return bytes(packet)


def test_forged_key_phase_packets_derive_no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 9001 6.3/9.5: next-generation keys are made once, not per packet with a flipped
    key phase (a forgery would otherwise cost a key derivation each, a timing signal)."""
    from quicish.wire.protection import PacketProtector

    net, c, s = make_pair()
    connected(net, c, s)
    derivations = 0
    original = PacketProtector.next_generation

    def counting(self: PacketProtector) -> PacketProtector:
        nonlocal derivations
        derivations += 1
        return original(self)

    monkeypatch.setattr(PacketProtector, "next_generation", counting)
    server = net.server
    base = net.client._spaces[2].next_pn + 10
    for i in range(1000):
        server.receive_datagram(_forged_flipped_phase(net, base + i), CLIENT_ADDR, net.now)
    assert server.stats().packets_undecryptable == 1000
    assert derivations <= 1
    assert not server.is_terminated and server.stats().key_updates == 0
    # A real key update still works, with the keys made ahead (the new next generation is
    # made once, for the update after it).
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"x" * 100)
    assert net.run_until(lambda: net.client._recovery.largest_acked(2) is not None, c, s, timeout=2)
    net.client.request_key_update()
    net.client.send_stream_data(sid, b"after the update", end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=2)
    assert bytes(s.data[sid]) == b"x" * 100 + b"after the update"
    assert server.stats().key_updates == 1
    before = derivations
    for i in range(1000):  # forgeries in the new phase's flipped phase: still no derivation
        server.receive_datagram(_forged_flipped_phase(net, base + 5000 + i), CLIENT_ADDR, net.now)
    assert derivations - before <= 1

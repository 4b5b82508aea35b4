"""Connection migration on the simulated network (RFC 9000 section 9): NAT rebinding seen by
the server (passive), a client moving to a new local address (active), path validation,
anti-amplification on unvalidated paths, congestion reset rules, spoofed addresses."""

from __future__ import annotations

import pytest
from pairs import PathNet, Peer, connected, make_path_pair, poll
from support import patch_method

from quicish.errors import ConnectionStateError
from quicish.proto import events as ev

DATA = bytes(range(256)) * 2000  # 512 KB


def _start_download(net: PathNet, c: Peer, s: Peer) -> int:
    """The client asks, the server streams DATA back."""
    connected(net, c, s)
    assert net.run_until(lambda: len(net.client._peer_cids.entries) == 4, c, s, timeout=2)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"GET /big\r\n", end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=2)
    net.server.send_stream_data(sid, DATA, end_stream=True)
    return sid


def _finish(net: PathNet, c: Peer, s: Peer, sid: int) -> None:
    assert net.run_until(lambda: sid in c.finished, c, s, timeout=30), "transfer did not finish"
    assert bytes(c.data[sid]) == DATA


def _run_until_received(net: PathNet, c: Peer, s: Peer, sid: int, amount: int) -> None:
    assert net.run_until(lambda: len(c.data.get(sid, b"")) >= amount, c, s, timeout=10)


def test_nat_rebinding_port_change_mid_transfer() -> None:
    net, c, s = make_path_pair()
    sid = _start_download(net, c, s)
    _run_until_received(net, c, s, sid, len(DATA) // 4)
    cc_before = net.server._recovery.cc
    old_cid = net.server.peer_cid
    new_addr = (net.client_addr[0], net.client_addr[1] + 1)
    net.client_addrs[0] = new_addr  # the NAT gave the client a new port
    _finish(net, c, s, sid)
    validated = s.of(ev.PathValidated)
    assert [e.addr for e in validated] == [new_addr]
    assert net.server.peer_addr == new_addr
    assert net.server.stats().path_migrations == 1
    assert net.server._recovery.cc is cc_before  # port-only change: congestion state kept
    assert net.server.peer_cid != old_cid  # a fresh CID towards the new address
    assert net.lost_to_stale > 0  # some datagrams still went to the old port


def test_address_change_resets_congestion_and_rtt() -> None:
    net, c, s = make_path_pair()
    sid = _start_download(net, c, s)
    _run_until_received(net, c, s, sid, len(DATA) // 4)
    cc_before = net.server._recovery.cc
    net.client_addrs[0] = ("10.0.9.9", 40000)  # a new IP address (rebind-addr)
    _finish(net, c, s, sid)
    assert [e.addr for e in s.of(ev.PathValidated)] == [("10.0.9.9", 40000)]
    assert net.server._recovery.cc is not cc_before  # RFC 9000 9.4: new path, new congestion state


def test_unvalidated_new_path_stays_within_3x() -> None:
    net, c, s = make_path_pair()
    sid = _start_download(net, c, s)
    _run_until_received(net, c, s, sid, len(DATA) // 4)
    new_addr = ("10.0.7.7", 50000)
    net.client_addrs[0] = new_addr
    worst = 0.0
    checked = 0

    def watch() -> bool:
        nonlocal worst, checked
        poll(c, s)
        path = net.server._paths.get(new_addr, 0)
        if path is not None and not path.validated and path.bytes_received:
            worst = max(worst, path.bytes_sent / path.bytes_received)
            checked += 1
        return sid in c.finished

    assert net.run(watch, 30)
    assert checked > 0
    assert worst <= 3.0


def test_spoofed_address_does_not_steal_the_connection() -> None:
    net, c, s = make_path_pair()
    sid = _start_download(net, c, s)
    _run_until_received(net, c, s, sid, len(DATA) // 4)
    real = net.client_addrs[0]
    spoofed = ("203.0.113.66", 6666)
    # An attacker forwards a copy of the client's next packet from its own address first.
    net.client.send_stream_data(net.client.open_stream(), b"ping", end_stream=True)
    datagram = net.client.datagrams_to_send(net.now)[0][0]
    net.server.receive_datagram(datagram, spoofed, net.now)
    assert net.server.peer_addr == spoofed  # it looked like a migration...
    net.server.receive_datagram(datagram, real, net.now)  # the original: a duplicate
    _finish(net, c, s, sid)
    # ...but the real client's next packets moved the server straight back.
    assert net.server.peer_addr == real
    assert net.server._paths.current.validated
    assert net.run_until(lambda: bool(s.of(ev.PathValidationFailed)), c, s, timeout=10)
    assert [e.addr for e in s.of(ev.PathValidationFailed)] == [spoofed]


def test_active_migration_probes_then_switches() -> None:
    net, c, s = make_path_pair()
    sid = _start_download(net, c, s)
    _run_until_received(net, c, s, sid, len(DATA) // 4)
    new_addr = ("10.0.0.1", 50123)
    net.client_addrs[1] = new_addr
    client_cid = net.client.peer_cid
    server_cid = net.server.peer_cid
    net.client.probe_path(1, net.now)
    assert net.client.local_path == 0  # still on the old path while probing
    assert net.run_until(lambda: net.client.local_path == 1, c, s, timeout=5)
    assert [(e.local) for e in c.of(ev.PathValidated)] == [1]
    _finish(net, c, s, sid)
    assert net.server.peer_addr == new_addr
    assert [e.addr for e in s.of(ev.PathValidated)] == [new_addr]
    # Fresh CIDs in both directions on the new path (RFC 9000 9.5).
    assert net.client.peer_cid != client_cid
    assert net.server.peer_cid != server_cid
    assert net.client.stats().path_migrations == 1
    assert net.server.stats().path_migrations == 1


def test_active_migration_to_a_dead_path_fails_and_keeps_the_old_one() -> None:
    net, c, s = make_path_pair()
    sid = _start_download(net, c, s)
    net.client_addrs[1] = ("10.0.0.1", 50124)
    net.client.probe_path(1, net.now)
    original_flush = net._flush

    def flush_without_probes() -> None:
        # The new local address cannot reach the server: its probes vanish.
        probes = net.client.probe_datagrams
        undo = patch_method(net.client, "probe_datagrams", lambda now: (probes(now), [])[1])
        try:
            original_flush()
        finally:
            undo()

    net._flush = flush_without_probes  # type: ignore[method-assign]
    _finish(net, c, s, sid)
    assert net.run_until(lambda: bool(c.of(ev.PathValidationFailed)), c, s, timeout=10)
    assert net.client.local_path == 0
    assert [e.local for e in c.of(ev.PathValidationFailed)] == [1]


def test_disable_active_migration_is_honoured() -> None:
    net, c, s = make_path_pair(server_kw={"disable_active_migration": True})
    connected(net, c, s)
    with pytest.raises(ConnectionStateError, match="disabled active migration"):
        net.client.probe_path(1, net.now)


def test_no_migration_before_confirmation_or_without_spare_cid() -> None:
    net, c, s = make_path_pair(client_kw={"active_connection_id_limit": 2})
    with pytest.raises(ConnectionStateError, match="confirmed"):
        net.client.probe_path(1, net.now)
    connected(net, c, s)
    assert net.run_until(lambda: len(net.client._peer_cids.entries) == 2, c, s, timeout=2)
    net.client_addrs[1] = ("10.0.0.1", 50125)
    net.client.probe_path(1, net.now)  # takes the one spare CID
    with pytest.raises(ConnectionStateError, match="connection ID"):
        net.client.probe_path(2, net.now)

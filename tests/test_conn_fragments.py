"""Issue 15: out-of-order fragments are bounded per stream, per connection and per CRYPTO
level; an unexpected error inside one connection's reassembly closes that connection only;
a flood of NewSessionTickets does not kill a client (sans-IO, on the virtual clock)."""

from __future__ import annotations

from typing import Any

import pytest
from pairs import Pair, Peer, connected, encode, inject, make_net
from support import FailingBuffer

from quicish.config import Config
from quicish.errors import ConfigError, ErrorCode, wire_reason
from quicish.proto import events as ev
from quicish.proto import recv_stream
from quicish.proto.handshake import Handshake
from quicish.tls.client import ClientHandshake
from quicish.wire import frames as F

PV = ErrorCode.PROTOCOL_VIOLATION


def holes(sid: int, first: int, count: int) -> list[F.StreamFrame]:
    """``count`` 1-byte STREAM frames at descending offsets with 1-byte holes between."""
    return [F.StreamFrame(sid, first - 2 * k, b"x") for k in range(count)]


def send_in_packets(net: Any, frames: list[Any], per_packet: int = 150) -> None:
    for i in range(0, len(frames), per_packet):
        if net.server.is_terminated:
            return
        inject(net.client, net.server, encode(*frames[i : i + per_packet]), net.now)


def closed_with(peer: Peer, code: int) -> ev.ConnectionTerminated:
    peer.poll()
    term = peer.terminated
    assert term is not None, "the receiver did not close"
    assert term.error_code == code, term
    assert not term.by_peer
    return term


def test_stream_fragments_default_cap_closes_with_protocol_violation() -> None:
    """The default per-stream cap (8192): 1-byte holes from the top of the stream window
    down; the 8193rd fragment closes the connection with PROTOCOL_VIOLATION on a STREAM
    frame, before the window is used up."""
    net = make_net(server_kw={"max_stream_data": 64 << 10})
    _c, s = connected(net)
    send_in_packets(net, holes(0, (64 << 10) - 2, 8192))
    s.poll()
    assert s.terminated is None
    assert net.server._streams.get(0).recv._buf.fragments == 8192  # type: ignore[union-attr]
    send_in_packets(net, holes(0, (64 << 10) - 2 - 2 * 8192, 1))
    term = closed_with(s, PV)
    assert term.frame_type is not None and 0x08 <= term.frame_type <= 0x0F
    assert term.reason == "8193 out-of-order fragments exceed the limit of 8192"


def test_connection_fragments_cap_spans_streams() -> None:
    net = make_net(server_kw={"max_stream_fragments": 10, "max_connection_fragments": 25})
    _c, s = connected(net)
    send_in_packets(net, holes(0, 100, 9) + holes(4, 100, 9) + holes(8, 100, 7))
    s.poll()
    assert s.terminated is None  # 25 in all
    send_in_packets(net, holes(8, 86, 1))
    term = closed_with(s, PV)
    assert "26 out-of-order fragments on the connection exceed the limit of 25" in term.reason


def test_reset_stream_releases_its_fragments() -> None:
    net = make_net(server_kw={"max_stream_fragments": 10, "max_connection_fragments": 12})
    _c, s = connected(net)
    send_in_packets(net, holes(0, 100, 10))
    inject(net.client, net.server, encode(F.ResetStreamFrame(0, 7, 101)), net.now)
    send_in_packets(net, holes(4, 100, 10))  # would be 20 without the release
    s.poll()
    assert s.terminated is None
    # Filling the holes merges the fragments: the count falls again.
    send_in_packets(net, [F.StreamFrame(4, 81, bytes(19))])
    assert net.server._streams._fragment_budget.used == 1  # type: ignore[union-attr]


def test_stream_fragments_per_stream_cap_is_configurable() -> None:
    net = make_net(server_kw={"max_stream_fragments": 3})
    _c, s = connected(net)
    send_in_packets(net, holes(0, 50, 4))
    closed_with(s, PV)


def test_crypto_fragments_capped_per_level(pair: Pair) -> None:
    """1-RTT CRYPTO with 1-byte holes: the 65th fragment closes with
    CRYPTO_BUFFER_EXCEEDED (today the whole 64 KiB window fills, 32k segments)."""
    net, _c, s = pair
    frames = [F.CryptoFrame(60_000 - 2 * k, b"\x04") for k in range(64)]
    send_in_packets(net, frames)
    s.poll()
    assert s.terminated is None
    send_in_packets(net, [F.CryptoFrame(60_000 - 2 * 64, b"\x04")])
    term = closed_with(s, ErrorCode.CRYPTO_BUFFER_EXCEEDED)
    assert term.frame_type == 0x06


def test_crypto_buffering_is_bounded_per_level() -> None:
    net = make_net(connect=False)
    initial, handshake, app = net.server._spaces
    assert initial.crypto_recv.max_offset == 16384
    assert handshake.crypto_recv.max_offset == app.crypto_recv.max_offset == 65536
    for space in net.server._spaces:
        assert space.crypto_recv.max_fragments == 64


def test_crypto_window_slides_with_the_read_offset(pair: Pair) -> None:
    """CRYPTO beyond 64 KiB in total is fine once the earlier bytes were consumed."""
    net, _c, _s = pair
    app = net.client._spaces[2].crypto_recv
    assert app.max_offset == app.read_offset + 65536


def test_config_knobs_are_validated() -> None:
    for name in ("max_stream_fragments", "max_connection_fragments", "max_crypto_fragments"):
        with pytest.raises(ConfigError, match=name):
            Config(**{name: 0})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="initial_crypto_buffer"):
        Config(initial_crypto_buffer=4095)


@pytest.fixture
def server_keeps_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers keep their TLS engine after the handshake, to issue more tickets."""
    monkeypatch.setattr(Handshake, "release_tls", lambda self: None)


def test_many_session_tickets_keep_the_client_up(server_keeps_tls: None) -> None:
    """~80 KiB of NewSessionTickets in 1-RTT CRYPTO: the client consumes them all, keeps
    the connection, and reports the tickets (before the fix: CRYPTO_BUFFER_EXCEEDED once
    the 1-RTT CRYPTO stream passed 64 KiB)."""
    net = make_net()
    c, s = connected(net)
    server = net.server
    tls = server._handshake.tls
    assert tls is not None
    crypto = server._spaces[2].crypto_send
    issued = 0
    while crypto.write_offset < 80 << 10:
        assert tls.issue_session_ticket(net.now, server._handshake.sent_params)
        server._handshake.drain(net.now)
        issued += 1
        if issued % 50 == 0:
            net.settle(c, s, duration=0.05)
    net.settle(c, s, duration=1.0)
    assert c.terminated is None and s.terminated is None
    assert net.client._spaces[2].crypto_recv.read_offset > 64 << 10
    assert len(c.of(ev.SessionTicketReceived)) >= 1
    hs = net.client._handshake.tls._hs  # type: ignore[union-attr]
    assert isinstance(hs, ClientHandshake)
    assert len(hs.tickets) <= 8


def test_memory_error_in_insert_closes_that_connection_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recv_stream, "ReassemblyBuffer", FailingBuffer)
    net = make_net()
    c, s = connected(net)
    other = make_net(seed=7)
    _oc, os_ = connected(other)
    # The error does not escape receive_datagram: the connection closes with
    # INTERNAL_ERROR; the local reason names the exception's type, the wire reason is the
    # fixed phrase (no exception text reaches the peer).
    inject(net.client, net.server, encode(F.StreamFrame(0, 0, b"boom")), net.now)
    term = closed_with(s, ErrorCode.INTERNAL_ERROR)
    assert term.reason == "internal error (MemoryError)"
    assert net.run_until(lambda: c.terminated is not None, c, s, timeout=2)
    assert c.terminated is not None and c.terminated.error_code == ErrorCode.INTERNAL_ERROR
    assert c.terminated.reason == wire_reason(ErrorCode.INTERNAL_ERROR)
    # Another connection is unaffected.
    inject(other.client, other.server, encode(F.StreamFrame(0, 0, b"fine", fin=True)), other.now)
    os_.poll()
    assert os_.terminated is None and bytes(os_.data[0]) == b"fine"


def test_client_keeps_only_the_newest_tickets(server_keeps_tls: None) -> None:
    """Twenty tickets in one CRYPTO read: the client TLS keeps the newest eight."""
    from quicish.tls.client import MAX_KEPT_TICKETS
    from quicish.tls.handshake import Epoch

    net = make_net()
    connected(net)
    server_tls, client_tls = net.server._handshake.tls, net.client._handshake.tls
    assert server_tls is not None and client_tls is not None
    net.server._handshake.drain(net.now)
    for _ in range(20):
        assert server_tls.issue_session_ticket(net.now, net.server._handshake.sent_params)
    out = server_tls.pop_output()
    data = b"".join(chunk for epoch, chunk in out if epoch == Epoch.ONE_RTT)
    client_tls.receive(Epoch.ONE_RTT, data, net.now)
    tickets = client_tls.pop_session_tickets()
    assert len(tickets) == MAX_KEPT_TICKETS == 8
    nonces = [t.psk for t in tickets]
    assert len(set(nonces)) == 8

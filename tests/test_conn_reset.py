"""Stateless reset (RFC 9000 section 10.3) without sockets: the responder's resets carry
HMAC(reset key, CID); the peer recognises its token and drains; anything else is ignored."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from pairs import Net, Pair, connected, make_pair

from quicish.proto import events as ev
from quicish.proto.cid import reset_token
from quicish.proto.server_context import ServerContext
from quicish.proto.stateless import StatelessResponder
from quicish.simlink import SERVER_ADDR


def _established_pair() -> Pair:
    net, c, s = make_pair()
    connected(net, c, s)
    assert net.run_until(lambda: len(net.client._peer_cids.entries) == 4, c, s, timeout=2)
    return net, c, s


def _client_packet(net: Net) -> bytes:
    """A 1-RTT datagram the client sends (to the server that is about to 'restart')."""
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"hello after the restart")
    datagrams = net.client.datagrams_to_send(net.now)
    assert datagrams and not datagrams[-1][0][0] & 0x80
    return datagrams[-1][0]


def test_restarted_server_resets_and_client_drains() -> None:
    net, c, _s = _established_pair()
    ctx = net.server._handshake.server_context
    assert ctx is not None
    # A new server process with the same reset key (Config.stateless_reset_key): its
    # endpoint knows no connection but computes the same reset token for the CID.
    restarted = ServerContext(ctx.certificate_chain, ctx.private_key, reset_key=ctx.reset_key)
    responder = StatelessResponder(restarted)
    packet = _client_packet(net)
    reset = responder.stateless_reset(packet)
    assert reset is not None
    assert len(reset) < len(packet) and len(reset) >= 21  # smaller: no reset loops
    assert reset[0] & 0xC0 == 0x40  # looks like a short-header packet
    assert reset[-16:] == reset_token(ctx.reset_key, packet[1:9])
    net.client.receive_datagram(reset, SERVER_ADDR, net.now)
    c.poll()
    closed = c.of(ev.ConnectionTerminated)
    assert closed and closed[0].reason == "stateless reset" and closed[0].by_peer
    assert net.client.is_terminated
    assert net.client.datagrams_to_send(net.now + 0.01) == []  # draining: silent
    net.run(lambda: net.client.is_closed, 5)
    assert net.client.is_closed


def test_reset_for_a_retired_cid_is_ignored() -> None:
    net, _c, _s = _established_pair()
    ctx = net.server._handshake.server_context
    assert ctx is not None
    old = net.client.peer_cid
    assert net.client.change_connection_id()  # the old CID (and its token) is retired
    forged = bytes([0x41]) + bytes(20) + reset_token(ctx.reset_key, old)
    net.client.receive_datagram(forged, SERVER_ADDR, net.now)
    assert not net.client.is_terminated


def test_random_garbage_is_no_reset() -> None:
    net, _c, _s = _established_pair()
    net.client.receive_datagram(bytes([0x45]) + bytes(range(40)), SERVER_ADDR, net.now)
    assert not net.client.is_terminated
    assert (
        StatelessResponder(
            ServerContext(
                net.server._handshake.server_context.certificate_chain,  # type: ignore[union-attr]
                net.server._handshake.server_context.private_key,  # type: ignore[union-attr]
            )
        ).stateless_reset(b"\x40" + bytes(20))
        is None
    )  # too short to answer


def test_reset_token_of_new_cids_recognised() -> None:
    net, _c, _s = _established_pair()
    ctx = net.server._handshake.server_context
    assert ctx is not None
    assert net.client.change_connection_id()
    cid = net.client.peer_cid
    reset = bytes([0x50]) + bytes(range(30)) + reset_token(ctx.reset_key, cid)
    net.client.receive_datagram(reset, SERVER_ADDR, net.now)
    assert net.client.is_terminated


# ---- the reset key is a secret of its own (not derived from the certificate key) ----------------
def test_servers_sharing_a_certificate_have_different_reset_tokens_by_default() -> None:
    """Two servers with the same certificate and key: neither can forge the other's resets
    (with tokens derived from the TLS key, any instance was a reset oracle for the others)."""
    from support import server_config

    cid = bytes(range(8))
    packet = b"\x41" + cid + bytes(40)
    one = ServerContext.from_config(server_config())
    two = ServerContext.from_config(server_config())
    assert isinstance(one.private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(two.private_key, ec.EllipticCurvePrivateKey)
    assert one.private_key.private_numbers() == two.private_key.private_numbers()
    assert reset_token(one.reset_key, cid) != reset_token(two.reset_key, cid)
    reset_one = StatelessResponder(one).stateless_reset(packet)
    reset_two = StatelessResponder(two).stateless_reset(packet)
    assert reset_one is not None and reset_two is not None
    assert reset_one[-16:] != reset_two[-16:]


def test_cluster_shares_the_configured_reset_key() -> None:
    from support import server_config

    key = bytes(range(32))
    cid = bytes(range(8))
    packet = b"\x41" + cid + bytes(40)
    one = ServerContext.from_config(server_config(stateless_reset_key=key))
    two = ServerContext.from_config(server_config(stateless_reset_key=key))
    assert one.reset_key == two.reset_key == key
    reset_one = StatelessResponder(one).stateless_reset(packet)
    reset_two = StatelessResponder(two).stateless_reset(packet)
    assert reset_one is not None and reset_two is not None
    assert reset_one[-16:] == reset_two[-16:] == reset_token(key, cid)


def test_reset_key_must_be_32_bytes() -> None:
    import pytest

    from quicish import Config, ConfigError

    for bad in (b"short", bytes(33), "x" * 32):
        with pytest.raises(ConfigError, match="stateless_reset_key"):
            Config(stateless_reset_key=bad)  # type: ignore[arg-type]

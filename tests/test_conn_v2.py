"""QUIC version 2 (RFC 9369) and compatible version negotiation (RFC 9368) on the simulated
network: a v1 client offering v2 is answered in v2 without an extra round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pairs import Address, Net, Peer, connected, make_pair
from support import client_config, server_config

from quicish.proto import events as ev
from quicish.proto import handshake as handshake_module
from quicish.proto import versions as versions_module
from quicish.proto.connection import Connection
from quicish.proto.server_context import ServerContext
from quicish.proto.stateless import StatelessResponder
from quicish.proto.versions import (
    VERSION_NEGOTIATION_ERROR,
    choose_version,
    client_hello_transport_parameters,
)
from quicish.simlink import CLIENT_ADDR, SERVER_ADDR
from quicish.wire import frames as F
from quicish.wire.buffer import Buffer
from quicish.wire.packet import QUIC_V1, QUIC_V2, PacketType, parse_header
from quicish.wire.transport_params import TransportParameters, VersionInformation


def _v2_context(*versions: int) -> ServerContext:
    ctx = ServerContext.from_config(server_config())
    ctx.versions = versions or (QUIC_V2, QUIC_V1)
    return ctx


def _versions_on_wire(net: Net, up: bool) -> list[tuple[PacketType, int | None]]:
    return [(PacketType(h.packet_type), h.version) for h in net.headers(up) if h.is_long]


def _transfer(net: Net, c: Peer, s: Peer, size: int = 200_000) -> None:
    data = bytes(range(256)) * (size // 256)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, data, end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=20)
    assert bytes(s.data[sid]) == data


def test_compatible_negotiation_to_v2() -> None:
    net, c, s = make_pair(context=_v2_context())
    connected(net, c, s)
    assert net.client.version == net.server.version == QUIC_V2
    up = _versions_on_wire(net, up=True)
    down = _versions_on_wire(net, up=False)
    assert up[0] == (PacketType.INITIAL, QUIC_V1)  # the client's first flight: v1
    assert all(v == QUIC_V2 for _, v in down)  # the server answered in v2 from the start
    assert all(v == QUIC_V2 for _, v in up[1:])  # and the client followed
    # No extra round trip: the handshake took as long as a v1 one.
    assert sum(1 for t, _ in up if t == PacketType.INITIAL) <= 3
    params = net.client._handshake.peer_params
    assert params is not None and params.version_information is not None
    assert params.version_information.chosen_version == QUIC_V2
    _transfer(net, c, s)


def test_default_client_and_server_stay_on_v1() -> None:
    net, c, s = make_pair()
    connected(net, c, s)
    assert net.client.version == net.server.version == QUIC_V1
    assert all(v == QUIC_V1 for _, v in _versions_on_wire(net, up=False))
    info = net.server._handshake.peer_params.version_information  # type: ignore[union-attr]
    assert info is not None and info.chosen_version == QUIC_V1
    assert QUIC_V2 in info.available_versions  # the client did offer v2


def test_client_offering_only_v1_is_not_switched() -> None:
    net, c, s = make_pair(context=_v2_context(), client_args={"versions": (QUIC_V1,)})
    connected(net, c, s)
    assert net.client.version == net.server.version == QUIC_V1


def test_client_starting_in_v2() -> None:
    net, c, s = make_pair(client_args={"version": QUIC_V2, "versions": (QUIC_V2,)})
    connected(net, c, s)
    assert net.client.version == net.server.version == QUIC_V2
    assert all(v == QUIC_V2 for _, v in _versions_on_wire(net, up=True))
    _transfer(net, c, s)


def test_default_server_follows_the_clients_preference() -> None:
    net, c, s = make_pair(client_args={"versions": (QUIC_V2, QUIC_V1)})  # starts in v1
    connected(net, c, s)
    assert net.client.version == net.server.version == QUIC_V2


def test_v2_client_switched_to_v1_by_a_v1_preferring_server() -> None:
    net, c, s = make_pair(
        client_args={"version": QUIC_V2},  # offers (v2, v1)
        context=_v2_context(QUIC_V1, QUIC_V2),
    )
    connected(net, c, s)
    assert net.client.version == net.server.version == QUIC_V1
    assert _versions_on_wire(net, up=True)[0] == (PacketType.INITIAL, QUIC_V2)
    _transfer(net, c, s, 20_000)


def test_v2_key_update_and_zero_loss_transfer() -> None:
    net, c, s = make_pair(context=_v2_context())
    connected(net, c, s)
    _transfer(net, c, s, 50_000)
    net.client.request_key_update()
    _transfer(net, c, s, 100_000)
    assert net.client.stats().key_updates == net.server.stats().key_updates == 1
    assert net.server.stats().packets_undecryptable == 0


def test_v2_retry() -> None:
    ctx = ServerContext.from_config(server_config())
    responder = StatelessResponder(ctx, retry=True)
    client = Connection(client_config(), is_client=True, version=QUIC_V2)
    client.connect(SERVER_ADDR, 0.0)
    first = client.datagrams_to_send(0.0)[0][0]
    verdict = responder.check_initial(parse_header(first), CLIENT_ADDR, 0.0)
    assert verdict.reply is not None
    retry = parse_header(verdict.reply)
    assert retry.version == QUIC_V2 and retry.packet_type == PacketType.RETRY
    client.receive_datagram(verdict.reply, SERVER_ADDR, 0.01)
    assert client.stats().retries_received == 1  # the v2 integrity tag verified


def test_lost_first_server_flight_still_negotiates() -> None:
    """The server's first v2 flight is lost: the client retransmits its v1 Initial and the
    server (already in v2) still accepts it."""
    net, c, s = make_pair(context=_v2_context())
    dropped: list[bytes] = []
    original = net._transmit

    def drop_first_down(direction: Any, dst: Connection, data: bytes, src: Address) -> None:
        if direction is net.down and not dropped:
            dropped.append(data)
            return
        original(direction, dst, data, src)

    net._transmit = drop_first_down  # type: ignore[method-assign]
    connected(net, c, s)
    assert dropped
    assert net.client.version == net.server.version == QUIC_V2
    up = _versions_on_wire(net, up=True)
    assert up[:2] == [(PacketType.INITIAL, QUIC_V1), (PacketType.INITIAL, QUIC_V1)]


def test_version_information_mismatch_is_version_negotiation_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net, c, s = make_pair(context=_v2_context())
    real = versions_module.version_information

    def lying(version: int, versions: Sequence[int]) -> VersionInformation:
        info = real(version, versions)
        info.chosen_version = QUIC_V1  # the server claims v1 while using v2
        return info

    monkeypatch.setattr(handshake_module, "version_information", lying)
    assert net.run_until(lambda: bool(c.of(ev.ConnectionTerminated)), c, s, timeout=5)
    closed = c.of(ev.ConnectionTerminated)[0]
    assert closed.error_code == VERSION_NEGOTIATION_ERROR and not closed.by_peer


def _client_hello(params: bytes) -> bytes:
    """A minimal TLS ClientHello (RFC 8446 4.1.2) carrying quic_transport_parameters."""
    ext = (0x39).to_bytes(2, "big") + len(params).to_bytes(2, "big") + params
    body = (
        b"\x03\x03"
        + bytes(32)
        + b"\x00"
        + b"\x00\x02\x13\x01"
        + b"\x01\x00"
        + len(ext).to_bytes(2, "big")
        + ext
    )
    return b"\x01" + len(body).to_bytes(3, "big") + body


def test_client_hello_transport_parameters_finds_the_offset_zero_crypto_frame() -> None:
    params = TransportParameters(
        version_information=VersionInformation(QUIC_V1, [QUIC_V2, QUIC_V1])
    ).encode()
    hello = _client_hello(params)
    buf = Buffer()
    F.encode_frame(buf, F.PingFrame())
    F.encode_frame(buf, F.CryptoFrame(len(hello), b"later"))  # out of order: skipped
    F.encode_frame(buf, F.CryptoFrame(0, hello))
    buf.push_bytes(bytes(40))  # PADDING
    payload = bytes(buf.take())
    assert client_hello_transport_parameters(payload) == params
    assert choose_version(QUIC_V1, params) == QUIC_V2
    assert choose_version(QUIC_V1, params, (QUIC_V1, QUIC_V2)) == QUIC_V1
    # Truncated, other frames first, or garbage: no parameters, the original version stays.
    assert client_hello_transport_parameters(payload[:30]) is None
    assert client_hello_transport_parameters(b"\x02" + payload) is None
    assert choose_version(QUIC_V1, b"\x11\x09\x00") == QUIC_V1


def test_client_hello_transport_parameters_never_reads_past_a_bound() -> None:
    """Every truncated ClientHello gives None (the parameters only from a whole one), and
    random corruption gives None or bytes, never an exception."""
    import random

    params = TransportParameters(
        version_information=VersionInformation(QUIC_V1, [QUIC_V2, QUIC_V1])
    ).encode()
    hello = _client_hello(params)

    def payload(message: bytes) -> bytes:
        buf = Buffer()
        F.encode_frame(buf, F.CryptoFrame(0, message))
        return bytes(buf.take())

    assert client_hello_transport_parameters(payload(hello)) == params
    for cut in range(len(hello)):
        assert client_hello_transport_parameters(payload(hello[:cut])) is None, cut
    rng = random.Random(7)
    for _ in range(2000):
        corrupt = bytearray(hello)
        for _ in range(rng.randint(1, 4)):
            corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        found = client_hello_transport_parameters(payload(bytes(corrupt)))
        assert found is None or isinstance(found, bytes)

"""The handshake stock (quicish.proto.handshake_stock): key pairs and client Initials made
ahead of need, each used once, bounded, owned by whoever passes it to connections."""

from __future__ import annotations

import pytest
from aio_support import echo, timed
from support import client_config, server_config

import quicish
from quicish.proto.connection import Connection
from quicish.proto.handshake_stock import (
    MAX_INITIALS,
    MAX_KEY_PAIRS,
    HandshakeStock,
    initial_protectors,
)
from quicish.tls import groups
from quicish.wire.packet import QUIC_V1, QUIC_V2, parse_header

SERVER = ("192.0.2.100", 443)


def test_key_pairs_are_bounded_per_group_and_taken_once() -> None:
    stock = HandshakeStock(max_key_pairs=2)
    assert stock.take_key_pair(groups.X25519) is None  # nothing made yet
    for _ in range(3):
        stock.stock_key_pair(groups.X25519)
    stock.stock_key_pair(groups.SECP256R1)
    assert stock.key_pairs(groups.X25519) == 2 and stock.key_pairs(groups.SECP256R1) == 1
    first, second = stock.take_key_pair(groups.X25519), stock.take_key_pair(groups.X25519)
    assert first is not None and second is not None and first[1] != second[1]
    assert stock.take_key_pair(groups.X25519) is None
    p256 = stock.take_key_pair(groups.SECP256R1)
    assert p256 is not None and len(p256[1]) == 65  # an uncompressed P-256 point
    assert HandshakeStock().max_key_pairs == MAX_KEY_PAIRS


def test_initials_are_bounded_per_version_and_match_the_dcid() -> None:
    draws: list[bytes] = []

    def random_bytes(n: int) -> bytes:
        draws.append(bytes([len(draws) + 1]) * n)
        return draws[-1]

    stock = HandshakeStock(random_bytes=random_bytes)
    for _ in range(MAX_INITIALS + 1):
        stock.stock_initial(QUIC_V1)
    stock.stock_initial(QUIC_V2)
    assert stock.initials(QUIC_V1) == MAX_INITIALS and stock.initials(QUIC_V2) == 1
    assert len(draws) == MAX_INITIALS + 1  # (no DCID drawn for a full stock)
    taken = stock.take_initial(QUIC_V1)
    assert taken is not None
    dcid, tx, rx = taken
    assert dcid == draws[1] and len(dcid) == 8  # the last stocked comes out first
    # The same keys as made when needed: what the client seals, the server opens.
    server_tx, server_rx = initial_protectors(dcid, QUIC_V1, is_client=False)
    assert (tx.secret, rx.secret) == (server_rx.secret, server_tx.secret)
    assert stock.take_initial(QUIC_V1) is not None and stock.take_initial(QUIC_V1) is None
    assert stock.initials(QUIC_V2) == 1  # versions are apart


def test_a_client_uses_the_stock_it_is_given_only() -> None:
    """A client's prepare() fills the stock it was given (a key pair of its first group and
    an Initial of its version) and the next client made with that stock starts from them;
    a client without a stock takes nothing from anyone's and stocks nothing."""
    stock = HandshakeStock()
    first = Connection(client_config(), is_client=True, handshake_stock=stock)
    first.connect(SERVER, 0.0)
    first.prepare(0.0)
    assert stock.key_pairs(groups.X25519) == 1 and stock.initials(QUIC_V1) == 1
    plain = Connection(client_config(), is_client=True)
    plain.connect(SERVER, 0.0)
    plain.prepare(0.0)
    assert stock.key_pairs(groups.X25519) == 1 and stock.initials(QUIC_V1) == 1
    ((dcid, _, _),) = stock._initials[QUIC_V1]
    ((_, public),) = stock._key_pairs[groups.X25519]
    second = Connection(client_config(), is_client=True, handshake_stock=stock)
    second.connect(SERVER, 1.0)
    hello = second.datagrams_to_send(1.0)[0][0]
    assert parse_header(hello).dcid == dcid
    assert stock.key_pairs(groups.X25519) == 0 and stock.initials(QUIC_V1) == 0
    assert second._handshake.tls is not None
    assert second._handshake.tls._hs._key_shares[groups.X25519].public_bytes == public  # type: ignore[union-attr]


@timed()
async def test_the_asyncio_client_stocks_for_its_next_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """connect() passes its driver's stock: the connection's prepare() fills it while it
    waits for the server, and the next client (the spare made as the connection ends)
    starts from what it stocked."""
    from quicish.aio import api

    spares = api._SpareClient()
    monkeypatch.setattr(api, "_spare_client", spares)
    stock = spares.handshake_stock
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    try:
        async with quicish.connect("127.0.0.1", server.address[1], config=client_config()) as c:
            reader, writer = await c.open_stream()
            writer.write(b"x")
            writer.write_eof()
            assert await reader.read() == b"x"
            assert stock.initials(QUIC_V1) == 1 and stock.key_pairs(groups.X25519) == 1
            ((dcid, _, _),) = stock._initials[QUIC_V1]
        await c.wait_released()  # the spare is made as the connection ends
        assert spares._spare is not None
        assert spares._spare[3]._handshake.original_dcid == dcid
        assert stock.initials(QUIC_V1) == 0 and stock.key_pairs(groups.X25519) == 0
    finally:
        spares.discard()
        server.close()
        await server.wait_closed()

"""QUIC v2 by compatible version negotiation over loopback UDP: quicish to quicish, and
against aioquic (tests only) in both roles."""

from __future__ import annotations

from aio_support import echo, timed
from aioquic.quic.packet import QuicProtocolVersion
from aioquic_support import aioquic_request, aioquic_server
from support import client_config, server_config

import quicish
from quicish.wire.packet import QUIC_V1, QUIC_V2

PREFER_V2 = (QUIC_V2, QUIC_V1)
DATA = b"v2" * 100_000


async def _echo(conn: quicish.QuicConnection) -> bytes:
    reader, writer = await conn.open_stream()
    writer.write(DATA)
    writer.write_eof()
    return await reader.read()


@timed()
async def test_quicish_to_quicish_negotiates_v2() -> None:
    conns: list[quicish.QuicConnection] = []
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(),
        on_stream=echo,
        on_connection=conns.append,
        versions=PREFER_V2,
    )
    async with server:
        conn = await quicish.connect("127.0.0.1", server.address[1], config=client_config())
        async with conn:  # a default client: starts in v1, offers v2
            assert await _echo(conn) == DATA
            assert conn.version == QUIC_V2
            assert conns[-1].version == QUIC_V2


@timed()
async def test_default_server_follows_a_client_preferring_v2() -> None:
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    async with server:
        conn = await quicish.connect(
            "127.0.0.1", server.address[1], config=client_config(), versions=PREFER_V2
        )
        async with conn:
            assert await _echo(conn) == DATA
            assert conn.version == QUIC_V2


@timed()
async def test_server_preferring_v1_keeps_v1() -> None:
    server = await quicish.serve(
        "127.0.0.1", 0, config=server_config(), on_stream=echo, versions=(QUIC_V1, QUIC_V2)
    )
    async with server:
        conn = await quicish.connect(
            "127.0.0.1", server.address[1], config=client_config(), versions=PREFER_V2
        )
        async with conn:
            assert await _echo(conn) == DATA
            assert conn.version == QUIC_V1  # the server's preference decides


@timed()
async def test_quicish_client_negotiates_v2_with_aioquic() -> None:
    async with aioquic_server() as server:
        conn = await quicish.connect(
            "127.0.0.1", server.port, config=client_config(), versions=PREFER_V2
        )
        async with conn:
            assert await _echo(conn) == DATA
            assert conn.version == QUIC_V2
            assert server.protocols[-1]._quic._version == QUIC_V2


@timed()
async def test_aioquic_client_negotiates_v2_with_quicish() -> None:
    conns: list[quicish.QuicConnection] = []
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(),
        on_stream=echo,
        on_connection=conns.append,
        versions=PREFER_V2,
    )
    async with server:
        answer, client, _ = await aioquic_request(
            server.address[1],
            DATA,
            config_kw={
                "original_version": QuicProtocolVersion.VERSION_1,
                "supported_versions": [
                    QuicProtocolVersion.VERSION_1,
                    QuicProtocolVersion.VERSION_2,
                ],
            },
        )
        assert answer == DATA
        assert client._quic._version == QUIC_V2
        assert conns[-1].version == QUIC_V2

"""Migration against aioquic (tests only): an aioquic client behind a NAT rebinding (its
socket replaced mid-transfer) against a quicish server, and a quicish client that rebinds or
actively migrates mid-transfer against an aioquic server."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aio_support import timed
from aioquic_support import aioquic_request, aioquic_server
from support import client_config, server_config
from test_aio_migration import SIZE, Downloads

import quicish
from quicish.udp import UdpSocket

WINDOWS: dict[str, Any] = {"max_data": 8 << 20, "max_stream_data": 8 << 20}  # the whole upload


async def _rebind_aioquic(client: Any) -> int:
    """NAT rebinding for an aioquic client: a new socket under the same protocol."""
    await client.ping()  # one round trip into the transfer
    loop = asyncio.get_running_loop()
    old = client._transport
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", 0))
    await loop.create_datagram_endpoint(lambda: client, sock=sock)
    old.close()
    return int(sock.getsockname()[1])


@timed(30)
async def test_aioquic_client_nat_rebinding_against_quicish_server() -> None:
    app = Downloads()
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(),
        on_stream=app.on_stream,
        on_connection=app.on_connection,
    )
    new_ports: list[int] = []

    async def rebind(client: Any) -> None:
        new_ports.append(await _rebind_aioquic(client))

    async with server:
        answer, _, _ = await aioquic_request(
            server.address[1],
            b"GET /big\r\n",
            during=rebind,
            config_kw={"max_data": 8 << 20, "max_stream_data": 8 << 20},
        )
        server_conn = app.conns[-1]
        assert len(answer) == SIZE
        new_addr = ("127.0.0.1", new_ports[0])
        assert server_conn.remote_address == new_addr
        assert (new_addr, 0) in server_conn.validated_paths  # PATH_CHALLENGE answered
        assert server_conn.stats().path_migrations == 1


def _rebind_quicish(conn: quicish.QuicConnection) -> int:
    """NAT rebinding under a quicish client: its endpoint's socket is swapped."""
    endpoint = conn._endpoint
    loop = asyncio.get_running_loop()
    old = endpoint.udp
    new = UdpSocket.bind("127.0.0.1", 0)
    loop.remove_reader(old.fileno())
    endpoint.udp = new
    loop.add_reader(new.fileno(), endpoint._on_readable)
    old.close()
    return new.address[1]


@timed(30)
async def test_quicish_client_nat_rebinding_against_aioquic_server() -> None:
    data = bytes(range(256)) * (SIZE // 256)
    async with aioquic_server(**WINDOWS) as server:
        conn = await quicish.connect("127.0.0.1", server.port, config=client_config(**WINDOWS))
        async with conn:
            reader, writer = await conn.open_stream()
            writer.write(data)
            await writer.drain()  # most of the upload is out, the rest still to go
            assert conn.stats().bytes_sent < SIZE
            port = _rebind_quicish(conn)  # the client keeps sending, from a new port
            writer.write_eof()
            assert await reader.read() == data
            path = server.protocols[-1]._quic._network_paths[0]
            assert path.addr[1] == port and path.is_validated


@timed(30)
async def test_quicish_client_active_migration_against_aioquic_server() -> None:
    data = bytes(range(256)) * (SIZE // 256)
    async with aioquic_server(**WINDOWS) as server:
        conn = await quicish.connect("127.0.0.1", server.port, config=client_config(**WINDOWS))
        async with conn:
            reader, writer = await conn.open_stream()
            writer.write(data)
            writer.write_eof()
            first = await reader.readexactly(SIZE // 8)
            old_port = conn.local_address[1]
            await conn.migrate()
            assert conn.local_address[1] != old_port
            rest = await reader.read()
            assert first + rest == data
            path = server.protocols[-1]._quic._network_paths[0]
            assert path.addr[1] == conn.local_address[1] and path.is_validated
            assert conn.stats().path_migrations == 1

"""Active migration over loopback UDP, quicish to quicish: the client moves to a new local
socket mid-transfer with ``QuicConnection.migrate()``; the server sees the new address,
validates it and the transfer completes on the new path."""

from __future__ import annotations

import pytest
from aio_support import echo, timed
from support import client_config, server_config

import quicish
from quicish import QuicConnection, QuicStreamReader, QuicStreamWriter

SIZE = 4 << 20


class Downloads:
    """Answers every request with SIZE bytes; remembers its connections."""

    def __init__(self) -> None:
        self.conns: list[QuicConnection] = []

    def on_connection(self, conn: QuicConnection) -> None:
        self.conns.append(conn)

    async def on_stream(self, reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        await reader.read()
        writer.write(bytes(SIZE))
        writer.write_eof()
        await writer.drain()


@timed(30)
async def test_active_migration_mid_transfer() -> None:
    app = Downloads()
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(),
        on_stream=app.on_stream,
        on_connection=app.on_connection,
    )
    async with (
        server,
        quicish.connect(
            "127.0.0.1", server.address[1], config=client_config(max_data=8 << 20)
        ) as conn,
    ):
        old_local = conn.local_address
        reader, writer = await conn.open_stream()
        writer.write(b"GET /big\r\n")
        writer.write_eof()
        first = await reader.readexactly(SIZE // 8)  # the transfer is under way
        await conn.migrate()
        assert conn.local_address != old_local
        rest = await reader.read()
        assert len(first) + len(rest) == SIZE
        server_conn = app.conns[-1]
        new_addr = ("127.0.0.1", conn.local_address[1])
        assert server_conn.remote_address == new_addr
        assert (new_addr, 0) in server_conn.validated_paths
        assert server_conn.stats().path_migrations == 1
        assert conn.stats().path_migrations == 1
        # The connection keeps working on the new path.
        reader, writer = await conn.open_stream()
        writer.write(b"GET /again\r\n")
        writer.write_eof()
        assert len(await reader.read()) == SIZE


@timed()
async def test_migrate_refused_when_server_disables_it() -> None:
    server = await quicish.serve(
        "127.0.0.1", 0, on_stream=echo, config=server_config(disable_active_migration=True)
    )
    async with (
        server,
        quicish.connect("127.0.0.1", server.address[1], config=client_config()) as conn,
    ):
        reader, writer = await conn.open_stream()
        writer.write(b"x")
        writer.write_eof()
        assert await reader.read() == b"x"  # a round trip: HANDSHAKE_DONE is in
        assert conn._proto.handshake_confirmed
        with pytest.raises(quicish.ConnectionStateError, match="disabled"):
            await conn.migrate()

"""Stateless reset over loopback UDP: a quicish server that lost its state (a restart on the
same port, the same configured ``stateless_reset_key``) answers the old connection's packets
with a stateless reset, and the client recognises it and ends the connection."""

from __future__ import annotations

import os

from aio_support import echo, timed
from support import client_config, server_config

import quicish


@timed()
async def test_client_terminates_on_reset_after_server_restart() -> None:
    config = server_config(stateless_reset_key=os.urandom(32))  # kept across the restart
    server = await quicish.serve("127.0.0.1", 0, config=config, on_stream=echo)
    port = server.address[1]
    conn = await quicish.connect("127.0.0.1", port, config=client_config())
    try:
        reader, writer = await conn.open_stream()
        writer.write(b"before")
        writer.write_eof()
        assert await reader.read() == b"before"
        server._endpoint.close()  # the server process "crashes": no CONNECTION_CLOSE
        restarted = await quicish.serve("127.0.0.1", port, config=config, on_stream=echo)
        async with restarted:
            reader, writer = await conn.open_stream()
            writer.write(b"after")
            writer.write_eof()
            await conn.wait_closed()
            stateless = restarted._endpoint.stateless
            assert stateless is not None and stateless.resets_sent >= 1
            assert not restarted.connections
        assert conn.close_error is not None
        assert conn.close_error.reason == "stateless reset" and conn.close_error.by_peer
    finally:
        conn.close()

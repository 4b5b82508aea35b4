"""Key updates initiated by quicish, against aioquic (tests only) in both roles: aioquic
follows, the transfer completes intact and both end in the same key phase. (Updates started
by aioquic: test_interop_aioquic.py.)"""

from __future__ import annotations

from typing import Any

from aio_support import timed
from aioquic import tls
from aioquic_support import aioquic_request, aioquic_server
from support import client_config, server_config

import quicish
from quicish import QuicConnection, QuicStreamReader, QuicStreamWriter

SIZE = 4 << 20
DATA = bytes(range(256)) * (SIZE // 256)
BIG: dict[str, Any] = {"max_data": 8 << 20, "max_stream_data": 8 << 20}


def _aioquic_phase(protocol: Any) -> int:
    return int(protocol._quic._cryptos[tls.Epoch.ONE_RTT].send.key_phase)


@timed(30)
async def test_quicish_client_updates_keys_aioquic_server_follows() -> None:
    async with aioquic_server(**BIG) as server:
        conn = await quicish.connect("127.0.0.1", server.port, config=client_config(**BIG))
        async with conn:
            reader, writer = await conn.open_stream()
            writer.write(DATA)
            await writer.drain()  # well into the upload
            conn.request_key_update()
            writer.write_eof()
            assert await reader.read() == DATA
            assert conn.stats().key_updates == 1
            assert conn.stats().packets_undecryptable == 0
            assert _aioquic_phase(server.protocols[-1]) == conn._proto._keys.phase == 1


class KeyUpdatingServer:
    """Echoes, and starts a key update when half of the request arrived."""

    def __init__(self) -> None:
        self.conns: list[QuicConnection] = []

    def on_connection(self, conn: QuicConnection) -> None:
        self.conns.append(conn)

    async def on_stream(self, reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        first = await reader.readexactly(SIZE // 2)
        self.conns[-1].request_key_update()
        rest = await reader.read()
        writer.write(first + rest)
        writer.write_eof()


@timed(30)
async def test_quicish_server_updates_keys_aioquic_client_follows() -> None:
    app = KeyUpdatingServer()
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(**BIG),
        on_stream=app.on_stream,
        on_connection=app.on_connection,
    )
    async with server:
        answer, client, _ = await aioquic_request(server.address[1], DATA, config_kw=BIG)
        sconn = app.conns[-1]
        assert answer == DATA
        assert sconn.stats().key_updates == 1
        assert sconn.stats().packets_undecryptable == 0
        assert _aioquic_phase(client) == sconn._proto._keys.phase == 1


@timed(30)
async def test_quicish_to_quicish_updates_both_ways() -> None:
    app = KeyUpdatingServer()
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(**BIG),
        on_stream=app.on_stream,
        on_connection=app.on_connection,
    )
    async with server:
        conn = await quicish.connect("127.0.0.1", server.address[1], config=client_config(**BIG))
        async with conn:
            reader, writer = await conn.open_stream()
            writer.write(DATA)
            await writer.drain()
            conn.request_key_update()  # the client's update (the server adds its own)
            writer.write_eof()
            assert await reader.read() == DATA
            sconn = app.conns[-1]
            assert conn.stats().key_updates == sconn.stats().key_updates >= 2
            assert conn._proto._keys.phase == sconn._proto._keys.phase

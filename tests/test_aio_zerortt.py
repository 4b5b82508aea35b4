"""0-RTT over real loopback UDP, quicish to quicish: ``connect(session_ticket=...,
early_data=True)`` returns before the handshake, the request goes in 0-RTT and the server
acts on it before its handshake completes; a rejected 0-RTT is re-sent in 1-RTT."""

from __future__ import annotations

from typing import Any

from aio_support import timed
from support import client_config, server_config

import quicish
from quicish import QuicConnection, QuicStreamReader, QuicStreamWriter

REQUEST = b"GET /zero\r\n" * 300  # 3.3 KB: more than one 0-RTT packet


class Recorder:
    """A server that echoes each stream and notes whether its handshake had completed
    when the stream's first data arrived."""

    def __init__(self) -> None:
        self.conns: list[QuicConnection] = []
        self.early: list[bool] = []  # per stream: data seen before the handshake completed

    def on_connection(self, conn: QuicConnection) -> None:
        self.conns.append(conn)

    def on_stream(self, reader: QuicStreamReader, writer: QuicStreamWriter) -> Any:
        conn = self.conns[-1]
        self.early.append(not conn._proto.handshake_complete)
        return self._echo(reader, writer)

    async def _echo(self, reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        data = await reader.read()
        writer.write(data)
        writer.write_eof()


async def get_ticket(port: int) -> bytes:
    """A session ticket from a first quicish connection to ``port`` (one echoed request)."""
    async with quicish.connect("127.0.0.1", port, config=client_config()) as conn:
        reader, writer = await conn.open_stream()
        writer.write(b"first")
        writer.write_eof()
        assert await reader.read() == b"first"
        ticket = await conn.wait_session_ticket()
        assert ticket is not None
        return ticket


async def _early_request(port: int, ticket: bytes) -> tuple[bytes, bool, bool, bool]:
    conn = await quicish.connect(
        "127.0.0.1", port, config=client_config(), session_ticket=ticket, early_data=True
    )
    try:
        returned_early = not conn._proto.handshake_complete
        reader, writer = await conn.open_stream()
        writer.write(REQUEST)
        writer.write_eof()
        answer = await reader.read()
        await conn.wait_connected()
        return answer, returned_early, conn.session_resumed, conn.early_data_accepted
    finally:
        conn.close()
        await conn.wait_closed()


@timed()
async def test_zero_rtt_request_acted_on_before_handshake() -> None:
    rec = Recorder()
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(),
        on_stream=rec.on_stream,
        on_connection=rec.on_connection,
    )
    async with server:
        port = server.address[1]
        ticket = await get_ticket(port)
        answer, returned_early, resumed, accepted = await _early_request(port, ticket)
    assert answer == REQUEST
    assert returned_early
    assert resumed and accepted
    assert rec.early == [False, True]  # the 0-RTT request reached the handler first


@timed()
async def test_zero_rtt_rejected_after_server_restart_is_resent() -> None:
    rec = Recorder()
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(),
        on_stream=rec.on_stream,
        on_connection=rec.on_connection,
    )
    async with server:
        ticket = await get_ticket(server.address[1])
    # A new server process: new ticket keys, so the ticket neither resumes nor carries 0-RTT.
    rec2 = Recorder()
    server2 = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(),
        on_stream=rec2.on_stream,
        on_connection=rec2.on_connection,
    )
    async with server2:
        answer, returned_early, resumed, accepted = await _early_request(server2.address[1], ticket)
    assert answer == REQUEST
    assert returned_early
    assert not resumed and not accepted
    assert rec2.early == [False]  # the data only arrived once the handshake was done

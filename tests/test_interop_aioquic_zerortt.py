"""Resumption and 0-RTT against aioquic (tests only), both roles: accepted (the server acted
on 0-RTT data before its handshake completed) and rejected-then-recovered."""

from __future__ import annotations

from aio_support import timed
from aioquic_support import aioquic_request, aioquic_server
from support import client_config, server_config
from test_aio_zerortt import REQUEST, Recorder, get_ticket

import quicish


async def _quicish_early(port: int, ticket: bytes) -> tuple[bytes, bool, bool]:
    conn = await quicish.connect(
        "127.0.0.1", port, config=client_config(), session_ticket=ticket, early_data=True
    )
    try:
        assert not conn._proto.handshake_complete
        reader, writer = await conn.open_stream()
        writer.write(REQUEST)
        writer.write_eof()
        answer = await reader.read()
        await conn.wait_connected()
        return answer, conn.session_resumed, conn.early_data_accepted
    finally:
        conn.close()
        await conn.wait_closed()


# ---- quicish client, aioquic server ------------------------------------------------------------
@timed()
async def test_quicish_client_zero_rtt_accepted_by_aioquic() -> None:
    async with aioquic_server() as server:
        ticket = await get_ticket(server.port)
        answer, resumed, accepted = await _quicish_early(server.port, ticket)
        log = server.protocols[-1].log
    assert answer == REQUEST
    assert resumed and accepted
    assert server.protocols[-1].early_data_accepted
    assert log[0] == ("data", False)  # aioquic had the request before its handshake completed


@timed()
async def test_quicish_client_zero_rtt_rejected_by_new_aioquic_server() -> None:
    async with aioquic_server() as server:
        ticket = await get_ticket(server.port)
    async with aioquic_server() as server2:  # knows nothing of the ticket
        answer, resumed, accepted = await _quicish_early(server2.port, ticket)
        log = server2.protocols[-1].log
    assert answer == REQUEST
    assert not resumed and not accepted
    assert log[0] == ("handshake", None)


# ---- aioquic client, quicish server ------------------------------------------------------------
async def _quicish_server(rec: Recorder) -> quicish.Server:
    return await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(),
        on_stream=rec.on_stream,
        on_connection=rec.on_connection,
    )


@timed()
async def test_aioquic_client_zero_rtt_accepted_by_quicish() -> None:
    rec = Recorder()
    async with await _quicish_server(rec) as server:
        port = server.address[1]
        _, _, tickets = await aioquic_request(port, b"first")
        assert tickets, "quicish issued no session ticket"
        answer, client, _ = await aioquic_request(port, REQUEST, ticket=tickets[-1], early=True)
    assert answer == REQUEST
    assert client.session_resumed and client.early_data_accepted
    assert rec.early == [False, True]  # quicish acted on the 0-RTT request
    assert rec.conns[-1].early_data_accepted


@timed()
async def test_aioquic_client_zero_rtt_rejected_by_restarted_quicish() -> None:
    rec = Recorder()
    async with await _quicish_server(rec) as server:
        _, _, tickets = await aioquic_request(server.address[1], b"first")
    rec2 = Recorder()
    async with await _quicish_server(rec2) as server2:
        answer, client, _ = await aioquic_request(
            server2.address[1], REQUEST, ticket=tickets[-1], early=True
        )
    assert answer == REQUEST
    assert not client.session_resumed and not client.early_data_accepted
    assert rec2.early == [False]


@timed()
async def test_aioquic_client_resumes_with_quicish() -> None:
    rec = Recorder()
    async with await _quicish_server(rec) as server:
        port = server.address[1]
        _, _, tickets = await aioquic_request(port, b"first")
        answer, client, _ = await aioquic_request(port, b"second", ticket=tickets[-1])
    assert answer == b"second"
    assert client.session_resumed
    assert rec.conns[-1].session_resumed

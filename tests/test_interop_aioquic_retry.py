"""Retry against aioquic (tests only), both roles; and the NEW_TOKEN aioquic receives from a
quicish server lets it reconnect without a Retry."""

from __future__ import annotations

from aio_support import echo, timed
from aioquic_support import aioquic_request, aioquic_server
from support import client_config, server_config

import quicish


@timed()
async def test_quicish_client_through_aioquic_retry() -> None:
    async with aioquic_server(retry=True) as server:
        conn = await quicish.connect("127.0.0.1", server.port, config=client_config())
        async with conn:
            reader, writer = await conn.open_stream()
            writer.write(b"r" * 20_000)
            writer.write_eof()
            assert await reader.read() == b"r" * 20_000
            assert conn.stats().retries_received == 1
            assert not conn._proto.is_terminated


@timed()
async def test_aioquic_client_through_quicish_retry() -> None:
    server = await quicish.serve("127.0.0.1", 0, config=server_config(retry=True), on_stream=echo)
    async with server:
        answer, client, _ = await aioquic_request(server.address[1], b"q" * 20_000)
        stateless = server._endpoint.stateless
        assert stateless is not None and stateless.retries_sent == 1
    assert answer == b"q" * 20_000
    assert client._quic._retry_count == 1


@timed()
async def test_aioquic_client_reuses_quicish_new_token() -> None:
    server = await quicish.serve("127.0.0.1", 0, config=server_config(retry=True), on_stream=echo)
    async with server:
        tokens: list[bytes] = []
        port = server.address[1]
        await aioquic_request(port, b"one", token_handler=tokens.append)
        assert tokens, "no NEW_TOKEN reached aioquic"
        answer, client, _ = await aioquic_request(port, b"two", config_kw={"token": tokens[-1]})
        stateless = server._endpoint.stateless
        assert stateless is not None and stateless.retries_sent == 1
    assert answer == b"two"
    assert client._quic._retry_count == 0

"""Retry and NEW_TOKEN over loopback UDP, quicish to quicish (``Config(retry=True)``)."""

from __future__ import annotations

from aio_support import echo, echo_once, timed
from support import client_config, server_config

import quicish


@timed()
async def test_retry_then_new_token_skips_it() -> None:
    server = await quicish.serve("127.0.0.1", 0, config=server_config(retry=True), on_stream=echo)
    async with server:
        port = server.address[1]
        stateless = server._endpoint.stateless
        assert stateless is not None
        async with quicish.connect("127.0.0.1", port, config=client_config()) as conn:
            assert await echo_once(conn, b"a" * 30_000) == b"a" * 30_000
            assert conn.stats().retries_received == 1
            token = conn.new_token
        assert stateless.retries_sent == 1
        assert token is not None
        async with quicish.connect("127.0.0.1", port, config=client_config(), token=token) as conn2:
            assert await echo_once(conn2, b"b") == b"b"
            assert conn2.stats().retries_received == 0
        assert stateless.retries_sent == 1  # the NEW_TOKEN validated the address


@timed()
async def test_invalid_token_closes_with_invalid_token() -> None:
    server = await quicish.serve("127.0.0.1", 0, config=server_config(retry=True), on_stream=echo)
    async with server:
        forged = b"R" + bytes(60)
        try:
            await quicish.connect(
                "127.0.0.1", server.address[1], config=client_config(), token=forged
            )
        except quicish.ConnectionClosedError as exc:
            assert exc.error_code == quicish.ErrorCode.INVALID_TOKEN
            assert exc.by_peer
        else:
            raise AssertionError("a forged Retry token was accepted")
        assert server._endpoint.stateless is not None
        assert server._endpoint.stateless.invalid_tokens == 1

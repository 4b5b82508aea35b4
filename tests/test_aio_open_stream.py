"""``quicish.open_stream``: the one-stream shortcut, and per-stream byte counters a progress
display can trust (bytes acknowledged, not bytes buffered)."""

from __future__ import annotations

import asyncio

from aio_support import echo, pair, timed
from support import client_config, server_config

import quicish


@timed()
async def test_open_stream_one_liner_echo_and_connection_closes_after() -> None:
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    async with server:
        reader, writer = await quicish.open_stream(
            "127.0.0.1", server.address[1], config=client_config()
        )
        writer.write(b"one liner")
        writer.write_eof()
        assert await reader.read() == b"one liner"
        conn = writer.get_extra_info("connection")
        assert isinstance(conn, quicish.QuicConnection)
        await asyncio.wait_for(conn.wait_closed(), 5)  # closed by itself, code 0
        assert conn.close_error is not None and conn.close_error.error_code == 0
        assert not conn.close_error.by_peer


@timed()
async def test_writer_counts_bytes_written_sent_and_acknowledged() -> None:
    size = 2 << 20
    async with pair(server_kw={"max_stream_data": 256 << 10, "max_data": 512 << 10}) as (_, c):
        reader, writer = await c.open_stream()
        writer.write(bytes(size))
        # Buffered, not delivered: the peer's flow control holds most of it back.
        assert writer.bytes_written == size
        assert writer.bytes_acked < size and writer.bytes_sent <= 512 << 10
        writer.write_eof()
        acked_seen = [writer.bytes_acked]
        while acked_seen[-1] < size:  # what a progress display would poll
            await asyncio.sleep(0.001)
            acked_seen.append(writer.bytes_acked)
            assert writer.bytes_acked <= writer.bytes_sent <= size
        assert acked_seen == sorted(acked_seen)  # never goes back
        assert any(0 < n < size for n in acked_seen)  # progress seen mid-transfer
        received = len(await reader.read())
        assert received == size
        await writer.wait_closed()
        assert writer.bytes_sent == writer.bytes_acked == size
        assert reader.bytes_received == size

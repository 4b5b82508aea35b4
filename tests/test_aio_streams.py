"""asyncio streams over real loopback UDP: echo, concurrency, unidirectional streams, the
StreamReader/StreamWriter API, backpressure, reset and stop_sending."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from aio_support import pair, timed

from quicish import (
    ConnectionClosedError,
    QuicStreamReader,
    QuicStreamWriter,
    StreamError,
    StreamResetError,
)


@timed()
async def test_echo_bidi() -> None:
    async with pair() as (server, conn):
        assert conn.alpn == "hq-interop"
        reader, writer = await conn.open_stream()
        assert writer.stream_id == 0
        writer.write(b"hello quic")
        writer.write_eof()
        assert await reader.read() == b"hello quic"
        assert reader.at_eof()
        assert len(server.connections) == 1


@timed()
async def test_echo_large_payload() -> None:
    payload = os.urandom(3 << 20)
    async with pair() as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write(payload)
        writer.write_eof()
        data = await reader.read()
        assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()


@timed(30)
async def test_many_concurrent_streams() -> None:
    count = 300  # more than the default limit of 128 concurrent bidi streams

    async def one(i: int) -> bytes:
        reader, writer = await conn.open_stream()
        body = i.to_bytes(4, "big") * (i % 50 + 1)
        writer.write(body)
        writer.write_eof()
        got = await reader.read()
        assert got == body, i
        return got

    async with pair() as (_, conn):
        results = await asyncio.gather(*(one(i) for i in range(count)))
        assert len(results) == count
        stats = conn.stats()
        assert stats.packets_lost >= 0


@timed()
async def test_unidirectional_client_to_server() -> None:
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handler(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        assert reader.stream_id & 0x2  # a unidirectional stream id
        assert writer.is_closing()
        with pytest.raises(StreamError):
            writer.write(b"x")
        received.set_result(await reader.read())

    async with pair(handler) as (_, conn):
        _, writer = await conn.open_stream(unidirectional=True)
        assert writer.stream_id == 2
        writer.write(b"one way")
        writer.write_eof()
        assert await received == b"one way"
        await writer.wait_closed()


@timed()
async def test_unidirectional_server_to_client() -> None:
    async def handler(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        name = await reader.read()
        conn = writer.get_extra_info("connection")
        _, uni = await conn.open_stream(unidirectional=True)
        assert uni.stream_id & 0x3 == 0x3  # server-initiated unidirectional
        uni.write(b"push: " + name)
        uni.write_eof()
        writer.write_eof()

    async with pair(handler) as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write(b"abc")
        writer.write_eof()
        assert await reader.read() == b""
        uni_reader, uni_writer = await conn.accept_stream()
        assert uni_reader.stream_id == 3
        assert uni_writer.is_closing()
        assert await uni_reader.read() == b"push: abc"


STORY = b"first line\nsecond line\r\nABCDEFGHIJ--END--tail"


async def _send_story(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
    await reader.read()
    for piece in (STORY[:5], STORY[5:23], STORY[23:40], STORY[40:]):
        writer.write(piece)
        await writer.drain()
    writer.write_eof()


@timed()
async def test_reader_api() -> None:
    async with pair(_send_story) as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write_eof()
        assert await reader.read(0) == b""
        assert await reader.readline() == b"first line\n"
        assert await reader.readuntil(b"\r\n") == b"second line\r\n"
        assert await reader.readexactly(3) == b"ABC"
        chunk = await reader.read(2)
        assert 1 <= len(chunk) <= 2 and b"DE".startswith(chunk)
        rest = await reader.readuntil(b"--END--")
        assert (chunk + rest) == b"DEFGHIJ--END--"
        assert not reader.at_eof()
        assert await reader.read() == b"tail"
        assert reader.at_eof()
        assert await reader.read() == b""
        assert await reader.read(10) == b""
        assert await reader.readline() == b""


@timed()
async def test_reader_incomplete_reads() -> None:
    async with pair(_send_story) as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write_eof()
        assert await reader.readexactly(len(STORY) - 4) == STORY[:-4]
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readexactly(10)
        assert info.value.partial == b"tail"
        assert info.value.expected == 10
        assert reader.at_eof()

    async with pair(_send_story) as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write_eof()
        with pytest.raises(asyncio.IncompleteReadError) as info2:
            await reader.readuntil(b"never")
        assert info2.value.partial == STORY
        with pytest.raises(ValueError):
            await reader.readuntil(b"")


@timed()
async def test_reader_async_iteration() -> None:
    lines = [b"alpha\n", b"beta\n", b"gamma\n", b"no newline"]

    async def handler(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        await reader.read()
        writer.writelines(lines)
        writer.write_eof()

    async with pair(handler) as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write_eof()
        got = [line async for line in reader]
        assert got == lines


@timed()
async def test_writer_writelines_and_extra_info() -> None:
    async with pair() as (server, conn):
        reader, writer = await conn.open_stream()
        writer.writelines([b"a", bytearray(b"b"), memoryview(b"cd")])
        assert writer.can_write_eof()
        assert writer.get_extra_info("stream_id") == writer.stream_id
        assert writer.get_extra_info("peername") == server.address
        assert writer.get_extra_info("connection") is conn
        assert writer.get_extra_info("nonexistent", 42) == 42
        assert writer.transport is writer
        writer.close()
        assert writer.is_closing()
        with pytest.raises(StreamError):
            writer.write(b"late")
        assert await reader.read() == b"abcd"
        await writer.wait_closed()


@timed()
async def test_drain_backpressure() -> None:
    """With a tiny window and a reader that waits, drain() blocks until it reads."""
    may_read = asyncio.Event()
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def slow(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        await may_read.wait()
        got.set_result(await reader.read())

    total = 256 << 10
    payload = os.urandom(total)
    async with pair(
        slow,
        server_kw={"max_stream_data": 4096, "max_stream_data_limit": 4096, "max_data": 8192},
        client_kw={"send_buffer_size": 16 << 10},
    ) as (_, conn):
        _, writer = await conn.open_stream()
        writer.write(payload)
        drain = asyncio.ensure_future(writer.drain())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(drain), 0.5)
        assert not drain.done()
        may_read.set()
        await drain
        writer.write_eof()
        await writer.wait_closed()
        data = await got
        assert data == payload


@timed()
async def test_drain_completes_when_buffer_small() -> None:
    async with pair() as (_, conn):
        reader, writer = await conn.open_stream()
        for _ in range(20):
            writer.write(b"x" * 1000)
            await writer.drain()
        writer.write_eof()
        assert await reader.read() == b"x" * 20000


@timed()
async def test_writer_close_wait_closed() -> None:
    async with pair() as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write(b"bye")
        writer.close()
        await writer.wait_closed()  # everything, FIN included, acknowledged
        assert conn._proto.stream_send_done(writer.stream_id)
        writer.close()  # idempotent
        writer.write_eof()  # no-op once closing
        assert await reader.read() == b"bye"


@timed()
async def test_reset_after_data_seen_by_peer_reader() -> None:
    async with pair(None) as (server, conn):
        _, writer = await conn.open_stream()
        writer.write(b"partial")
        sconn = next(iter(server.connections))
        peer_reader, peer_writer = await sconn.accept_stream()
        assert await peer_reader.readexactly(7) == b"partial"
        writer.reset(0x99)
        with pytest.raises(StreamResetError) as info:
            await peer_reader.read()
        assert info.value.error_code == 0x99
        with pytest.raises(StreamResetError):  # and on every read after that
            await peer_reader.readline()
        peer_writer.write(b"the other direction still works")
        peer_writer.write_eof()
        await peer_writer.wait_closed()


@timed()
async def test_reset_before_any_data_seen_by_peer_reader() -> None:
    async with pair(None) as (server, conn):
        _, writer = await conn.open_stream()
        writer.write(b"partial")
        await writer.drain()
        writer.reset(0x1234)
        assert writer.is_closing()
        await writer.wait_closed()
        sconn = next(iter(server.connections))
        peer_reader, _ = await sconn.accept_stream()
        with pytest.raises(StreamResetError) as info:
            while True:
                if not await peer_reader.read(100):
                    break
        assert info.value.error_code == 0x1234
        assert info.value.stream_id == writer.stream_id


@timed()
async def test_reset_by_handler_seen_by_client() -> None:
    async def handler(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        await reader.read()
        writer.reset(77)

    async with pair(handler) as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write_eof()
        with pytest.raises(StreamResetError) as info:
            await reader.read()
        assert info.value.error_code == 77
        with pytest.raises(StreamResetError):
            await reader.readexactly(1)


@timed()
async def test_stop_sending_fails_peer_writer() -> None:
    result: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handler(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        await reader.read()
        try:
            while True:
                writer.write(b"z" * 4096)
                await writer.drain()
        except StreamResetError as exc:
            result.set_result(exc.error_code)

    async with pair(handler) as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write_eof()
        assert len(await reader.readexactly(1000)) == 1000
        reader.stop_sending(0x42)
        assert await result == 0x42
        # Our reader then sees the RESET_STREAM that STOP_SENDING provokes.
        with pytest.raises(StreamResetError) as info:
            while await reader.read(65536):
                pass
        assert info.value.error_code == 0x42


@timed(30)
async def test_concurrent_bulk_both_directions() -> None:
    blobs = [os.urandom(200_000 + i * 1000) for i in range(20)]

    async def one(blob: bytes) -> None:
        reader, writer = await conn.open_stream()

        async def send() -> None:
            for i in range(0, len(blob), 50_000):
                writer.write(blob[i : i + 50_000])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.ensure_future(send())
        got = await reader.read()
        await sender
        assert hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()

    async def echo_streaming(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        while chunk := await reader.read(30_000):
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()

    async with pair(echo_streaming) as (_, conn):
        await asyncio.gather(*(one(b) for b in blobs))


@timed()
async def test_handler_exception_resets_stream() -> None:
    async def broken(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        await reader.read()
        raise RuntimeError("handler bug")

    async with pair(broken) as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write_eof()
        with pytest.raises(StreamResetError):
            await reader.read()
        # The connection survives a failed handler.
        reader, writer = await conn.open_stream()
        writer.write_eof()
        with pytest.raises(StreamResetError):
            await reader.read()


@timed()
async def test_open_stream_waits_for_stream_credit() -> None:
    """With the server's limit at 2 streams, a third open_stream waits for MAX_STREAMS."""
    release = asyncio.Event()

    async def held(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        data = await reader.read()
        await release.wait()
        writer.write(data)
        writer.write_eof()

    async with pair(held, server_kw={"max_streams_bidi": 2}) as (_, conn):
        streams = [await conn.open_stream() for _ in range(2)]
        for _, writer in streams:
            writer.write(b"held")
            writer.write_eof()
        third = asyncio.ensure_future(conn.open_stream())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(third), 0.3)
        release.set()
        for reader, _ in streams:
            assert await reader.read() == b"held"
        reader, writer = await third
        writer.write(b"third")
        writer.write_eof()
        assert await reader.read() == b"third"


@timed()
async def test_blocked_open_stream_fails_when_connection_closes() -> None:
    async with pair(None, server_kw={"max_streams_bidi": 1}) as (server, conn):
        _, writer = await conn.open_stream()
        writer.write(b"occupy")
        blocked = asyncio.ensure_future(conn.open_stream())
        sconn = next(iter(server.connections))
        await sconn.accept_stream()
        sconn.close(3, "go away")
        with pytest.raises(ConnectionClosedError) as info:
            await blocked
        assert info.value.error_code == 3


@timed()
async def test_second_concurrent_reader_is_refused() -> None:
    release = asyncio.Event()

    async def late(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        await reader.read()
        await release.wait()
        writer.write(b"late")
        writer.write_eof()

    async with pair(late) as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write_eof()
        first = asyncio.ensure_future(reader.read())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(first), 0.2)
        with pytest.raises(RuntimeError):
            await reader.read()
        release.set()
        assert await first == b"late"


@timed()
async def test_concurrent_drains_all_complete() -> None:
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    may_read = asyncio.Event()

    async def slow(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        await may_read.wait()
        got.set_result(await reader.read())

    async with pair(
        slow,
        server_kw={"max_stream_data": 4096, "max_stream_data_limit": 4096},
        client_kw={"send_buffer_size": 8192},
    ) as (_, conn):
        _, writer = await conn.open_stream()
        writer.write(b"q" * 100_000)
        drains = [asyncio.ensure_future(writer.drain()) for _ in range(3)]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*drains)), 0.3)
        may_read.set()
        await asyncio.gather(*drains)
        writer.write_eof()
        assert await got == b"q" * 100_000


@timed()
async def test_peer_unidirectional_writer_is_closed() -> None:
    async with pair(None) as (server, conn):
        _, writer = await conn.open_stream(unidirectional=True)
        writer.write(b"uni")
        writer.write_eof()
        sconn = next(iter(server.connections))
        reader, peer_writer = await sconn.accept_stream()
        assert peer_writer.is_closing()
        await peer_writer.wait_closed()  # nothing to wait for
        assert await reader.read() == b"uni"

"""Issue 15: an unexpected error (here MemoryError from stream reassembly) while the
asyncio endpoint processes one connection's datagram closes that connection with
INTERNAL_ERROR; the other datagrams of the same receive batch are still delivered."""

from __future__ import annotations

import asyncio

import pytest
from aio_support import echo, timed
from support import FailingBuffer, client_config, server_config

import quicish
from quicish.errors import ConnectionClosedError, ErrorCode
from quicish.proto import recv_stream


@timed()
async def test_memory_error_closes_one_connection_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recv_stream, "ReassemblyBuffer", FailingBuffer)
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    port = server.address[1]
    loop = asyncio.get_running_loop()
    try:
        async with (
            quicish.connect("127.0.0.1", port, config=client_config()) as bad,
            quicish.connect("127.0.0.1", port, config=client_config()) as good,
        ):
            endpoint = server._endpoint
            # Hold the server's reads so both clients' datagrams wait in one batch.
            loop.remove_reader(endpoint.udp.fileno())
            bad_reader, bad_writer = await bad.open_stream()
            bad_writer.write(b"boom")
            good_reader, good_writer = await good.open_stream()
            good_writer.write(b"hello")
            good_writer.write_eof()
            await asyncio.sleep(0.2)  # real sockets: let both datagrams arrive
            conns = list(server.connections)
            assert len(conns) == 2
            before = [c._proto.stats_counters.datagrams_received for c in conns]
            endpoint._on_readable()  # before the fix: MemoryError, the batch dropped
            after = [c._proto.stats_counters.datagrams_received for c in conns]
            assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
            loop.add_reader(endpoint.udp.fileno(), endpoint._on_readable)
            assert await good_reader.read() == b"hello"
            with pytest.raises(ConnectionClosedError) as info:
                await bad_reader.read()
            assert info.value.error_code == ErrorCode.INTERNAL_ERROR
            assert info.value.by_peer
            assert "MemoryError" not in info.value.reason
    finally:
        server.close()
        await server.wait_closed()

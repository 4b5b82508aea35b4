"""The order of a new connection's work over real loopback UDP: what leaves before the
application runs (counted, not timed)."""

from __future__ import annotations

from aio_support import timed
from support import client_config, server_config

import quicish


@timed()
async def test_client_finished_leaves_before_connect_returns() -> None:
    """The client's Finished is sent as soon as the server's flight is read, ahead of the
    application that ``connect()`` wakes: when ``connect()`` returns, it is already out (so
    the server works on it while the first request is written)."""
    server = await quicish.serve("127.0.0.1", 0, config=server_config())
    try:
        conn = await quicish.connect("127.0.0.1", server.address[1], config=client_config())
        try:
            # The Initial, and the datagram with the Finished (before: only the Initial;
            # the Finished waited for the flush queued behind the application).
            assert conn.stats().datagrams_sent == 2
        finally:
            conn.close()
            await conn.wait_closed()
    finally:
        server.close()
        await server.wait_closed()

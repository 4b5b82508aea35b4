"""DATAGRAM frames the application does not read, over real UDP through quicish.serve and
connect (issue 15, item 12): the server's queue stays within Config.datagram_receive_buffer,
the oldest are dropped and counted in stats().datagrams_dropped, the newest are read."""

from __future__ import annotations

import asyncio

from aio_support import pair, timed

from quicish import QuicConnection

LIMIT = 64 << 10


@timed()
async def test_unread_datagrams_are_bounded_in_the_asyncio_layer() -> None:
    accepted: list[QuicConnection] = []
    kw = {"max_datagram_frame_size": 1200}
    server_kw = dict(kw, datagram_receive_buffer=LIMIT)
    async with pair(None, on_connection=accepted.append, server_kw=server_kw, client_kw=kw) as (
        _,
        conn,
    ):
        for i in range(5000):
            conn.send_datagram(i.to_bytes(4, "big") * 250)
            if i % 100 == 99:
                await asyncio.sleep(0.005)  # let them go out (they are not queued forever)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if accepted and accepted[0].stats().datagrams_received >= 5000:
                break
        assert accepted
        server_conn = accepted[0]
        stats = server_conn.stats()
        got: list[bytes] = []
        while True:
            try:
                got.append(await asyncio.wait_for(server_conn.receive_datagram(), 0.2))
            except TimeoutError:
                break
        print(
            f"\n{stats.datagrams_received} datagrams received, {len(got)} kept, "
            f"{stats.datagrams_dropped} dropped"
        )
        assert got and sum(len(d) + 64 for d in got) <= LIMIT
        numbers = [int.from_bytes(d[:4], "big") for d in got]
        assert numbers == sorted(numbers)  # in order; the oldest were dropped
        assert stats.datagrams_dropped > 0
        assert len(got) + stats.datagrams_dropped >= 4000  # (loopback may lose a few)

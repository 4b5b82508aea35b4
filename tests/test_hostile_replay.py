"""Attack over real UDP: replaying an old packet after more gaps than the receiver keeps
ACK ranges for (RFC 9000 12.3: a packet must not be processed twice). The server runs
in-process (``quicish.serve`` in a thread of its own) so it can count delivered DATAGRAMs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from hostile_support import LOOPBACK, RawClient
from pairs import encode as encode_frames
from support import server_config

import quicish
from quicish import ConnectionClosedError, QuicConnection
from quicish.proto.packet_space import ACK_RANGES_LIMIT, APPLICATION
from quicish.wire import frames as F
from quicish.wire.packet import encode_short_header

DATAGRAMS: dict[str, Any] = {"max_datagram_frame_size": 1200}


class DatagramServer:
    """``quicish.serve`` on a loopback port in a thread with its own event loop; every
    DATAGRAM any connection delivers is appended to ``received``."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._main(),), daemon=True
        )

    async def _main(self) -> None:
        async def on_connection(conn: QuicConnection) -> None:
            while True:
                try:
                    self.received.append(await conn.receive_datagram())
                except ConnectionClosedError:
                    return

        self._stop = asyncio.Event()
        server = await quicish.serve(
            LOOPBACK, 0, config=server_config(**DATAGRAMS), on_connection=on_connection
        )
        self.port = server.address[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        await server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> DatagramServer:
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


def seal_at(client: RawClient, pn: int, payload: bytes) -> bytes:
    """``payload`` in a 1-RTT packet at packet number ``pn``, written in 4 bytes (so it
    still decodes far behind the largest the server received)."""
    conn = client.conn
    space = conn._spaces[APPLICATION]
    assert space.tx is not None
    header = encode_short_header(conn.peer_cid, pn & 0xFFFFFFFF, 4, False, bool(conn._keys.phase))
    return space.tx.seal_packet(header, payload, pn)


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_replayed_datagram_after_many_gaps_is_delivered_once() -> None:
    with DatagramServer() as server, RawClient(server.port, **DATAGRAMS) as attacker:
        attacker.handshake()
        attacker.pump(0.2)
        pn = attacker.conn._spaces[APPLICATION].next_pn + 5
        old = seal_at(attacker, pn, encode_frames(F.DatagramFrame(b"pay once")))
        attacker.send_raw(old)
        assert wait_for(lambda: server.received == [b"pay once"], 5)
        for _ in range(ACK_RANGES_LIMIT + 16):  # a gap before each: more than the ranges kept
            pn += 2
            attacker.send_raw(seal_at(attacker, pn, encode_frames(F.PingFrame())))
        attacker.drain_socket(0.3)  # the server's ACKs, unprocessed
        for _ in range(3):
            attacker.send_raw(old)  # the captured datagram, byte for byte
        attacker.drain_socket(0.5)
        assert server.received == [b"pay once"]

        # A legitimate client is served meanwhile.
        with RawClient(server.port, **DATAGRAMS) as good:
            good.handshake()
            good.conn.send_datagram(b"hello")
            assert good.pump(5, until=lambda: b"hello" in server.received)
        assert server.received == [b"pay once", b"hello"]

"""Small request/response round trips on an open connection over real loopback UDP: what
each one costs in datagrams and socket calls, counted (not timed)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aio_support import pair, timed

from quicish import QuicStreamReader, QuicStreamWriter
from quicish.aio.endpoint import LONE_PROBE_EVERY

MESSAGE = 64
ROUND_TRIPS = 40


class CountingSocket:
    """Stands in for a UdpSocket's socket: counts the calls the I/O layer makes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.calls = {"recvmsg": 0, "recvmsg_empty": 0, "send": 0}

    def counting_recv(self, recv: Any) -> Any:
        """``recv`` (a UdpSocket's one read: the C core's or the twin's) with its calls and
        empty reads counted."""

        def counted(*args: Any) -> Any:
            self.calls["recvmsg"] += 1
            out = recv(*args)
            self.calls["recvmsg_empty"] += out is None
            return out

        return counted

    def sendto(self, *args: Any) -> Any:
        self.calls["send"] += 1
        return self._sock.sendto(*args)

    def sendmsg(self, *args: Any) -> Any:
        self.calls["send"] += 1
        return self._sock.sendmsg(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


async def echo_each(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
    """Echo every MESSAGE-byte message as it arrives (the benchmarks' RPC workload)."""
    while True:
        try:
            message = await reader.readexactly(MESSAGE)
        except asyncio.IncompleteReadError:
            break
        writer.write(message)
    writer.write_eof()


@timed()
async def test_round_trip_is_one_datagram_each_way_with_the_ack_inside() -> None:
    """Each request and each reply is one datagram: the reply carries the ACK of the
    request (the client has nothing in flight once it has read the reply) and the next
    request the ACK of the reply, so no ACK-only datagram goes either way. Each side reads
    its socket once per round trip, and only one wake in LONE_PROBE_EVERY goes on to the
    read that finds the socket empty."""
    async with pair(echo_each) as (server, conn):
        reader, writer = await conn.open_stream()
        for _ in range(3):  # warm up: handshake leftovers (tickets, tokens, CIDs) go first
            writer.write(b"w" * MESSAGE)
            assert await reader.readexactly(MESSAGE) == b"w" * MESSAGE
        await asyncio.sleep(0.05)
        (server_conn,) = server.connections
        sides = {"client": conn, "server": server_conn}
        counters = {}
        for name, side in sides.items():
            udp = side._endpoint.udp
            udp.sock = counters[name] = CountingSocket(udp.sock)  # type: ignore[assignment]
            udp._recv = counters[name].counting_recv(udp._recv)
        before = {name: side.stats().datagrams_sent for name, side in sides.items()}
        for i in range(ROUND_TRIPS):
            message = i.to_bytes(8, "big") * (MESSAGE // 8)
            writer.write(message)
            assert await reader.readexactly(MESSAGE) == message
            # The reply acknowledged the request: nothing of the client's is in flight.
            assert conn._proto._recovery.bytes_in_flight == 0, i
        for name, side in sides.items():
            sent = side.stats().datagrams_sent - before[name]
            # (the client's last ACK rides on its next datagram, not sent yet)
            assert sent == ROUND_TRIPS, (name, sent)
            calls = counters[name].calls
            assert calls["send"] == ROUND_TRIPS, (name, calls)
            assert calls["recvmsg"] - calls["recvmsg_empty"] == ROUND_TRIPS, (name, calls)
            assert calls["recvmsg_empty"] == ROUND_TRIPS // LONE_PROBE_EVERY, (name, calls)
        writer.write_eof()
        assert await reader.read() == b""

"""A flood of valid client Initials over real UDP against ``quicish serve`` (issue 15, item
3): 20,000 Initials, each to a new DCID, from 50 source ports, as fast as this process sends
them. Five legitimate ``quicish get`` clients, their interpreters started ahead, are set
going during the flood, one every 4,000 Initials. Automatic Retry engages (the attacker's
sockets see Retry packets, the clients take a Retry round trip), the server's memory and CPU
stay bounded, and every client is served within 5 s."""

from __future__ import annotations

import os
import socket
import time

from hostile_support import LOOPBACK, InitialForger, PreparedGet, ServeProcess

from quicish.errors import DecodeError
from quicish.wire.packet import PacketType, parse_header

FLOOD = 20_000
SOCKETS = 50
CLIENTS = 5


def _count_retries(socks: list[socket.socket]) -> tuple[int, int]:
    """(Retry packets, other datagrams) waiting on the attacker's sockets."""
    retries = others = 0
    for sock in socks:
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                break
            try:
                retry = parse_header(data).packet_type is PacketType.RETRY
            except DecodeError:
                retry = False
            if retry:
                retries += 1
            else:
                others += 1
    return retries, others


def test_initial_flood_engages_retry_and_legitimate_clients_are_served() -> None:
    with ServeProcess() as server:
        forger = InitialForger(server.port)
        datagrams = [forger.make(os.urandom(8)) for _ in range(FLOOD)]
        socks = []
        for _ in range(SOCKETS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((LOOPBACK, 0))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.connect((LOOPBACK, server.port))
            sock.setblocking(False)
            socks.append(sock)
        try:
            server.get(timeout=5).wait()  # warmed up (imports, first handshake)
            rss0, cpu0 = server.rss_bytes(), server.cpu_seconds()
            gets = [PreparedGet(server, timeout=5) for _ in range(CLIENTS)]
            assert all(get.ready for get in gets)
            sent = 0
            start = time.monotonic()
            for i, data in enumerate(datagrams):
                if i % (FLOOD // CLIENTS) == 0:
                    gets[i // (FLOOD // CLIENTS)].start()
                try:
                    socks[i % SOCKETS].send(data)
                    sent += 1
                except BlockingIOError:
                    pass
            flood_seconds = time.monotonic() - start
            served = [get.wait() for get in gets]
            retries, others = _count_retries(socks)
            rss_growth = server.rss_bytes() - rss0
            cpu = server.cpu_seconds() - cpu0
            print(
                f"flood: {sent} Initials in {flood_seconds:.2f} s; server CPU {cpu:.2f} s, "
                f"RSS +{rss_growth / 1e6:.1f} MB; attacker saw {retries} Retry and "
                f"{others} other datagrams; GETs took "
                f"{[round(g.elapsed or -1, 2) for g in gets]} s"
            )
            assert sent == FLOOD
            assert all(served), [g.output for g in gets if g.output]
            assert retries > 0  # automatic Retry engaged
            assert all("retry: yes" in g.output for g in gets)  # for the clients too
            assert rss_growth < 100e6
            assert cpu < 3.0  # 3.7 s before: a handshake for every Initial that got in
            assert server.alive()
        finally:
            for sock in socks:
                sock.close()

"""Path MTU discovery over real UDP (docs/pmtud.md): quicish to quicish on loopback reaches
the ceiling; through ``quicish.netem`` with a link that drops datagrams over N bytes the
transfer settles at or below N, byte-exact, without a stall; against aioquic (which sends
1200-byte datagrams and takes larger ones) in both roles."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from typing import Any

from aio_support import pair, timed
from aioquic_support import aioquic_request, aioquic_server
from support import client_config, server_config

import quicish
from quicish import QuicConnection, QuicStreamReader, QuicStreamWriter
from quicish.netem import LinkConfig, Netem
from quicish.proto.pmtud import MAX_PROBES, MIN_STEP
from quicish.udp import IP_MTU_DISCOVER, PMTUDISC_PROBE, UdpSocket

BIG: dict[str, Any] = {"max_data": 16 << 20, "max_stream_data": 8 << 20}
DATA = random.Random(26).randbytes(2 << 20)


async def echo_back(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
    writer.write(await reader.read())
    writer.write_eof()


async def round_trip(conn: QuicConnection, data: bytes) -> None:
    reader, writer = await conn.open_stream()
    writer.write(data)
    writer.write_eof()
    assert await reader.read() == data


@timed(30)
async def test_quicish_pair_on_loopback_reaches_the_ceiling() -> None:
    server_side: list[QuicConnection] = []
    async with pair(echo_back, server_kw=BIG, client_kw=BIG, on_connection=server_side.append) as (
        _,
        conn,
    ):
        await round_trip(conn, DATA)
        await round_trip(conn, DATA[:100_000])  # (the server's probe may trail the echo)
        st = conn.stats()
        assert (st.max_datagram_size, st.mtu_probes_sent, st.mtu_probes_lost) == (1452, 1, 0)
        assert server_side[0].stats().max_datagram_size == 1452


@timed(30)
async def test_a_jumbo_ceiling_is_reached_on_loopback() -> None:
    """Loopback's MTU is 65536: a 9000-byte ceiling is reached (GSO segments of 9000)."""
    kw = {**BIG, "max_datagram_size": 9000}
    async with pair(echo_back, server_kw=kw, client_kw=kw) as (_, conn):
        await round_trip(conn, DATA)
        await round_trip(conn, DATA)
        assert conn.stats().max_datagram_size == 9000


@timed(60)
async def test_a_path_with_a_smaller_mtu_settles_below_it_with_no_stall() -> None:
    """The relay drops every datagram over 1300 bytes both ways: the transfer is
    byte-exact, both ends settle within MIN_STEP below 1300, and the relay dropped only
    probes (as many as the ends declared lost)."""
    limit = 1300
    server_side: list[QuicConnection] = []
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(**BIG),
        on_stream=echo_back,
        on_connection=server_side.append,
    )
    async with server:
        with Netem(server.address, both=LinkConfig(mtu=limit, delay_ms=2), seed=1) as relay:
            conn = await quicish.connect(*relay.address, config=client_config(**BIG))
            async with conn:
                loop = asyncio.get_running_loop()
                start = loop.time()
                for _ in range(3):
                    await round_trip(conn, DATA)
                elapsed = loop.time() - start
                client, peer = conn.stats(), server_side[0].stats()
            counters = relay.stop()
    for st in (client, peer):
        assert limit - MIN_STEP < st.max_datagram_size <= limit, st
        assert st.mtu_probes_lost >= MAX_PROBES and st.mtu_black_holes == 0
    assert counters.to_server.dropped_mtu == client.mtu_probes_lost
    assert counters.to_client.dropped_mtu == peer.mtu_probes_lost
    assert counters.to_server.dropped == counters.to_server.dropped_mtu
    assert elapsed < 20, elapsed  # 12 MB through the relay: no stall waiting on probes


@timed(30)
async def test_quicish_client_and_aioquic_server() -> None:
    """aioquic sends 1200-byte datagrams and does not limit max_udp_payload_size: the
    quicish client reaches its 1452 ceiling, aioquic's packets stay at 1200."""
    received: list[int] = []
    async with aioquic_server(**BIG) as server:
        conn = await quicish.connect("127.0.0.1", server.port, config=client_config(**BIG))
        conn.tracer = lambda name, data: (
            received.append(data["raw"]["length"]) if name == "packet_received" else None
        )
        async with conn:
            await round_trip(conn, DATA)
            st = conn.stats()
    assert (st.max_datagram_size, st.mtu_probes_sent, st.mtu_probes_lost) == (1452, 1, 0)
    assert received and max(received) <= 1200


@timed(30)
async def test_quicish_server_and_aioquic_client() -> None:
    server_side: list[QuicConnection] = []
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(**BIG),
        on_stream=echo_back,
        on_connection=server_side.append,
    )
    async with server:
        answer, _, _ = await aioquic_request(server.address[1], DATA, config_kw=BIG)
        assert answer == DATA
        st = server_side[0].stats()
    assert st.max_datagram_size == 1452 and st.mtu_probes_lost == 0


def test_sockets_set_dont_fragment_and_an_oversized_probe_leaves_its_batch_intact() -> None:
    """IP_PMTUDISC_PROBE on (DF, no local fragmentation); a datagram the kernel refuses
    with EMSGSIZE (here over IPv4's 65,507-byte UDP payload limit) is dropped alone: the
    datagrams batched with it (one GSO call) still arrive."""
    rx, tx = UdpSocket.bind("127.0.0.1", 0), UdpSocket.bind("127.0.0.1", 0)
    try:
        assert tx.sock.getsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER) == PMTUDISC_PROBE
        small = b"d" * 1200
        assert tx.send([b"p" * 65508, small, small], rx.address) == []
        got: list[bytes] = []
        deadline = time.monotonic() + 2
        while len(got) < 2 and time.monotonic() < deadline:
            got += [data for data, _, _ in rx.receive()]
            time.sleep(0.01)
        assert got == [small, small]
    finally:
        rx.close()
        tx.close()

"""asyncio connections and servers over real loopback UDP: connect/serve forms, close codes,
callbacks, datagrams, stats, key update, failures, garbage input, Version Negotiation, IPv6,
uvloop."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest
from aio_support import echo, echo_once, pair, timed
from support import cert_files, client_config, cyclic_garbage, server_config

import quicish
from quicish import (
    CertificateError,
    ConnectionClosedError,
    ConnectionStateError,
    QuicConnection,
    QuicStreamReader,
    QuicStreamWriter,
)
from quicish.aio.endpoint import clock
from quicish.proto.connection import Connection
from quicish.wire.packet import PacketType, parse_header


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the loop run until ``condition()`` holds (background work of the endpoint)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


@timed()
async def test_await_connect_and_close() -> None:
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    host, port = server.address
    assert host == "127.0.0.1" and port != 0
    conn = await quicish.connect("127.0.0.1", port, config=client_config())
    assert isinstance(conn, QuicConnection)
    assert conn.remote_address == ("127.0.0.1", port)
    assert conn.local_address[1] != 0
    assert await echo_once(conn, b"ping") == b"ping"
    conn.close()
    await conn.wait_closed()
    with pytest.raises(ConnectionClosedError):
        await conn.open_stream()
    server.close()
    await server.wait_closed()
    await server.serve_forever()  # returns at once once closed


@timed()
async def test_async_with_connect_and_server() -> None:
    async with await quicish.serve(
        "127.0.0.1", 0, config=server_config(), on_stream=echo
    ) as server:
        async with quicish.connect("127.0.0.1", server.address[1], config=client_config()) as c:
            assert await echo_once(c, b"ctx") == b"ctx"
            sconn = next(iter(server.connections))
        await c.wait_closed()  # closed by the context manager
        await sconn.wait_closed()
        assert sconn.close_error is not None and sconn.close_error.by_peer
    assert server.address[1] != 0  # still known after close
    assert server._endpoint.udp.sock.fileno() == -1  # the socket is released


@timed()
async def test_close_code_and_reason_seen_by_server() -> None:
    closed: asyncio.Future[ConnectionClosedError] = asyncio.get_running_loop().create_future()

    async def handler(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        writer.write(b"ready")
        await writer.drain()
        try:
            await reader.read()  # never ends cleanly: the client closes the connection
        except ConnectionClosedError as exc:
            closed.set_result(exc)

    async with pair(handler) as (_, conn):
        reader, writer = await conn.open_stream()
        writer.write(b"hi")  # a stream reaches the peer with its first frame
        assert await reader.readexactly(5) == b"ready"
        conn.close(0x1DEA, "done here")
        await conn.wait_closed()
        err = await closed
        assert err.error_code == 0x1DEA
        assert err.reason == "done here"
        assert err.by_peer


@timed()
async def test_close_by_server_seen_by_client() -> None:
    async def on_connection(conn: QuicConnection) -> None:
        reader, _ = await conn.accept_stream()
        assert await reader.read() == b"close please"
        conn.close(7, "as you wish")

    async with pair(None, on_connection=on_connection) as (_, conn):
        _, other = await conn.open_stream()  # still open when the connection ends
        reader, writer = await conn.open_stream()
        writer.write(b"close please")
        writer.write_eof()
        with pytest.raises(ConnectionClosedError) as info:
            await reader.read()
        assert (info.value.error_code, info.value.reason, info.value.by_peer) == (
            7,
            "as you wish",
            True,
        )
        with pytest.raises(ConnectionClosedError):
            await conn.accept_stream()
        with pytest.raises(ConnectionClosedError):
            await conn.receive_datagram()
        with pytest.raises(ConnectionClosedError):
            other.write(b"more")
        with pytest.raises(ConnectionClosedError):
            await other.drain()
        with pytest.raises(ConnectionClosedError):
            await conn.open_stream()
        await conn.wait_closed()
        assert conn.close_error is not None and conn.close_error.error_code == 7


@timed()
async def test_on_connection_sync_and_accept_stream() -> None:
    seen: list[QuicConnection] = []
    served: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def serve_streams(conn: QuicConnection) -> None:
        for _ in range(3):
            reader, writer = await conn.accept_stream()
            writer.write((await reader.read()).upper())
            writer.write_eof()
        served.set_result(None)

    tasks: list[asyncio.Task[None]] = []

    def on_connection(conn: QuicConnection) -> None:
        seen.append(conn)
        tasks.append(asyncio.ensure_future(serve_streams(conn)))

    async with pair(None, on_connection=on_connection) as (server, conn):
        for word in (b"one", b"two", b"three"):
            assert await echo_once(conn, word) == word.upper()
        await served
        assert len(seen) == 1 and seen[0] in server.connections
        assert seen[0].alpn == "hq-interop"
        # Both sides made the handshake's end material while waiting for the peer.
        assert conn._proto._handshake.prepared and seen[0]._proto._handshake.prepared
        assert seen[0]._proto.split_first_flight  # the ServerHello went out ahead
        # The NEW_TOKEN went out (the prepared one: test_conn_handshake), then not kept.
        assert conn.new_token is not None and seen[0]._proto._handshake.prepared_token is None
        peer = seen[0].remote_address
        assert peer is not None and peer[1] == conn.local_address[1]


@timed()
async def test_many_connections_one_server() -> None:
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    try:
        conns = await asyncio.gather(
            *(
                quicish.connect("127.0.0.1", server.address[1], config=client_config())
                for _ in range(8)
            )
        )
        assert len(server.connections) == 8
        answers = await asyncio.gather(
            *(echo_once(c, f"conn {i}".encode()) for i, c in enumerate(conns))
        )
        assert answers == [f"conn {i}".encode() for i in range(8)]
        for c in conns:
            c.close()
        await asyncio.gather(*(c.wait_closed() for c in conns))
    finally:
        server.close()
        await server.wait_closed()


@timed()
async def test_datagrams() -> None:
    async def on_connection(conn: QuicConnection) -> None:
        while True:
            try:
                data = await conn.receive_datagram()
            except ConnectionClosedError:
                return
            conn.send_datagram(b"re: " + data)

    kw = {"max_datagram_frame_size": 1200}
    async with pair(None, on_connection=on_connection, server_kw=kw, client_kw=kw) as (_, conn):
        conn.send_datagram(b"hello")
        assert await conn.receive_datagram() == b"re: hello"
        big = bytes(range(256)) * 4
        conn.send_datagram(big)
        assert await conn.receive_datagram() == b"re: " + big
        with pytest.raises(quicish.ConfigError, match="too large"):
            conn.send_datagram(b"x" * 5000)


@timed()
async def test_datagrams_not_negotiated() -> None:
    async with pair() as (_, conn):
        with pytest.raises(ConnectionStateError, match="DATAGRAM"):
            conn.send_datagram(b"nope")


STATS_KEYS = {
    "smoothed_rtt",
    "min_rtt",
    "latest_rtt",
    "rttvar",
    "cwnd",
    "bytes_in_flight",
    "bytes_sent",
    "bytes_received",
    "packets_sent",
    "packets_received",
    "packets_lost",
    "datagrams_sent",
    "datagrams_received",
    "key_updates",
}


@timed()
async def test_stats() -> None:
    async with pair() as (server, conn):
        assert await echo_once(conn, b"s" * 10000) == b"s" * 10000
        stats = conn.stats()
        assert set(stats.as_dict()) >= STATS_KEYS
        assert isinstance(stats, quicish.Stats)
        assert stats.bytes_received > 10000
        assert stats.bytes_sent > 10000
        assert stats.packets_sent > 0 and stats.packets_received > 0
        assert stats.smoothed_rtt > 0
        assert stats.cwnd > 0
        sstats = next(iter(server.connections)).stats()
        assert set(sstats.as_dict()) >= STATS_KEYS
        assert sstats.bytes_received >= 10000
        # Each datagram is processed once (the first Initial included).
        assert sstats.packets_duplicate == 0 and stats.packets_duplicate == 0


@timed()
async def test_key_update_both_ways() -> None:
    async with pair() as (server, conn):
        assert await echo_once(conn, b"before") == b"before"
        conn.request_key_update()
        assert await echo_once(conn, b"after" * 3000) == b"after" * 3000
        sconn = next(iter(server.connections))
        assert conn.stats().key_updates == 1
        assert sconn.stats().key_updates == 1
        # Now the server starts the next one.
        sconn.request_key_update()
        reader, writer = await conn.open_stream()
        writer.write(b"x" * 50000)
        writer.write_eof()
        assert await reader.read() == b"x" * 50000
        assert conn.stats().key_updates == 2
        assert sconn.stats().key_updates == 2


def _unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@timed()
async def test_connect_to_closed_port_fails_clearly() -> None:
    port = _unused_udp_port()
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(quicish.HandshakeTimeout) as info:
        await quicish.connect("127.0.0.1", port, config=client_config(idle_timeout=1.0))
    assert loop.time() - start < 10.0
    assert f"no response from 127.0.0.1:{port} within 1 s" in str(info.value)
    assert not info.value.by_peer


@timed()
async def test_wrong_pin_fails_with_certificate_error() -> None:
    async with await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo) as s:
        with pytest.raises(CertificateError) as info:
            await quicish.connect("127.0.0.1", s.address[1], config=client_config(pin="00" * 32))
        assert info.value.code == 0x100 + 42  # bad_certificate alert
        assert "pin mismatch" in str(info.value)


def _garbage(rng: random.Random) -> list[bytes]:
    out = [rng.randbytes(n) for n in (1, 7, 30, 200, 1199, 1500)]
    out += [bytes([0x40 | rng.randrange(64)]) + rng.randbytes(60) for _ in range(5)]  # short hdr
    out.append(b"\xc0" + struct.pack("!I", 1) + bytes([8]) + rng.randbytes(8) + b"\x00" * 20)
    # A well-formed v1 Initial header whose payload is noise (cannot be decrypted).
    out.append(
        b"\xc3"
        + struct.pack("!I", 1)
        + bytes([8])
        + rng.randbytes(8)
        + bytes([8])
        + rng.randbytes(8)
        + b"\x00"
        + b"\x44\xb0"
        + rng.randbytes(1200)
    )
    return out


@timed()
async def test_garbage_datagrams_do_not_hurt_server() -> None:
    rng = random.Random(9000)
    async with await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo) as s:
        garbage = _garbage(rng)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for datagram in garbage:
                raw.sendto(datagram, s.address)
            # Loopback queues them before the client's Initial below.
            async with quicish.connect("127.0.0.1", s.address[1], config=client_config()) as c:
                assert await echo_once(c, b"still serving") == b"still serving"
                assert len(s.connections) == 1  # the undecryptable Initial made no connection
        dropped = s._endpoint.datagrams_dropped
        assert dropped >= len(garbage) - 2  # the random-version ones may get a VN instead


@timed()
async def test_version_negotiation() -> None:
    async with await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo) as s:
        dcid, scid = bytes(range(8)), b"\xaa\xbb\xcc\xdd"
        probe = (
            b"\xc0"
            + struct.pack("!I", 0x1A2A3A4A)
            + bytes([len(dcid)])
            + dcid
            + bytes([len(scid)])
            + scid
        )
        probe += bytes(1200 - len(probe))
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.setblocking(False)
            raw.connect(s.address)
            await loop.sock_sendall(raw, probe)
            answer = await loop.sock_recv(raw, 2048)
            header = parse_header(answer, 0)
            assert header.packet_type == PacketType.VERSION_NEGOTIATION
            assert header.version == 0
            assert header.dcid == scid and header.scid == dcid
            assert header.supported_versions is not None
            assert 0x00000001 in header.supported_versions
            # A short probe (< 1200 bytes) gets no answer; a real client still works.
            await loop.sock_sendall(raw, probe[:600])
        async with quicish.connect("127.0.0.1", s.address[1], config=client_config()) as c:
            assert await echo_once(c, b"v1") == b"v1"


def _ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback")
@timed()
async def test_ipv6() -> None:
    async with pair(host="::1") as (server, conn):
        assert server.address[0] == "::1"
        assert conn.remote_address is not None and conn.remote_address[0] == "::1"
        assert await echo_once(conn, b"six") == b"six"


def test_uvloop_end_to_end() -> None:
    uvloop = pytest.importorskip("uvloop")
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uvloop.Loop)
        async with pair() as (_, conn):
            return await echo_once(conn, payload)

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(asyncio.wait_for(main(), 20)) == payload
    finally:
        loop.close()


def test_run_helper_uses_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> bool:
        async with pair() as (_, conn):
            assert await echo_once(conn, b"run") == b"run"
        return isinstance(asyncio.get_running_loop(), uvloop.Loop)

    assert quicish.run(asyncio.wait_for(main(), 20)) is True


@timed()
async def test_failing_on_connection_does_not_stop_server() -> None:
    calls: list[QuicConnection] = []

    def boom(conn: QuicConnection) -> None:
        calls.append(conn)
        raise RuntimeError("callback bug")

    async with pair(echo, on_connection=boom) as (_, conn):
        assert await echo_once(conn, b"fine") == b"fine"
        assert len(calls) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@timed()
async def test_verify_with_ca_file(host: str) -> None:
    """verify=<CA file> checks the chain and the name: a DNS name or an IP address SAN."""
    cert, _, _ = cert_files()
    infos = await asyncio.get_running_loop().getaddrinfo(host, 0, type=socket.SOCK_DGRAM)
    bind = str(infos[0][4][0])  # where connect() will go (localhost may be ::1 first)
    async with await quicish.serve(bind, 0, config=server_config(), on_stream=echo) as s:
        config = quicish.Config(verify=cert)
        async with quicish.connect(host, s.address[1], config=config) as conn:
            assert await echo_once(conn, b"verified") == b"verified"
        with pytest.raises(CertificateError) as info:
            await quicish.connect(host, s.address[1], config=quicish.Config(verify=True))
        assert info.value.code == 0x100 + 48 and "unknown CA" in str(info.value)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@timed()
async def test_connect_to_an_ip_literal_needs_no_resolver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An IP address is dialled as it is; a host name goes through the loop's resolver."""
    loop = asyncio.get_running_loop()
    resolved: list[str] = []
    real = loop.getaddrinfo

    async def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        resolved.append(host)
        return await real("127.0.0.1", *args, **kwargs)  # every name is this host here

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    async with await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo) as s:
        async with quicish.connect("127.0.0.1", s.address[1], config=client_config()) as c:
            assert await echo_once(c, b"ip") == b"ip"
            assert c._proto.peer_addr == ("127.0.0.1", s.address[1])
        assert resolved == []
        async with quicish.connect("quicish.test", s.address[1], config=client_config()) as c:
            assert await echo_once(c, b"name") == b"name"
        assert resolved == ["quicish.test"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@timed()
async def test_cancelled_connect_releases_its_socket() -> None:
    from quicish.aio import api

    port = _unused_udp_port()
    api._spare_client.discard()  # the spare connection's socket, made by an earlier test
    gc.collect()  # sockets of earlier tests' loops, if any are left, close now, not later
    before = _open_fds()
    for _ in range(5):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(quicish.connect("127.0.0.1", port, config=client_config()), 0.1)
    api._spare_client.discard()  # (one socket at most, made for the next connect())
    assert _open_fds() == before


@timed()
async def test_a_closed_connection_leaves_the_server_at_once() -> None:
    """Server.connections drops a connection as it closes, not a loop iteration later: a
    caller whose wait_closed() returns at once (already closed) no longer sees it."""
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    async with server, quicish.connect("127.0.0.1", server.address[1], config=client_config()) as c:
        assert await echo_once(c, b"x") == b"x"
        (sconn,) = server.connections
        sconn.abort()  # closed now, synchronously
        assert server.connections == set()
        await sconn.wait_closed()  # (returns at once)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@timed()
async def test_closed_connections_release_their_sockets() -> None:
    from quicish.aio import api

    async with await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo) as s:
        api._spare_client.discard()  # the spare connection's socket, made by an earlier test
        before = _open_fds()
        for i in range(5):
            async with quicish.connect("127.0.0.1", s.address[1], config=client_config()) as c:
                assert await echo_once(c, bytes([i])) == bytes([i])
                (sconn,) = s.connections
            await c.wait_released()  # the client's closing period, in the background
            await sconn.wait_released()
            assert not s.connections
            assert not s._endpoint.router._by_cid  # its connection IDs are forgotten
        assert _open_fds() == before + 1  # one socket, bound for the next connect()
        api._spare_client.discard()
        assert _open_fds() == before


def test_run_helper_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICISH_UVLOOP", "0")

    async def main() -> str:
        async with pair() as (_, conn):
            assert await echo_once(conn, b"plain") == b"plain"
        return type(asyncio.get_running_loop()).__module__

    assert quicish.run(asyncio.wait_for(main(), 20)).startswith("asyncio")


def test_uvloop_timers_never_fire_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop rounds timer delays to whole milliseconds; the endpoint arms late enough that
    its timer never runs before the earliest deadline (it used to re-arm in a busy loop)."""
    uvloop = pytest.importorskip("uvloop")
    from quicish.aio import endpoint as ep

    fired = {"early": 0, "due": 0}
    original = ep.Endpoint._on_timer

    def counting(self: ep.Endpoint[Any]) -> None:
        timers = self._timers
        if timers:
            fired["early" if timers[0][0] > ep.clock() else "due"] += 1
        original(self)

    monkeypatch.setattr(ep.Endpoint, "_on_timer", counting)

    async def main() -> None:
        for _ in range(5):
            async with pair() as (_, conn):
                assert await echo_once(conn, b"x" * 100_000) == b"x" * 100_000
                await asyncio.sleep(0.03)  # let ACK-delay timers run

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        loop.close()
    assert fired["due"] > 0
    # Before the fix: dozens of early wake-ups per connection; now at most a stray one.
    assert fired["early"] <= fired["due"] // 4 + 2, fired


@timed()
async def test_handler_reply_shares_the_datagram_of_the_ack() -> None:
    """A handler that answers at once: its reply goes out with the ACK of the request, because
    the endpoint flushes after the tasks that the request woke."""
    sent: list[int] = []

    async with pair() as (server, conn):
        # (an answer of a probe's worth of data, so path MTU discovery is done before)
        assert await echo_once(conn, bytes(2000)) == bytes(2000)
        await asyncio.sleep(0.05)  # idle: nothing left to acknowledge or retransmit
        assert server.connections and all(
            c.stats().mtu_probes_sent == 1 for c in server.connections
        )
        udp = server._endpoint.udp
        original = udp.send

        def counting(datagrams: list[bytes], addr: tuple[str, int]) -> list[bytes]:
            sent.append(len(datagrams))
            return original(datagrams, addr)

        udp.send = counting  # type: ignore[method-assign]
        request = bytes(2000)  # two packets: the second makes the ACK immediate
        assert await echo_once(conn, request) == request
        udp.send = original  # type: ignore[method-assign]
    # One send of two datagrams (ACK + echo in the first), not an ACK-only datagram first.
    assert sent[:1] == [2], sent


@timed()
async def test_finished_connections_are_freed_without_the_cycle_collector() -> None:
    """Once closed, a connection (client and server side, with its streams, TLS state and
    recovery) holds no reference cycle: dropping the last reference frees it, so a busy
    endpoint's memory does not wait for the cycle collector."""
    accepted: list[QuicConnection] = []
    server = await quicish.serve(
        "127.0.0.1", 0, config=server_config(), on_stream=echo, on_connection=accepted.append
    )
    try:
        with cyclic_garbage() as leaked:
            conn = await quicish.connect("127.0.0.1", server.address[1], config=client_config())
            assert await echo_once(conn, b"cycle" * 300) == b"cycle" * 300
            reader, writer = await conn.open_stream()  # still open, both ways, at close
            writer.write(b"left open")
            await writer.drain()
            assert len(accepted) == 1
            conn.close()
            await conn.wait_released()
            await accepted[0].wait_released()
            del conn, reader, writer
            accepted.clear()
            await asyncio.sleep(0)
        assert leaked == []
    finally:
        server.close()
        await server.wait_closed()


@timed()
async def test_server_makes_each_next_connection_between_handshakes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server builds the connection object (TLS engine included) for its next client
    once the current client's handshake is over, so building it is on neither handshake's
    critical path (made earlier, it would hold up the current client's Finished)."""
    from quicish.aio import api

    log: list[str] = []
    accepted: list[QuicConnection] = []

    class Logged(Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if not kwargs["is_client"]:
                # (a check that failed here would be lost in a loop callback: log it)
                done = all(conn._proto.handshake_complete for conn in accepted)
                log.append("made" if done else "made during a handshake")
            super().__init__(*args, **kwargs)

    def logged(count: int) -> Callable[[], bool]:
        return lambda: len(log) == count

    def on_connection(conn: QuicConnection) -> None:
        log.append("accepted")
        accepted.append(conn)

    monkeypatch.setattr(api, "Connection", Logged)
    server = await quicish.serve(
        "127.0.0.1", 0, config=server_config(), on_stream=echo, on_connection=on_connection
    )
    try:
        assert log == ["made"]
        for n in range(2):
            async with quicish.connect("127.0.0.1", server.address[1], config=client_config()) as c:
                assert await echo_once(c, b"n%d" % n) == b"n%d" % n
            await c.wait_released()  # (the spare is made once the server's socket is quiet)
            await _until(logged(3 + 2 * n))
        assert log == ["made", "accepted", "made", "accepted", "made"]
    finally:
        server.close()
        await server.wait_closed()


@timed()
async def test_the_server_spare_follows_the_second_flush_after_the_handshakes() -> None:
    """Once no handshake is in progress, the spare is made right after the endpoint's
    second flush (the answers to the Finished and to the first request), not the first
    (the request may follow the Finished), and not while another handshake began."""
    from types import SimpleNamespace

    from quicish.aio import api

    loop = asyncio.get_running_loop()
    pending: list[Callable[[], None]] = []

    def after_next_flush(callback: Callable[[], None]) -> None:
        pending[:] = [callback]  # (one callback at a time, as the endpoint keeps it)

    def flush() -> None:
        if pending:
            pending.pop()()

    endpoint = SimpleNamespace(
        closed=False, last_receive=clock() + 60, after_next_flush=after_next_flush
    )
    made: list[str] = []

    def make() -> Any:
        made.append("made")
        return object()

    def handshake() -> asyncio.Future[None]:
        over: asyncio.Future[None] = loop.create_future()
        conn = SimpleNamespace(
            on_handshake_over=lambda callback: over.add_done_callback(lambda _: callback())
        )
        assert spare.take() is not None
        spare.track(conn)  # type: ignore[arg-type]
        return over

    spare = api._SpareServerConnection(endpoint, make)  # type: ignore[arg-type]
    first = handshake()
    flush()
    assert made == ["made"] and not pending  # in a handshake: nothing armed
    first.set_result(None)
    await asyncio.sleep(0)
    flush()  # the answer to the Finished
    assert made == ["made"]
    flush()  # the answer to the first request
    assert made == ["made", "made"] and not pending
    flush()
    assert made == ["made", "made"]  # one spare
    second = handshake()
    second.set_result(None)
    await asyncio.sleep(0)
    flush()
    third = handshake()  # a new client came before the second flush: made on its Initial
    assert made == ["made"] * 3
    flush()
    assert made == ["made"] * 3  # not during its handshake
    third.set_result(None)
    await asyncio.sleep(0)
    flush()
    flush()
    assert made == ["made"] * 4


@timed()
async def test_sequential_clients_each_find_a_spare_server_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over UDP, with the quiet spell out of reach: clients that connect, ask once and
    close one after another each find the server's connection made ahead (after the answer
    to the previous client's request), none is made on an Initial's arrival."""
    from quicish.aio import api

    monkeypatch.setattr(api, "SPARE_QUIET", 60.0)
    found: list[bool] = []
    take = api._SpareServerConnection.take

    def logged_take(self: Any) -> Connection:
        found.append(self._spare is not None)
        return take(self)

    monkeypatch.setattr(api._SpareServerConnection, "take", logged_take)
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    try:
        for n in range(4):
            async with quicish.connect("127.0.0.1", server.address[1], config=client_config()) as c:
                assert await echo_once(c, b"n%d" % n) == b"n%d" % n
            await c.wait_released()
        assert found == [True, True, True, True]
    finally:
        server.close()
        await server.wait_closed()


@timed()
async def test_client_makes_the_next_connection_when_one_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When a plain client connection ends, the next connect() with an equal Config and
    server name gets a connection object made meanwhile; any other connect() makes its own."""
    from quicish.aio import api

    made: list[Connection] = []

    class Logged(Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if kwargs["is_client"]:
                made.append(self)

    monkeypatch.setattr(api, "Connection", Logged)
    monkeypatch.setattr(api, "_spare_client", api._SpareClient())
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    port = server.address[1]

    ports: list[int] = []

    async def once(config: quicish.Config) -> Connection:
        async with quicish.connect("127.0.0.1", port, config=config) as conn:
            assert await echo_once(conn, b"spare") == b"spare"
            ports.append(conn._endpoint.address[1])
        await conn.wait_released()  # (the spare is made as the connection ends)
        return conn._proto

    def spare_socket() -> Any:
        spare = api._spare_client._spare
        assert spare is not None
        return spare[4]

    try:
        first = await once(client_config())
        assert made[0] is first and len(made) == 2  # the spare, made when the first ended
        # the hello made, unsent
        assert made[1]._handshake.tls is not None and made[1].peer_addr is None
        assert made[1]._first_datagram is not None  # and its first datagram sealed
        spare_port = spare_socket().address[1]  # its socket is bound too
        second = await once(client_config())  # an equal Config, not the same object
        assert second is made[1] and len(made) == 3 and ports[1] == spare_port
        other = client_config()
        other.idle_timeout = 7.0  # differs: the spare is not for it
        unused = spare_socket()
        third = await once(other)
        assert third is made[3] and third.config is other and len(made) == 5
        assert third._idle.timeout == 7.0
        assert unused.sock.fileno() == -1  # the spare's socket was closed, not leaked
    finally:
        server.close()
        await server.wait_closed()


@timed()
async def test_the_server_spare_waits_for_the_handshakes_and_a_quiet_socket() -> None:
    """The next spare server connection is made only when no handshake is in progress and
    no datagram arrived for SPARE_QUIET seconds, so making it holds up no handshake."""
    from types import SimpleNamespace

    from quicish.aio import api

    loop = asyncio.get_running_loop()
    flush_callbacks: list[Callable[[], None]] = []  # (no flush here: the quiet rule alone)
    endpoint = SimpleNamespace(
        closed=False, last_receive=0.0, after_next_flush=flush_callbacks.append
    )
    made: list[str] = []

    def make() -> Any:
        made.append("made")
        return object()

    spare = api._SpareServerConnection(endpoint, make)  # type: ignore[arg-type]
    assert made == ["made"]  # the first one at once: nothing to hold up
    assert spare.take() is not None and made == ["made"]
    handshake: asyncio.Future[None] = loop.create_future()
    conn = SimpleNamespace(
        on_handshake_over=lambda callback: handshake.add_done_callback(lambda _: callback())
    )
    spare.track(conn)  # type: ignore[arg-type]
    await asyncio.sleep(api.SPARE_QUIET * 5)
    assert made == ["made"]  # a handshake is in progress
    endpoint.last_receive = clock() + 0.3  # as if datagrams kept coming for 0.3 s
    handshake.set_result(None)
    await asyncio.sleep(api.SPARE_QUIET * 5)
    assert made == ["made"]  # the handshake is over, but the socket is not quiet
    await asyncio.sleep(0.3 + api.SPARE_QUIET * 10)
    assert made == ["made", "made"]
    assert spare.take() is not None and made == ["made", "made"]  # the stocked one

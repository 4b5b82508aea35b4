"""What a server endpoint does with packets that would open a connection (issue 15, items 3
and 11, and the 8-byte DCID rule), on real loopback UDP against an in-process server:
Version Negotiation is never answered, short Initial DCIDs are refused, automatic Retry
engages at the half-open threshold, the half-open cap holds, and ``Endpoint.forget`` costs
the forgotten connection's CIDs only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from aio_support import timed
from hostile_support import InitialForger
from support import client_config, server_config

import quicish
from quicish.aio.endpoint import Endpoint
from quicish.wire.packet import PacketType, encode_version_negotiation, parse_header

LOOPBACK = "127.0.0.1"


async def _exchange(
    sock: socket.socket, port: int, datagrams: list[bytes], wait: float = 0.3
) -> list[bytes]:
    """Send ``datagrams`` to the server, then collect what comes back for ``wait`` s."""
    for data in datagrams:
        sock.sendto(data, (LOOPBACK, port))
    got: list[bytes] = []
    end = asyncio.get_running_loop().time() + wait
    while asyncio.get_running_loop().time() < end:
        await asyncio.sleep(0.01)
        while True:
            try:
                got.append(sock.recv(65536))
            except BlockingIOError:
                break
    return got


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.setblocking(False)
    return sock


async def _server(**kw: Any) -> quicish.Server:
    return await quicish.serve(LOOPBACK, 0, config=server_config(**kw))


def _types(datagrams: list[bytes]) -> list[PacketType]:
    return [parse_header(d).packet_type for d in datagrams]


@timed()
async def test_version_negotiation_is_never_answered() -> None:
    """RFC 9000 6.1: an endpoint MUST NOT send a Version Negotiation packet in response to
    one; a 1200-byte one used to get a VN back (a reflection loop between two servers)."""
    server = await _server()
    with _socket() as sock:
        try:
            port = server.address[1]
            vn = encode_version_negotiation(bytes(8), bytes(9), [0x1A2A3A4A] * 294)
            assert len(vn) == 1200
            assert await _exchange(sock, port, [vn]) == []
            # An unknown version in a full-size datagram is answered with VN (RFC 9000 6.1);
            # a smaller one is not (RFC 9000 14.1: it cannot be a client's first datagram).
            unknown = bytearray(vn)
            unknown[1:5] = (0x1A2A3A4A).to_bytes(4, "big")
            got = await _exchange(sock, port, [bytes(unknown)])
            assert _types(got) == [PacketType.VERSION_NEGOTIATION]
            assert await _exchange(sock, port, [bytes(unknown[:1199])]) == []
            assert server.connections == set()
        finally:
            server.close()


@timed()
async def test_initial_with_a_dcid_shorter_than_8_bytes_is_refused() -> None:
    """RFC 9000 7.2: a client's first Initial has a DCID of at least 8 bytes; a server
    drops one with a shorter DCID and keeps no state for it."""
    server = await _server()
    with _socket() as sock:
        try:
            port = server.address[1]
            forger = InitialForger(port)
            for n in (0, 1, 7):
                assert await _exchange(sock, port, [forger.make(bytes(range(n)))], 0.15) == []
            assert server.connections == set()
            got = await _exchange(sock, port, [forger.make(bytes(range(8)))])
            assert PacketType.INITIAL in _types(got)
            assert len(server.connections) == 1
        finally:
            server.close()


@timed()
async def test_automatic_retry_engages_at_the_half_open_threshold() -> None:
    server = await _server(retry_threshold=2)
    admission = server._endpoint.admission
    assert admission is not None and admission.mode == "auto"
    with _socket() as sock:
        try:
            port = server.address[1]
            forger = InitialForger(port)
            for i in range(2):
                got = await _exchange(sock, port, [forger.make(bytes([i]) * 8)])
                assert got and _types(got)[0] == PacketType.INITIAL  # a connection answers
            assert admission.half_open == 2
            got = await _exchange(sock, port, [forger.make(b"\x09" * 8)])
            assert _types(got) == [PacketType.RETRY]  # stateless
            assert admission.half_open == 2 and len(server.connections) == 2
            # A real client takes the Retry round trip and is served.
            async with quicish.connect(LOOPBACK, port, config=client_config()) as conn:
                assert conn.alpn == "hq-interop"
                await asyncio.sleep(0.05)
                assert admission.half_open == 2  # its handshake is over
            assert server._endpoint.stateless is not None
            assert server._endpoint.stateless.retries_sent == 2
        finally:
            server.close()


@timed()
async def test_half_open_cap_without_retry_drops_new_initials() -> None:
    server = await _server(retry=False, max_half_open=2)
    with _socket() as sock:
        try:
            port = server.address[1]
            forger = InitialForger(port)
            for i in range(2):
                assert await _exchange(sock, port, [forger.make(bytes([i]) * 8)], 0.15)
            assert await _exchange(sock, port, [forger.make(b"\x09" * 8)]) == []
            assert len(server.connections) == 2
            assert server._endpoint.admission is not None
            assert server._endpoint.admission.dropped == 1
        finally:
            server.close()


@timed()
async def test_retry_true_still_means_always() -> None:
    server = await _server(retry=True)
    with _socket() as sock:
        try:
            port = server.address[1]
            got = await _exchange(sock, port, [InitialForger(port).make(bytes(8))])
            assert _types(got) == [PacketType.RETRY] and server.connections == set()
        finally:
            server.close()


@timed()
async def test_half_open_connection_leaves_the_count_at_its_handshake_timeout() -> None:
    server = await _server(handshake_timeout=0.3)
    admission = server._endpoint.admission
    assert admission is not None
    with _socket() as sock:
        try:
            port = server.address[1]
            assert await _exchange(sock, port, [InitialForger(port).make(bytes(8))], 0.1)
            assert admission.half_open == 1 and len(server.connections) == 1
            await asyncio.sleep(0.5)
            assert admission.half_open == 0 and server.connections == set()
        finally:
            server.close()


class _CountingDict(dict[bytes, Any]):
    """A CID table that counts the entries a full scan visits."""

    visited = 0

    def items(self) -> Any:
        for item in super().items():
            _CountingDict.visited += 1
            yield item

    def values(self) -> Any:
        for value in super().values():
            _CountingDict.visited += 1
            yield value

    def __iter__(self) -> Any:
        for key in super().__iter__():
            _CountingDict.visited += 1
            yield key


class _Conn:  # what forget() uses of a QuicConnection
    def __hash__(self) -> int:
        return id(self)


def test_forget_visits_only_the_connections_own_cids() -> None:
    """Forgetting N connections used to scan the whole CID table each time (O(N^2): 71 s of
    CPU for 50k); now each forget costs the CIDs of that connection."""
    loop = asyncio.new_event_loop()
    udp = quicish.udp.UdpSocket.bind(LOOPBACK, 0)
    try:
        endpoint: Endpoint[Any] = Endpoint(loop, udp)
        endpoint.router._by_cid = _CountingDict()
        conns = [_Conn() for _ in range(20_000)]
        for i, conn in enumerate(conns):
            endpoint.register(i.to_bytes(8, "big"), conn)
            endpoint.register(b"o" + i.to_bytes(8, "big"), conn)
        endpoint.unregister((5).to_bytes(8, "big"))  # a retired CID
        _CountingDict.visited = 0
        for conn in conns:
            endpoint.forget(conn)
        assert len(endpoint.router._by_cid) == 0
        assert _CountingDict.visited == 0  # no scans: each CID is looked up
        assert endpoint.connections == set()
        endpoint.close()
    finally:
        loop.close()


def test_serve_flags_reach_the_config(monkeypatch: Any) -> None:
    """``quicish serve --retry`` still means always; --retry-mode, --retry-threshold,
    --max-half-open and --handshake-timeout set the Config knobs (checked there)."""
    from quicish import cli

    seen: list[quicish.Config] = []

    async def fake_serve(host: str, port: int, *, config: quicish.Config, **kw: Any) -> Any:
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(cli, "serve", fake_serve)
    cert, key = server_config().certificate_chain, server_config().private_key
    base = ["serve", "--cert", str(cert), "--key", str(key)]
    for extra, expect in [
        ([], ("auto", 100, 1000, 10.0)),
        (["--retry"], ("always", 100, 1000, 10.0)),
        (
            [
                "--retry-mode",
                "never",
                "--retry-threshold",
                "5",
                "--max-half-open",
                "50",
                "--handshake-timeout",
                "3",
            ],
            ("never", 5, 50, 3.0),
        ),
    ]:
        with contextlib.suppress(SystemExit):
            cli.main(base + extra)
        cfg = seen.pop()
        assert (
            cfg.retry_mode(),
            cfg.retry_threshold,
            cfg.max_half_open,
            cfg.handshake_timeout,
        ) == expect
    assert cli.main([*base, "--max-half-open", "0"]) == 1  # ConfigError, reported


@timed()
async def test_connect_fails_at_the_handshake_timeout() -> None:
    """A client's connect() to a server that never answers fails at its handshake deadline
    (here 0.5 s), not at the idle timeout."""
    with _socket() as silent:
        port = silent.getsockname()[1]
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await quicish.connect(LOOPBACK, port, config=client_config(handshake_timeout=0.5))
        except quicish.HandshakeTimeout as exc:
            assert isinstance(exc, TimeoutError) and isinstance(exc, ConnectionError)
            assert f"no response from {LOOPBACK}:{port} within 0.5 s" in str(exc)
        else:
            raise AssertionError("connect() succeeded against a silent port")
        assert 0.5 <= loop.time() - start < 2.0
        start = loop.time()
        try:  # connect(timeout=...) overrides the Config's deadline
            await quicish.connect(LOOPBACK, port, config=client_config(), timeout=0.3)
        except TimeoutError as exc:
            assert isinstance(exc, quicish.HandshakeTimeout) and "within 0.3 s" in str(exc)
        else:
            raise AssertionError("connect() succeeded against a silent port")
        assert 0.3 <= loop.time() - start < 1.5

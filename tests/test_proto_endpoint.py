"""The sans-IO endpoint (quicish.proto.endpoint) without asyncio or sockets: CID routing,
Version Negotiation, Initial checks and admission, Retry, stateless reset and QUIC v2,
with sans-IO connections on both sides and datagrams carried by hand."""

from __future__ import annotations

import pytest
from support import client_config, server_config

from quicish.proto import events as ev
from quicish.proto.admission import Admission
from quicish.proto.cid import reset_token
from quicish.proto.connection import Connection
from quicish.proto.endpoint import MIN_FIRST_DATAGRAM, Endpoint
from quicish.proto.server_context import ServerContext
from quicish.proto.stateless import InitialVerdict, StatelessResponder
from quicish.wire.buffer import Buffer
from quicish.wire.packet import (
    QUIC_V1,
    QUIC_V2,
    SUPPORTED_VERSIONS,
    PacketType,
    encode_long_header,
    parse_header,
)

CLIENT = ("192.0.2.1", 5000)
OTHER_CLIENT = ("192.0.2.2", 5001)
SERVER = ("192.0.2.100", 443)


class Server:
    """A server's sans-IO endpoint whose ``accept`` makes sans-IO connections."""

    def __init__(
        self,
        context: ServerContext | None = None,
        *,
        retry: bool = False,
        admission: Admission | None = None,
        accept_fails: bool = False,
    ) -> None:
        self.context = context or ServerContext.from_config(server_config())
        self.stateless = StatelessResponder(self.context, retry=retry, admission=admission)
        self.verdicts: list[InitialVerdict | None] = []
        self.accept_fails = accept_fails
        self.endpoint: Endpoint[Connection] = Endpoint(
            accept=self._accept, stateless=self.stateless, admission=admission
        )

    def _accept(
        self, data: bytes, addr: tuple[str, int], now: float, verdict: InitialVerdict | None
    ) -> Connection | None:
        if self.accept_fails:
            raise MemoryError("no room for a connection")
        self.verdicts.append(verdict)
        conn = Connection(server_config(), is_client=False, server_context=self.context)
        if verdict is not None:
            conn.set_origin(verdict.original_dcid, verdict.retry_source_cid, verdict.validated)
        conn.receive_datagram(data, addr, now)
        if conn.stats_counters.packets_received == 0:
            return None
        return conn

    def receive(self, data: bytes, addr: tuple[str, int], now: float) -> Connection | None:
        """What a driver does with one datagram: route it, feed it unless accept() did."""
        endpoint = self.endpoint
        conn = endpoint.route(data, addr, now)
        if conn is not None:
            if conn is endpoint.accepted:
                endpoint.accepted = None
            else:
                conn.receive_datagram(data, addr, now)
        return conn


def exchange(
    client: Connection, server: Server, addr: tuple[str, int], now: float, rounds: int = 20
) -> list[bytes]:
    """Carry datagrams both ways for ``rounds`` rounds (1 ms apart); the stateless answers
    the server's endpoint made, in order."""
    answers: list[bytes] = []
    for i in range(rounds):
        t = now + i * 0.001
        for data, _ in client.datagrams_to_send(t):
            server.receive(data, addr, t)
        for reply, to in server.endpoint.take_outbox():
            assert to == addr
            answers.append(reply)
            client.receive_datagram(reply, SERVER, t)
        for conn in server.endpoint.connections:
            for data, to in conn.datagrams_to_send(t):
                assert to == addr
                client.receive_datagram(data, SERVER, t)
    return answers


def connected_client(**kw: object) -> Connection:
    client = Connection(client_config(), is_client=True, **kw)  # type: ignore[arg-type]
    client.connect(SERVER, 0.0)
    return client


def first_datagram(client: Connection, now: float = 0.0) -> bytes:
    datagrams = client.datagrams_to_send(now)
    assert datagrams
    return datagrams[0][0]


def terminated(conn: Connection) -> list[ev.ConnectionTerminated]:
    out = []
    while (event := conn.next_event()) is not None:
        if isinstance(event, ev.ConnectionTerminated):
            out.append(event)
    return out


# ---- routing and the handshake ----------------------------------------------------------------
def test_handshake_through_the_endpoint_routes_by_cid() -> None:
    server = Server()
    client = connected_client()
    assert exchange(client, server, CLIENT, 0.0) == []  # nothing stateless
    assert client.handshake_complete
    (conn,) = server.endpoint.connections
    assert conn.handshake_complete and server.verdicts[0] is not None
    assert not server.verdicts[0].validated
    # The client's first DCID and the server's own CID both route to the connection.
    assert server.endpoint.lookup(conn.host_cid) is conn
    assert server.endpoint.lookup(client.peer_cid) is conn
    sid = client.open_stream()
    client.send_stream_data(sid, b"ping", end_stream=True)
    exchange(client, server, CLIENT, 0.1, rounds=3)
    data, fin = conn.read_stream(sid, -1)
    assert (data, fin) == (b"ping", True)
    server.endpoint.forget(conn)
    assert server.endpoint.connections == set()
    assert server.endpoint.lookup(conn.host_cid) is None


def test_new_cids_route_once_registered() -> None:
    server = Server()
    client = connected_client()
    exchange(client, server, CLIENT, 0.0)
    (conn,) = server.endpoint.connections
    issued = []
    while (event := conn.next_event()) is not None:
        if isinstance(event, ev.ConnectionIdIssued):
            issued.append(event.cid)
    assert issued
    for cid in issued:
        server.endpoint.register(cid, conn)
        assert server.endpoint.lookup(cid) is conn
    server.endpoint.unregister(issued[0])
    assert server.endpoint.lookup(issued[0]) is None
    server.endpoint.forget(conn)
    assert all(server.endpoint.lookup(cid) is None for cid in issued)


def test_first_initial_checks() -> None:
    """RFC 9000 14.1 and 7.2: a new client's first datagram is at least 1200 bytes, its DCID
    at least 8 bytes; anything but an Initial for an unknown CID is dropped."""
    server = Server()
    first = first_datagram(connected_client())
    assert server.receive(first[:1100], CLIENT, 0.0) is None  # too small
    head = encode_long_header(PacketType.INITIAL, QUIC_V1, b"1234567", b"abcdefgh", b"", 1100, 0, 1)
    assert server.receive(head + bytes(1200), CLIENT, 0.0) is None  # a 7-byte DCID
    assert server.receive(b"\xe0" + first[1:], CLIENT, 0.0) is None  # a Handshake packet
    assert server.receive(b"", CLIENT, 0.0) is None  # (empty: not even counted)
    assert server.endpoint.datagrams_dropped == 3
    assert server.endpoint.connections == set() and server.endpoint.outbox == []
    assert server.receive(first, CLIENT, 0.0) is not None


def test_undecryptable_initial_keeps_no_state() -> None:
    server = Server()
    first = bytearray(first_datagram(connected_client()))
    first[-5] ^= 0xFF  # the AEAD tag of its packet fails
    assert server.receive(bytes(first), CLIENT, 0.0) is None
    assert server.endpoint.connections == set() and server.endpoint.datagrams_dropped == 1


def test_an_exception_making_a_connection_drops_only_that_datagram() -> None:
    server = Server(accept_fails=True)
    assert server.receive(first_datagram(connected_client()), CLIENT, 0.0) is None
    assert server.endpoint.datagrams_dropped == 1 and server.endpoint.connections == set()


def test_client_endpoint_routes_only_to_its_connection() -> None:
    """Without ``accept`` (a client's socket), an unknown long-header DCID is dropped and an
    unknown short-header one goes to the connection (it checks for a stateless reset)."""
    client = connected_client()
    endpoint: Endpoint[Connection] = Endpoint()
    endpoint.register(client.host_cid, client)
    assert endpoint.route(first_datagram(connected_client()), SERVER, 0.0) is None
    assert endpoint.datagrams_dropped == 1
    assert endpoint.route(b"\x40" + bytes(30), SERVER, 0.0) is client
    assert endpoint.route(b"\x40" + client.host_cid + bytes(30), SERVER, 0.0) is client
    assert endpoint.outbox == []


# ---- Version Negotiation ----------------------------------------------------------------------
def _with_version(datagram: bytes, version: int) -> bytes:
    return datagram[:1] + version.to_bytes(4, "big") + datagram[5:]


def test_unknown_version_gets_version_negotiation() -> None:
    server = Server()
    first = first_datagram(connected_client())
    header = parse_header(first)
    assert server.receive(_with_version(first, 0x1A2A3A4A), CLIENT, 0.0) is None
    ((vn, to),) = server.endpoint.take_outbox()
    assert to == CLIENT and server.endpoint.connections == set()
    assert vn[0] & 0x80 and vn[1:5] == bytes(4)  # a long header with version 0
    buf = Buffer(vn[5:])
    dcid = buf.pull_bytes(buf.pull_uint8())
    scid = buf.pull_bytes(buf.pull_uint8())
    assert (dcid, scid) == (header.scid, header.dcid)  # the client's CIDs, swapped
    offered = []
    while not buf.eof():
        offered.append(buf.pull_uint32())
    assert offered == list(SUPPORTED_VERSIONS)
    assert server.endpoint.take_outbox() == []


def test_version_negotiation_is_never_answered_nor_sent_for_small_datagrams() -> None:
    server = Server()
    first = first_datagram(connected_client())
    assert server.receive(_with_version(first, 0), CLIENT, 0.0) is None  # a VN packet
    small = _with_version(first, 0x1A2A3A4A)[: MIN_FIRST_DATAGRAM - 1]
    assert server.receive(small, CLIENT, 0.0) is None
    assert server.endpoint.outbox == [] and server.endpoint.datagrams_dropped == 2


def test_client_ignores_version_negotiation_listing_its_version() -> None:
    """RFC 9000 6.2: a Version Negotiation that lists the client's version (here: answered
    to a copy of its Initial with another version) is ignored; the handshake completes."""
    server = Server()
    client = connected_client()
    first = first_datagram(client)
    server.receive(_with_version(first, 0x1A2A3A4A), CLIENT, 0.0)
    ((vn, _),) = server.endpoint.take_outbox()
    assert server.endpoint.connections == set()  # no state for it
    client.receive_datagram(vn, SERVER, 0.001)
    assert not client.is_terminated
    server.receive(first, CLIENT, 0.001)  # the real Initial (v1) opens the connection
    exchange(client, server, CLIENT, 0.002)
    assert client.handshake_complete and len(server.endpoint.connections) == 1


# ---- Retry ------------------------------------------------------------------------------------
def test_handshake_through_retry() -> None:
    server = Server(retry=True)
    client = connected_client()
    answers = exchange(client, server, CLIENT, 0.0)
    assert [parse_header(a).packet_type for a in answers] == [PacketType.RETRY]
    assert client.handshake_complete and client.stats().retries_received == 1
    assert server.stateless.retries_sent == 1
    (conn,) = server.endpoint.connections
    verdict = server.verdicts[0]
    assert verdict is not None and verdict.validated and verdict.retry_source_cid
    assert conn.peer_address_validated  # the token proved the address
    # The Initial that carried the token routes by the client's new DCID (the Retry's SCID).
    assert server.endpoint.lookup(verdict.retry_source_cid) is conn


def test_retry_token_from_another_address_gets_invalid_token() -> None:
    server = Server(retry=True)
    client = connected_client()
    server.receive(first_datagram(client), CLIENT, 0.0)
    ((retry, _),) = server.endpoint.take_outbox()
    client.receive_datagram(retry, SERVER, 0.01)
    server.receive(first_datagram(client, 0.01), OTHER_CLIENT, 0.01)  # spoofed elsewhere
    ((close, to),) = server.endpoint.take_outbox()
    assert to == OTHER_CLIENT and parse_header(close).packet_type == PacketType.INITIAL
    assert server.stateless.invalid_tokens == 1 and server.endpoint.connections == set()
    client.receive_datagram(close, SERVER, 0.02)
    (event,) = terminated(client)
    assert event.by_peer and event.error_code == 0x0B  # INVALID_TOKEN


def test_auto_retry_under_load_and_the_half_open_count() -> None:
    """Admission "auto": once ``retry_threshold`` connections are half-open, a client
    without a validated address gets a Retry; settled() ends a connection's half-open time."""
    admission = Admission("auto", retry_threshold=1, max_half_open=2)
    server = Server(admission=admission)
    first = server.receive(first_datagram(connected_client()), CLIENT, 0.0)
    assert first is not None and admission.half_open == 1
    second = connected_client()
    assert server.receive(first_datagram(second), OTHER_CLIENT, 0.0) is None
    ((retry, _),) = server.endpoint.take_outbox()
    assert parse_header(retry).packet_type == PacketType.RETRY
    second.receive_datagram(retry, SERVER, 0.01)
    # Its address is now validated: accepted though the threshold is reached.
    assert server.receive(first_datagram(second, 0.01), OTHER_CLIENT, 0.01) is not None
    assert admission.half_open == 2 and (admission.accepted, admission.retried) == (2, 1)
    third = connected_client()
    assert server.receive(first_datagram(third), ("192.0.2.3", 1), 0.02) is None
    assert parse_header(server.endpoint.take_outbox()[0][0]).packet_type == PacketType.RETRY
    server.endpoint.settled(first)  # its handshake is over
    assert admission.half_open == 1
    server.endpoint.forget(first)  # (again: no effect)
    assert admission.half_open == 1


# ---- stateless reset --------------------------------------------------------------------------
def test_stateless_reset_from_a_restarted_server() -> None:
    server = Server()
    client = connected_client()
    exchange(client, server, CLIENT, 0.0)
    assert client.handshake_complete
    terminated(client)
    # The server "restarts": same reset key, no connections.
    ctx = server.context
    restarted = Server(
        ServerContext(ctx.certificate_chain, ctx.private_key, reset_key=ctx.reset_key)
    )
    sid = client.open_stream()
    client.send_stream_data(sid, b"hello after the restart")
    packet = client.datagrams_to_send(0.5)[-1][0]
    assert not packet[0] & 0x80
    assert restarted.receive(packet, CLIENT, 0.5) is None
    ((reset, to),) = restarted.endpoint.take_outbox()
    assert to == CLIENT and restarted.stateless.resets_sent == 1
    assert 21 <= len(reset) < len(packet) and reset[0] & 0xC0 == 0x40
    assert reset[-16:] == reset_token(ctx.reset_key, packet[1:9])
    client.receive_datagram(reset, SERVER, 0.51)
    (event,) = terminated(client)
    assert event.reason == "stateless reset" and event.by_peer


@pytest.mark.parametrize("size", [1, 21])
def test_no_stateless_reset_for_tiny_datagrams(size: int) -> None:
    server = Server()
    assert server.receive(b"\x40" + bytes(size - 1), CLIENT, 0.0) is None
    assert server.endpoint.outbox == [] and server.stateless.resets_sent == 0
    assert server.endpoint.datagrams_dropped == 1


# ---- QUIC v2 ----------------------------------------------------------------------------------
def test_v2_by_compatible_negotiation_through_the_endpoint() -> None:
    context = ServerContext.from_config(server_config())
    context.versions = (QUIC_V2, QUIC_V1)
    server = Server(context)
    client = connected_client(versions=(QUIC_V2, QUIC_V1))
    first = first_datagram(client)
    assert parse_header(first).version == QUIC_V1  # any server reads the first flight
    server.receive(first, CLIENT, 0.0)
    exchange(client, server, CLIENT, 0.001)
    (conn,) = server.endpoint.connections
    assert client.handshake_complete and client.version == conn.version == QUIC_V2


def test_v2_client_through_retry() -> None:
    server = Server(retry=True)
    client = connected_client(version=QUIC_V2)
    answers = exchange(client, server, CLIENT, 0.0)
    retry = parse_header(answers[0])
    assert retry.version == QUIC_V2 and retry.packet_type == PacketType.RETRY
    assert client.handshake_complete and client.version == QUIC_V2
    assert client.stats().retries_received == 1

"""Retry and address validation (RFC 9000 section 8.1) without sockets: sealed tokens, the
stateless responder of a server endpoint, the client's side of Retry, INVALID_TOKEN and
NEW_TOKEN."""

from __future__ import annotations

import pytest
from pairs import Net, Peer, connected, make_pair
from support import client_config, server_config

from quicish.errors import ErrorCode
from quicish.proto import events as ev
from quicish.proto.connection import Connection
from quicish.proto.server_context import ServerContext
from quicish.proto.stateless import StatelessResponder
from quicish.proto.tokens import (
    NEW_TOKEN,
    RETRY_TOKEN,
    open_token,
    seal_new_token,
    seal_retry_token,
    token_kind,
)
from quicish.simlink import CLIENT_ADDR, SERVER_ADDR
from quicish.wire.packet import PacketType, parse_header

KEY = bytes(range(32))
ADDR = ("192.0.2.7", 4242)


# ---- tokens ----------------------------------------------------------------------------------
def test_retry_token_round_trip_carries_cids_and_time() -> None:
    token = seal_retry_token(KEY, ADDR, b"odcid123", b"retry-id", now=100.0)
    assert token_kind(token) == RETRY_TOKEN
    info = open_token(KEY, token, ADDR, now=101.0)
    assert info is not None
    assert (info.kind, info.issued) == (RETRY_TOKEN, 100.0)
    assert (info.original_dcid, info.retry_source_cid) == (b"odcid123", b"retry-id")


@pytest.mark.parametrize(
    "addr, now, key",
    [
        (("192.0.2.8", 4242), 101.0, KEY),  # another IP
        (("192.0.2.7", 4243), 101.0, KEY),  # another port: Retry tokens bind the port too
        (ADDR, 111.0, KEY),  # expired (10 s)
        (ADDR, 99.0, KEY),  # from the future
        (ADDR, 101.0, bytes(32)),  # another server key
    ],
)
def test_retry_token_rejected(addr: tuple[str, int], now: float, key: bytes) -> None:
    token = seal_retry_token(KEY, ADDR, b"odcid123", b"retry-id", now=100.0)
    assert open_token(key, token, addr, now) is None


def test_tampered_tokens_rejected() -> None:
    token = seal_retry_token(KEY, ADDR, b"odcid123", b"retry-id", now=100.0)
    for i in range(len(token)):
        bad = bytearray(token)
        bad[i] ^= 0x01
        assert open_token(KEY, bytes(bad), ADDR, 101.0) is None
    assert open_token(KEY, token[:-1], ADDR, 101.0) is None
    assert open_token(KEY, b"", ADDR, 101.0) is None
    assert token_kind(b"\x00" * 60) is None


def test_new_token_binds_ip_only_and_lasts_a_day() -> None:
    token = seal_new_token(KEY, ADDR, now=5.0)
    assert token_kind(token) == NEW_TOKEN
    info = open_token(KEY, token, ("192.0.2.7", 9999), now=5.0 + 3600)
    assert info is not None and info.kind == NEW_TOKEN
    assert open_token(KEY, token, ("192.0.2.9", 4242), now=6.0) is None
    assert open_token(KEY, token, ADDR, now=5.0 + 86401) is None


def test_ipv4_mapped_address_is_the_ipv4_address() -> None:
    token = seal_retry_token(KEY, ("::ffff:192.0.2.7", 4242), b"o", b"r", now=1.0)
    assert open_token(KEY, token, ADDR, now=1.5) is not None


# ---- the handshake through a Retry -------------------------------------------------------------
def _first_initial(client: Connection, now: float = 0.0) -> bytes:
    datagrams = client.datagrams_to_send(now)
    assert datagrams
    return datagrams[0][0]


def _retry_handshake(
    **client_kw: object,
) -> tuple[Net, Peer, Peer, StatelessResponder]:
    """Client -> Retry -> client Initial with token -> server connection from the verdict."""
    ctx = ServerContext.from_config(server_config())
    responder = StatelessResponder(ctx, retry=True)
    client = Connection(client_config(), is_client=True, **client_kw)  # type: ignore[arg-type]
    client.connect(SERVER_ADDR, 0.0)
    first = _first_initial(client)
    verdict = responder.check_initial(parse_header(first), CLIENT_ADDR, 0.01)
    assert not verdict.accept and verdict.reply is not None
    assert parse_header(verdict.reply).packet_type == PacketType.RETRY
    client.receive_datagram(verdict.reply, SERVER_ADDR, 0.02)
    second = _first_initial(client, 0.02)
    header = parse_header(second)
    assert header.token  # the Initial now carries the Retry token
    verdict = responder.check_initial(header, CLIENT_ADDR, 0.03)
    assert verdict.accept and verdict.validated and verdict.reply is None
    server = Connection(
        server_config(),
        is_client=False,
        server_context=ctx,
        original_dcid=verdict.original_dcid,
        retry_source_cid=verdict.retry_source_cid,
        address_validated=verdict.validated,
    )
    server.receive_datagram(second, CLIENT_ADDR, 0.03)
    net = Net(client, server, start=0.03)
    return net, Peer(client), Peer(server), responder


def test_handshake_through_retry() -> None:
    net, c, s, responder = _retry_handshake()
    connected(net, c, s)
    assert net.client.stats().retries_received == 1
    assert responder.retries_sent == 1
    # The client checked retry_source_connection_id and original_destination_connection_id
    # in the server's transport parameters (it would have closed otherwise).
    assert not net.client.is_terminated
    assert net.server.peer_address_validated  # the token proved the address: no 3x limit
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"x" * 50_000, end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=10)
    assert bytes(s.data[sid]) == b"x" * 50_000


def test_client_rejects_retry_with_bad_integrity_tag() -> None:
    ctx = ServerContext.from_config(server_config())
    responder = StatelessResponder(ctx, retry=True)
    client = Connection(client_config(), is_client=True)
    client.connect(SERVER_ADDR, 0.0)
    verdict = responder.check_initial(parse_header(_first_initial(client)), CLIENT_ADDR, 0.0)
    assert verdict.reply is not None
    bad = verdict.reply[:-1] + bytes([verdict.reply[-1] ^ 1])
    client.receive_datagram(bad, SERVER_ADDR, 0.01)
    assert client.stats().retries_received == 0
    client.receive_datagram(verdict.reply, SERVER_ADDR, 0.02)
    assert client.stats().retries_received == 1
    # A second Retry is ignored (RFC 9000 17.2.5.2).
    again = responder.check_initial(parse_header(_first_initial(client, 0.02)), CLIENT_ADDR, 0.03)
    assert again.accept  # the token is valid: no second Retry from the server either
    assert client.stats().retries_received == 1


def _invalid_token_outcome(
    token: bytes, addr: tuple[str, int] = CLIENT_ADDR, now: float = 0.0
) -> tuple[Connection, StatelessResponder]:
    ctx = ServerContext.from_config(server_config())
    responder = StatelessResponder(ctx, retry=True)
    client = Connection(client_config(), is_client=True, token=token)
    client.connect(SERVER_ADDR, now)
    verdict = responder.check_initial(parse_header(_first_initial(client, now)), addr, now)
    assert not verdict.accept and verdict.reply is not None
    client.receive_datagram(verdict.reply, SERVER_ADDR, now + 0.01)
    return client, responder


def test_forged_retry_token_gets_invalid_token_close() -> None:
    forged = bytes([RETRY_TOKEN]) + bytes(60)
    client, responder = _invalid_token_outcome(forged)
    assert responder.invalid_tokens == 1
    closed = [e for e in iter(client.next_event, None) if isinstance(e, ev.ConnectionTerminated)]
    assert closed and closed[0].error_code == ErrorCode.INVALID_TOKEN and closed[0].by_peer


def test_retry_token_from_other_address_gets_invalid_token_close() -> None:
    ctx_key = bytes(32)
    token = seal_retry_token(ctx_key, ("198.51.100.1", 1), b"o" * 8, b"r" * 8, 0.0)
    client, responder = _invalid_token_outcome(token)
    assert responder.invalid_tokens == 1
    assert client.is_terminated


def test_unknown_new_token_means_plain_retry() -> None:
    stale = seal_new_token(bytes(32), CLIENT_ADDR, 0.0)  # sealed by some other server
    ctx = ServerContext.from_config(server_config())
    responder = StatelessResponder(ctx, retry=True)
    client = Connection(client_config(), is_client=True, token=stale)
    client.connect(SERVER_ADDR, 0.0)
    verdict = responder.check_initial(parse_header(_first_initial(client)), CLIENT_ADDR, 0.0)
    assert verdict.reply is not None and parse_header(verdict.reply).packet_type == PacketType.RETRY
    assert responder.invalid_tokens == 0


def test_new_token_issued_and_accepted_without_retry() -> None:
    net, c, s = make_pair()
    connected(net, c, s)
    assert net.run(lambda: net.client.new_token is not None, 2.0)
    token = net.client.new_token
    assert token is not None and token_kind(token) == NEW_TOKEN
    ctx = net.server._handshake.server_context
    assert ctx is not None
    responder = StatelessResponder(ctx, retry=True)
    client = Connection(client_config(), is_client=True, token=token)
    client.connect(SERVER_ADDR, net.now)
    header = parse_header(_first_initial(client, net.now))
    assert header.token == token
    verdict = responder.check_initial(header, (CLIENT_ADDR[0], 50001), net.now)
    assert verdict.accept and verdict.validated and verdict.reply is None
    assert verdict.original_dcid is None and verdict.retry_source_cid is None
    # From another address the token does not count: Retry.
    other = responder.check_initial(header, ("10.9.9.9", 50000), net.now)
    assert not other.accept and other.reply is not None


def test_server_without_retry_accepts_plain_initials() -> None:
    ctx = ServerContext.from_config(server_config())
    responder = StatelessResponder(ctx, retry=False)
    client = Connection(client_config(), is_client=True)
    client.connect(SERVER_ADDR, 0.0)
    verdict = responder.check_initial(parse_header(_first_initial(client)), CLIENT_ADDR, 0.0)
    assert verdict.accept and not verdict.validated and verdict.reply is None


def test_zero_rtt_data_resent_right_after_retry() -> None:
    from pairs import ticket_and_context

    ticket, ctx, end = ticket_and_context()
    responder = StatelessResponder(ctx, retry=True)
    client = Connection(client_config(), is_client=True, session_ticket=ticket, early_data=True)
    client.connect(SERVER_ADDR, end + 1)
    sid = client.open_stream()
    client.send_stream_data(sid, b"early request", end_stream=True)
    first = client.datagrams_to_send(end + 1)
    verdict = responder.check_initial(parse_header(first[0][0]), CLIENT_ADDR, end + 1)
    assert verdict.reply is not None
    client.receive_datagram(verdict.reply, SERVER_ADDR, end + 1.01)
    again = client.datagrams_to_send(end + 1.01)
    # The new first flight carries the Initial with the token and the 0-RTT data again.
    types = []
    for data, _ in again:
        offset = 0
        while offset < len(data):
            header = parse_header(data, offset)
            types.append(header.packet_type)
            offset = header.packet_end
    assert PacketType.INITIAL in types and PacketType.ZERO_RTT in types
    verdict = responder.check_initial(parse_header(again[0][0]), CLIENT_ADDR, end + 1.02)
    server = Connection(
        server_config(),
        is_client=False,
        server_context=ctx,
        original_dcid=verdict.original_dcid,
        retry_source_cid=verdict.retry_source_cid,
        address_validated=True,
    )
    for data, _ in again:
        server.receive_datagram(data, CLIENT_ADDR, end + 1.02)
    events = list(iter(server.next_event, None))
    assert any(isinstance(e, ev.StreamDataAvailable) for e in events)
    assert server.read_stream(sid) == (b"early request", True)


def test_client_discards_retry_whose_scid_is_its_original_dcid() -> None:
    """RFC 9000 17.2.5.1: a Retry's SCID must differ from the DCID of the client's Initial;
    the client discards one that repeats it (and still takes a proper Retry after it)."""
    from quicish.wire.packet import QUIC_V1, encode_retry

    client = Connection(client_config(), is_client=True)
    client.connect(SERVER_ADDR, 0.0)
    first = parse_header(_first_initial(client))
    odcid = bytes(first.dcid)
    same = encode_retry(QUIC_V1, first.scid, odcid, odcid, b"token-with-same-cid")
    client.receive_datagram(same, SERVER_ADDR, 0.01)
    assert client.stats().retries_received == 0
    assert client.stats().packets_dropped == 1
    assert client.peer_cid == odcid  # nothing changed: same keys, no token
    client.handle_timer(client.next_timer() or 1.0)  # its Initial goes again as it was
    again = [parse_header(d) for d, _ in client.datagrams_to_send(1.0)]
    assert again and again[0].token == b"" and bytes(again[0].dcid) == odcid
    good = encode_retry(QUIC_V1, first.scid, b"server-cid", odcid, b"token")
    client.receive_datagram(good, SERVER_ADDR, 1.01)
    assert client.stats().retries_received == 1
    assert client.peer_cid == b"server-cid"

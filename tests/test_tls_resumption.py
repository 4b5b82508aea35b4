"""quicish <-> quicish resumption and 0-RTT; TicketKeys, ReplayFilter, SessionTicket."""

from __future__ import annotations

from typing import Any

import pytest
from tls_support import (
    ALPN,
    SERVER_TP,
    assert_keys_match,
    client_engine,
    pump,
    secret_map,
    server_engine,
)

from quicish.errors import ConfigError, ErrorCode, ProtocolError
from quicish.tls import Epoch, ReplayFilter, SessionTicket, TicketKeys, TlsEngine
from quicish.tls import messages as msg
from quicish.tls.alerts import Alert
from quicish.tls.tickets import TicketContents


class Server:
    """Server-wide state shared by the connections of one server."""

    def __init__(self, **kwargs: Any) -> None:
        self.keys = TicketKeys()
        self.replay = ReplayFilter(window=10.0)
        self.kwargs = kwargs

    def engine(self, **kwargs: Any) -> TlsEngine:
        options = {
            "ticket_keys": self.keys,
            "replay_filter": self.replay,
            "early_data": True,
            **self.kwargs,
        }
        options.update(kwargs)
        return server_engine(**options)


def first_connection(
    server: Server, now: float = 1.0, client_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> SessionTicket:
    client = client_engine(**(client_kwargs or {}))
    engine = server.engine(**kwargs)
    client.start(now)
    pump(client, engine, now=now)
    assert engine.issue_session_ticket(now, SERVER_TP)
    out = engine.pop_output()
    assert [e for e, _ in out] == [Epoch.ONE_RTT] and out[0][1][0] == msg.NEW_SESSION_TICKET
    client.receive(Epoch.ONE_RTT, out[0][1], now + 0.01)
    (ticket,) = client.pop_session_tickets()
    assert client.pop_session_tickets() == []
    return ticket


def resume(
    server: Server,
    ticket: SessionTicket,
    now: float,
    early_data: bool = True,
    client_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[TlsEngine, TlsEngine]:
    client = client_engine(session_ticket=ticket, early_data=early_data, **(client_kwargs or {}))
    engine = server.engine(**kwargs)
    client.start(now)
    early = client.pop_secrets()
    pump(client, engine, now=now)
    assert client.handshake_complete and engine.handshake_complete
    server_secrets = secret_map(engine.pop_secrets())
    assert_keys_match(secret_map(early + client.pop_secrets()), server_secrets)
    assert ((Epoch.ZERO_RTT, "read") in server_secrets) is engine.early_data_accepted
    return client, engine


def test_ticket_contents() -> None:
    server = Server()
    ticket = first_connection(server)
    assert ticket.alpn == ALPN and ticket.server_name == "localhost"
    assert ticket.max_early_data_size == 0xFFFFFFFF
    assert ticket.transport_parameters == SERVER_TP
    assert ticket.lifetime == 86400 and ticket.cipher_suite == 0x1301
    plain = server.keys.open(ticket.ticket)
    assert plain is not None
    contents = TicketContents.decode(plain)
    assert contents is not None
    assert contents.psk == ticket.psk and contents.age_add == ticket.age_add
    assert contents.transport_parameters == SERVER_TP and contents.created_at == 1.0


def test_resumption_with_early_data() -> None:
    server = Server()
    ticket = first_connection(server)
    client, engine = resume(server, ticket, now=5.0)
    assert client.session_resumed and engine.session_resumed
    assert client.early_data_accepted and engine.early_data_accepted
    assert client.peer_certificates == []
    assert client.alpn == ALPN and client.peer_transport_parameters == SERVER_TP


def test_resumed_session_issues_new_tickets() -> None:
    server = Server()
    ticket = first_connection(server)
    client, engine = resume(server, ticket, now=5.0)
    assert engine.issue_session_ticket(5.0, SERVER_TP)
    for epoch, data in engine.pop_output():
        client.receive(epoch, data, 5.0)
    (second,) = client.pop_session_tickets()
    assert second.ticket != ticket.ticket and second.psk != ticket.psk
    _client2, engine2 = resume(server, second, now=6.0)
    assert engine2.session_resumed and engine2.early_data_accepted


def test_resumption_without_early_data() -> None:
    server = Server()
    ticket = first_connection(server)
    client, engine = resume(server, ticket, now=5.0, early_data=False)
    assert client.session_resumed and not client.early_data_accepted
    assert not engine.early_data_accepted


def test_keylog_early_secret() -> None:
    server = Server()
    ticket = first_connection(server)
    lines: list[str] = []
    resume(server, ticket, now=5.0, client_kwargs={"keylog": lines.append})
    assert lines[0].startswith("CLIENT_EARLY_TRAFFIC_SECRET ")
    assert len(lines) == 5


def test_replay_rejects_early_data_but_resumes() -> None:
    server = Server()
    ticket = first_connection(server)
    _, first = resume(server, ticket, now=5.0)
    client, second = resume(server, ticket, now=6.0)
    assert first.early_data_accepted
    assert second.session_resumed and not second.early_data_accepted
    assert not client.early_data_accepted


def test_alpn_differs_rejects_early_data() -> None:
    server = Server()
    ticket = first_connection(server, client_kwargs={"alpn_protocols": [ALPN, "h3"]})
    client, engine = resume(
        server,
        ticket,
        now=5.0,
        client_kwargs={"alpn_protocols": [ALPN, "h3"]},
        alpn_protocols=["h3", ALPN],
    )
    assert engine.alpn == "h3" and engine.session_resumed
    assert not engine.early_data_accepted and not client.early_data_accepted


def test_client_does_not_offer_early_data_for_other_alpn() -> None:
    server = Server()
    ticket = first_connection(server)
    client = client_engine(session_ticket=ticket, early_data=True, alpn_protocols=["h3"])
    client.start(5.0)
    assert client.pop_secrets() == []
    hello = msg.decode_client_hello(client.pop_output()[0][1][4:])
    assert not hello.early_data and hello.pre_shared_key is not None


def test_transport_parameters_differ_rejects_early_data() -> None:
    server = Server()
    ticket = first_connection(server)
    client, engine = resume(server, ticket, now=5.0, transport_parameters=SERVER_TP + b"\x01")
    assert engine.session_resumed and not engine.early_data_accepted
    assert not client.early_data_accepted


@pytest.mark.parametrize("verdict", [True, False])
def test_accept_early_data_callback(verdict: bool) -> None:
    server = Server()
    ticket = first_connection(server)
    seen: list[bytes] = []

    def decide(remembered: bytes) -> bool:
        seen.append(remembered)
        return verdict

    _, engine = resume(
        server, ticket, now=5.0, transport_parameters=b"other", accept_early_data=decide
    )
    assert seen == [SERVER_TP]
    assert engine.session_resumed and engine.early_data_accepted is verdict


def test_server_without_early_data_issues_plain_tickets() -> None:
    server = Server(early_data=False)
    ticket = first_connection(server)
    assert ticket.max_early_data_size is None
    _client, engine = resume(server, ticket, now=5.0)
    assert engine.session_resumed and not engine.early_data_accepted


def test_no_replay_filter_no_early_data() -> None:
    server = Server()
    ticket = first_connection(server)
    _, engine = resume(server, ticket, now=5.0, replay_filter=None)
    assert engine.session_resumed and not engine.early_data_accepted


def test_stale_ticket_age_rejects_early_data() -> None:
    server = Server()
    ticket = first_connection(server, now=1.0)
    # the client claims a fresh ticket, but the server has seen 100 s pass
    ticket.received_at = 100.0
    _, engine = resume(server, ticket, now=101.0)
    assert engine.session_resumed and not engine.early_data_accepted


def test_expired_ticket_full_handshake() -> None:
    server = Server(ticket_lifetime=10)
    ticket = first_connection(server, now=1.0)
    assert ticket.lifetime == 10
    client = client_engine(session_ticket=ticket, early_data=True)
    client.start(50.0)  # client knows the ticket expired: no PSK offered
    hello = msg.decode_client_hello(client.pop_output()[0][1][4:])
    assert hello.pre_shared_key is None
    # a client with a wrong clock still offers it; the server refuses it
    ticket.received_at = 45.0
    client, engine = resume(server, ticket, now=50.0)
    assert not engine.session_resumed and not client.session_resumed
    assert len(client.peer_certificates) == 1


def test_unknown_ticket_key_full_handshake() -> None:
    ticket = first_connection(Server())
    client, engine = resume(Server(), ticket, now=5.0)
    assert not engine.session_resumed and not client.early_data_accepted


def test_other_server_name_full_handshake() -> None:
    server = Server()
    ticket = first_connection(server)
    ticket.server_name = "example.com"  # the client only resumes with the same name
    client = client_engine(session_ticket=ticket, server_name="example.com", verify=False)
    engine = server.engine()
    client.start(5.0)
    pump(client, engine, now=5.0)
    assert not engine.session_resumed


def test_bad_binder_is_decrypt_error() -> None:
    server = Server()
    ticket = first_connection(server)
    ticket.psk = bytes(len(ticket.psk))
    client = client_engine(session_ticket=ticket)
    engine = server.engine()
    client.start(5.0)
    with pytest.raises(ProtocolError) as info:
        pump(client, engine, now=5.0)
    assert info.value.code == 0x100 + 51


def test_resumption_after_hello_retry_request() -> None:
    server = Server(groups=["secp256r1"])
    ticket = first_connection(server, client_kwargs={"groups": ["secp256r1"]})
    client, engine = resume(
        server, ticket, now=5.0, client_kwargs={"groups": ["x25519", "secp256r1"]}
    )
    assert client.session_resumed and engine.session_resumed
    # no 0-RTT after a HelloRetryRequest (RFC 8446 section 4.2.10)
    assert not engine.early_data_accepted and not client.early_data_accepted


def test_hrr_drops_psk_of_other_hash() -> None:
    server = Server(groups=["secp256r1"], cipher_suites=[0x1302])
    ticket = first_connection(
        Server(), client_kwargs={"cipher_suites": [0x1301]}
    )  # a SHA-256 ticket from another server
    client, _engine = resume(
        server,
        ticket,
        now=5.0,
        client_kwargs={"groups": ["x25519", "secp256r1"], "cipher_suites": [0x1301, 0x1302]},
    )
    assert not client.session_resumed and client.cipher_suite == 0x1302


def test_new_session_ticket_with_bad_max_early_data() -> None:
    client = client_engine()
    engine = server_engine()
    client.start(0.0)
    pump(client, engine)
    nst = msg.NewSessionTicket(3600, 7, b"\x01", b"ticket", max_early_data_size=16384)
    body = msg.encode_new_session_ticket(nst)
    with pytest.raises(ProtocolError) as info:
        client.receive(Epoch.ONE_RTT, msg.frame(msg.NEW_SESSION_TICKET, body), 0.0)
    assert info.value.code == ErrorCode.PROTOCOL_VIOLATION


def test_issue_ticket_requires_keys_and_completion() -> None:
    client, engine = client_engine(), server_engine()
    client.start(0.0)
    assert not engine.issue_session_ticket(0.0, SERVER_TP)  # not complete
    pump(client, engine)
    assert not engine.issue_session_ticket(0.0, SERVER_TP)  # no ticket keys
    with pytest.raises(ConfigError):
        client.issue_session_ticket(0.0, b"")
    assert engine.pop_session_tickets() == []


# ---- TicketKeys ----------------------------------------------------------------------------------
def test_ticket_keys_rotation() -> None:
    keys = TicketKeys(rotation_interval=100.0)
    t0 = keys.seal(b"zero", 0.0)
    t1 = keys.seal(b"one", 150.0)  # rotates: t0's key becomes the previous key
    assert keys.open(t0) == b"zero" and keys.open(t1) == b"one"
    keys.seal(b"two", 300.0)  # rotates again: t0's key is gone
    assert keys.open(t0) is None and keys.open(t1) == b"one"


def test_ticket_keys_tamper_and_share() -> None:
    shared = bytes(range(32))
    a, b = TicketKeys(keys=[shared]), TicketKeys(keys=[shared])
    sealed = a.seal(b"state", 0.0)
    assert b.open(sealed) == b"state"
    assert b.open(sealed[:-1] + bytes([sealed[-1] ^ 1])) is None
    assert b.open(b"short") is None
    assert TicketKeys().open(sealed) is None
    with pytest.raises(ConfigError):
        TicketKeys(keys=[b"short"])
    with pytest.raises(ConfigError):
        TicketKeys(rotation_interval=0)


# ---- ReplayFilter --------------------------------------------------------------------------------
def test_replay_filter_window() -> None:
    f = ReplayFilter(window=10.0)
    assert f.check_and_add(b"a", 0.0)
    assert not f.check_and_add(b"a", 5.0)
    assert f.check_and_add(b"b", 5.0)
    assert len(f) == 2
    assert f.check_and_add(b"a", 10.5)  # forgotten after the window
    assert len(f) == 2  # "a" (again) and "b"


def test_replay_filter_bounded() -> None:
    f = ReplayFilter(window=10.0, max_entries=3)
    assert all(f.check_and_add(bytes([i]), 0.0) for i in range(3))
    assert not f.check_and_add(b"new", 1.0)  # full: refused, not evicted
    assert not f.check_and_add(bytes([0]), 1.0)
    assert f.check_and_add(b"new", 20.0)  # old entries expired
    assert len(f) == 1


# ---- SessionTicket serialisation -----------------------------------------------------------------
def test_session_ticket_bytes_roundtrip() -> None:
    ticket = first_connection(Server())
    again = SessionTicket.from_bytes(ticket.to_bytes())
    assert again == ticket
    ticket.max_early_data_size = None
    ticket.alpn = None
    assert SessionTicket.from_bytes(ticket.to_bytes()) == ticket


@pytest.mark.parametrize("data", [b"", b"\x02", b"\x01\x00", b"\x01" + bytes(100)])
def test_session_ticket_from_garbage(data: bytes) -> None:
    with pytest.raises(ConfigError):
        SessionTicket.from_bytes(data)


def test_obfuscated_age() -> None:
    ticket = first_connection(Server(), now=1.0)
    ticket.age_add = 0xFFFFFFFF
    assert ticket.obfuscated_age(ticket.received_at + 2.0) == 1999
    assert ticket.obfuscated_age(ticket.received_at - 5.0) == 0xFFFFFFFF


def _to_server_finished(server: Server, now: float, **kwargs: Any) -> tuple[TlsEngine, TlsEngine]:
    """A client and server engine with everything exchanged but the client's Finished."""
    client = client_engine()
    engine = server.engine(**kwargs)
    client.start(now)
    for epoch, data in client.pop_output():
        engine.receive(epoch, data, now)
    for epoch, data in engine.pop_output():
        client.receive(epoch, data, now)
    return client, engine


def test_prepared_ticket_is_the_one_sent_and_resumes() -> None:
    """prepare_ticket() seals the first ticket before the client's Finished arrives (it
    predicts that Finished); the ticket it sends after the handshake is that one, and the
    client resumes with it."""
    server = Server()
    client, engine = _to_server_finished(server, 1.0)
    engine.prepare_ticket(1.5, SERVER_TP)
    for epoch, data in client.pop_output():
        engine.receive(epoch, data, 2.0)
    assert engine.handshake_complete
    assert engine.issue_session_ticket(2.0, SERVER_TP)
    (out,) = engine.pop_output()
    client.receive(Epoch.ONE_RTT, out[1], 2.0)
    (ticket,) = client.pop_session_tickets()
    plain = server.keys.open(ticket.ticket)
    assert plain is not None
    contents = TicketContents.decode(plain)
    assert contents is not None and contents.created_at == 1.5  # sealed while waiting
    assert contents.psk == ticket.psk  # the client derived the same resumption secret
    resumed, engine2 = resume(server, ticket, now=5.0)
    assert resumed.session_resumed and engine2.session_resumed
    # A second ticket is made afresh, with the next nonce.
    assert engine.issue_session_ticket(3.0, SERVER_TP)
    (out2,) = engine.pop_output()
    client.receive(Epoch.ONE_RTT, out2[1], 3.0)
    (second,) = client.pop_session_tickets()
    assert second.psk != ticket.psk


def test_prepared_ticket_is_not_sent_for_other_transport_parameters() -> None:
    server = Server()
    client, engine = _to_server_finished(server, 1.0)
    engine.prepare_ticket(1.5, SERVER_TP)
    for epoch, data in client.pop_output():
        engine.receive(epoch, data, 2.0)
    assert engine.issue_session_ticket(2.0, SERVER_TP + b"\x00")
    (out,) = engine.pop_output()
    client.receive(Epoch.ONE_RTT, out[1], 2.0)
    (ticket,) = client.pop_session_tickets()
    plain = server.keys.open(ticket.ticket)
    contents = TicketContents.decode(plain) if plain is not None else None
    assert contents is not None and contents.transport_parameters == SERVER_TP + b"\x00"
    assert contents.created_at == 2.0


def test_a_wrong_finished_fails_after_prepare_ticket() -> None:
    server = Server()
    client, engine = _to_server_finished(server, 1.0)
    engine.prepare_ticket(1.5, SERVER_TP)
    ((epoch, finished),) = client.pop_output()
    forged = finished[:-1] + bytes([finished[-1] ^ 1])
    with pytest.raises(ProtocolError) as info:
        engine.receive(epoch, forged, 2.0)
    assert info.value.code == 0x100 + Alert.DECRYPT_ERROR
    assert not engine.handshake_complete


def test_split_flight_sends_the_hello_first() -> None:
    """With split_flight the ServerHello comes alone; finish_flight() builds the rest, and
    the handshake ends with the same keys on both sides."""
    client = client_engine()
    engine = server_engine(split_flight=True)
    client.start(1.0)
    for epoch, data in client.pop_output():
        engine.receive(epoch, data, 1.0)
    first = engine.pop_output()
    assert [e for e, _ in first] == [Epoch.INITIAL] and first[0][1][0] == msg.SERVER_HELLO
    assert engine.flight_pending
    # The hello needs only the handshake write key; the read key comes with the rest.
    assert [(e, d) for e, d, _, _ in engine.pop_secrets()] == [(Epoch.HANDSHAKE, "write")]
    client.receive(Epoch.INITIAL, first[0][1], 1.0)  # the client works on the hello meanwhile
    engine.finish_flight()
    assert not engine.flight_pending
    assert [(e, d) for e, d, _, _ in engine.pop_secrets()] == [
        (Epoch.HANDSHAKE, "read"),
        (Epoch.ONE_RTT, "write"),
    ]
    rest = engine.pop_output()
    assert [e for e, _ in rest] == [Epoch.HANDSHAKE]
    assert [m[0] for m in _messages(rest[0][1])] == [
        msg.ENCRYPTED_EXTENSIONS,
        msg.CERTIFICATE,
        msg.CERTIFICATE_VERIFY,
        msg.FINISHED,
    ]
    client.receive(Epoch.HANDSHAKE, rest[0][1], 1.0)
    pump(client, engine, now=1.0)
    assert client.handshake_complete and engine.handshake_complete


def _messages(data: bytes) -> list[bytes]:
    out = []
    while data:
        length = int.from_bytes(data[1:4], "big")
        out.append(data[: 4 + length])
        data = data[4 + length :]
    return out

"""quicish's TLS engine against aioquic's (``aioquic.tls.Context``, tests only), both roles:
each cipher suite and group, key types, ALPN and transport parameters, resumption with
tickets issued by the other implementation, 0-RTT accepted and rejected."""

from __future__ import annotations

from typing import Any

import pytest
from tls_support import (
    ALPN,
    CLIENT_TP,
    SERVER_TP,
    AioquicPeer,
    aioquic_client,
    aioquic_server,
    assert_keys_match,
    client_engine,
    pump,
    secret_map,
    server_engine,
)

from quicish.tls import Epoch, ReplayFilter, SessionTicket, TicketKeys, TlsEngine

SUITES = [0x1301, 0x1302, 0x1303]
GROUPS = {"x25519": 0x001D, "secp256r1": 0x0017, "secp384r1": 0x0018}


def run(client: TlsEngine | AioquicPeer, server: TlsEngine | AioquicPeer, now: float = 0.0) -> None:
    for peer in (client, server):
        if isinstance(peer, AioquicPeer):
            if peer.ctx._is_client:
                peer.start()
        else:
            peer.start(now)
    pump(client, server, now=now)


def secrets_of(peer: TlsEngine | AioquicPeer) -> dict[tuple[Epoch, str], bytes]:
    if isinstance(peer, AioquicPeer):
        return secret_map(peer.secrets)
    return secret_map(peer.pop_secrets())


# ---- quicish client, aioquic server ------------------------------------------------------------
@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("group", list(GROUPS))
def test_client_against_aioquic_server(suite: int, group: str) -> None:
    client = client_engine(cipher_suites=[suite], groups=[group])
    server = aioquic_server(suites=[suite], groups=[GROUPS[group]])
    run(client, server)
    assert client.handshake_complete
    assert server.ctx.state.name == "SERVER_POST_HANDSHAKE"
    assert client.cipher_suite == suite
    assert client.alpn == ALPN == server.ctx.alpn_negotiated
    assert client.peer_transport_parameters == SERVER_TP
    assert server.peer_transport_parameters == CLIENT_TP
    assert_keys_match(secrets_of(client), secrets_of(server))


@pytest.mark.parametrize("key_type", ["ec", "ec384", "rsa", "ed25519"])
def test_client_verifies_aioquic_server_key_types(key_type: str) -> None:
    client = client_engine()
    server = aioquic_server(key_type=key_type)
    run(client, server)
    assert client.handshake_complete
    assert_keys_match(secrets_of(client), secrets_of(server))


# ---- aioquic client, quicish server ------------------------------------------------------------
@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("group", list(GROUPS))
def test_server_against_aioquic_client(suite: int, group: str) -> None:
    client = aioquic_client(suites=[suite], groups=[GROUPS[group]])
    server = server_engine(cipher_suites=[suite], groups=[group])
    run(client, server)
    assert server.handshake_complete
    assert client.ctx.state.name == "CLIENT_POST_HANDSHAKE"
    assert server.cipher_suite == suite
    assert server.alpn == ALPN == client.ctx.alpn_negotiated
    assert server.peer_transport_parameters == CLIENT_TP
    assert client.peer_transport_parameters == SERVER_TP
    assert_keys_match(secrets_of(client), secrets_of(server))


@pytest.mark.parametrize("key_type", ["ec", "ec384", "rsa", "ed25519"])
def test_server_key_types_verified_by_aioquic(key_type: str) -> None:
    client = aioquic_client()
    server = server_engine(key_type)
    run(client, server)
    assert server.handshake_complete
    assert client.ctx.state.name == "CLIENT_POST_HANDSHAKE"


def test_server_picks_its_group_from_aioquic_key_shares() -> None:
    client = aioquic_client()  # key shares for secp256r1, secp384r1 and x25519
    server = server_engine(groups=["secp384r1"])
    run(client, server)
    assert server.handshake_complete


# ---- resumption and 0-RTT: ticket from aioquic, used by quicish --------------------------------
class AioquicTicketStore:
    def __init__(self) -> None:
        self.tickets: dict[bytes, Any] = {}
        self.served = 0

    def add(self, ticket: Any) -> None:
        self.tickets[ticket.ticket] = ticket

    def get(self, label: bytes) -> Any:
        self.served += 1
        return self.tickets.get(label)

    def server(self, **kwargs: Any) -> AioquicPeer:
        peer = aioquic_server(max_early_data=0xFFFFFFFF, **kwargs)
        peer.ctx.new_session_ticket_cb = self.add
        peer.ctx.get_session_ticket_cb = self.get
        return peer


def _ticket_from_aioquic(store: AioquicTicketStore) -> SessionTicket:
    client = client_engine()
    run(client, store.server(), now=1.0)
    tickets = client.pop_session_tickets()
    assert len(tickets) == 1 and len(store.tickets) == 1
    ticket = tickets[0]
    assert ticket.max_early_data_size == 0xFFFFFFFF
    assert ticket.alpn == ALPN and ticket.transport_parameters == SERVER_TP
    return ticket


def test_resume_with_aioquic_ticket_and_early_data_accepted() -> None:
    store = AioquicTicketStore()
    ticket = _ticket_from_aioquic(store)
    client = client_engine(
        session_ticket=SessionTicket.from_bytes(ticket.to_bytes()), early_data=True
    )
    client.start(2.0)
    early = client.pop_secrets()
    assert [(e, d) for e, d, _, _ in early] == [(Epoch.ZERO_RTT, "write")]
    server = store.server()
    pump(client, server, now=2.0)
    assert client.handshake_complete and client.session_resumed
    assert client.early_data_accepted and server.ctx.early_data_accepted
    assert server.ctx.session_resumed
    client_secrets = secret_map(early + client.pop_secrets())
    server_secrets = secrets_of(server)
    assert (Epoch.ZERO_RTT, "read") in server_secrets
    assert_keys_match(client_secrets, server_secrets)
    assert client.peer_certificates == []  # no certificate on resumption


def test_resume_with_aioquic_ticket_early_data_rejected() -> None:
    store = AioquicTicketStore()
    ticket = _ticket_from_aioquic(store)
    store.tickets.clear()  # the server no longer knows the ticket: full handshake
    client = client_engine(session_ticket=ticket, early_data=True)
    client.start(2.0)
    assert len(client.pop_secrets()) == 1
    server = store.server()
    pump(client, server, now=2.0)
    assert client.handshake_complete
    assert not client.session_resumed and not client.early_data_accepted
    assert store.served == 1


def test_resume_with_aioquic_ticket_without_early_data() -> None:
    store = AioquicTicketStore()
    ticket = _ticket_from_aioquic(store)
    client = client_engine(session_ticket=ticket, early_data=False)
    client.start(2.0)
    assert client.pop_secrets() == []
    server = store.server()
    pump(client, server, now=2.0)
    assert client.session_resumed and not client.early_data_accepted
    assert not server.ctx.early_data_accepted


# ---- resumption and 0-RTT: ticket from quicish, used by aioquic --------------------------------
def _quicish_server(keys: TicketKeys, replay: ReplayFilter, **kwargs: Any) -> TlsEngine:
    return server_engine(ticket_keys=keys, replay_filter=replay, early_data=True, **kwargs)


def _ticket_from_quicish(keys: TicketKeys, replay: ReplayFilter) -> Any:
    client = aioquic_client()
    received: list[Any] = []
    client.ctx.new_session_ticket_cb = received.append
    server = _quicish_server(keys, replay)
    run(client, server, now=1.0)
    assert server.issue_session_ticket(1.0, SERVER_TP)
    pump(client, server, now=1.0)
    assert len(received) == 1
    assert received[0].max_early_data_size == 0xFFFFFFFF
    return received[0]


def test_aioquic_resumes_with_quicish_ticket_early_data_accepted() -> None:
    keys, replay = TicketKeys(), ReplayFilter()
    ticket = _ticket_from_quicish(keys, replay)
    client = aioquic_client()
    client.ctx.session_ticket = ticket
    client.start()
    server = _quicish_server(keys, replay)
    pump(client, server, now=2.0)
    assert server.handshake_complete and server.session_resumed
    assert server.early_data_accepted and client.ctx.early_data_accepted
    assert client.ctx.session_resumed
    server_secrets = secrets_of(server)
    assert (Epoch.ZERO_RTT, "read") in server_secrets
    assert_keys_match(secrets_of(client), server_secrets)


def test_aioquic_resumes_with_quicish_ticket_early_data_rejected() -> None:
    keys, replay = TicketKeys(), ReplayFilter()
    ticket = _ticket_from_quicish(keys, replay)
    client = aioquic_client()
    client.ctx.session_ticket = ticket
    client.start()
    # the server's transport parameters changed since the ticket was issued
    server = _quicish_server(keys, replay, transport_parameters=SERVER_TP + b"\x0e\x01\x08")
    pump(client, server, now=2.0)
    assert server.handshake_complete and server.session_resumed
    assert client.ctx.session_resumed
    assert not server.early_data_accepted and not client.ctx.early_data_accepted
    secrets = secrets_of(server)
    assert (Epoch.ZERO_RTT, "read") not in secrets


def test_aioquic_replayed_early_data_rejected() -> None:
    keys, replay = TicketKeys(), ReplayFilter()
    ticket = _ticket_from_quicish(keys, replay)
    results = []
    for _ in range(2):
        client = aioquic_client()
        client.ctx.session_ticket = ticket
        client.start()
        server = _quicish_server(keys, replay)
        pump(client, server, now=2.0)
        results.append((server.session_resumed, server.early_data_accepted))
    assert results == [(True, True), (True, False)]

"""quicish <-> quicish TLS handshakes: suites, groups, key types, HelloRetryRequest,
fragmentation, key log, secrets order."""

from __future__ import annotations

import pytest
from tls_support import (
    ALPN,
    CLIENT_TP,
    SERVER_TP,
    assert_keys_match,
    client_engine,
    pump,
    secret_map,
    server_engine,
)

from quicish.errors import ConfigError, CryptoError
from quicish.tls import Epoch, TlsEngine
from quicish.tls import messages as msg
from quicish.tls.keylog import keylog_file

SUITES = [0x1301, 0x1302, 0x1303]
GROUPS = ["x25519", "secp256r1", "secp384r1"]


def handshake(client: TlsEngine, server: TlsEngine, **kwargs: object) -> None:
    client.start(0.0)
    server.start(0.0)
    pump(client, server, **kwargs)  # type: ignore[arg-type]
    assert client.handshake_complete and server.handshake_complete
    assert_keys_match(secret_map(client.pop_secrets()), secret_map(server.pop_secrets()))


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("group", GROUPS)
def test_suite_and_group(suite: int, group: str) -> None:
    client = client_engine(cipher_suites=[suite], groups=[group])
    server = server_engine(groups=[group])
    handshake(client, server)
    assert client.cipher_suite == server.cipher_suite == suite
    assert client.alpn == server.alpn == ALPN
    assert client.peer_transport_parameters == SERVER_TP
    assert server.peer_transport_parameters == CLIENT_TP
    assert not client.session_resumed and not server.session_resumed


@pytest.mark.parametrize("key_type", ["ec", "ec384", "rsa", "ed25519"])
def test_server_key_types(key_type: str) -> None:
    client = client_engine()
    server = server_engine(key_type)
    handshake(client, server)
    assert len(client.peer_certificates) == 1


def test_secrets_order_and_suites() -> None:
    client = client_engine(cipher_suites=[0x1302])
    server = server_engine()
    client.start(0.0)
    assert client.pop_secrets() == []  # no 0-RTT without a ticket
    ((epoch, hello),) = client.pop_output()
    assert epoch == Epoch.INITIAL and hello[0] == msg.CLIENT_HELLO
    server.receive(Epoch.INITIAL, hello, 0.0)
    order = [(e, d) for e, d, _, _ in server.pop_secrets()]
    assert order == [
        (Epoch.HANDSHAKE, "write"),
        (Epoch.HANDSHAKE, "read"),
        (Epoch.ONE_RTT, "write"),
    ]
    out = server.pop_output()
    assert [e for e, _ in out] == [Epoch.INITIAL, Epoch.HANDSHAKE]
    client.receive(Epoch.INITIAL, out[0][1], 0.0)
    assert [(e, d) for e, d, _, _ in client.pop_secrets()] == [
        (Epoch.HANDSHAKE, "read"),
        (Epoch.HANDSHAKE, "write"),
    ]
    client.receive(Epoch.HANDSHAKE, out[1][1], 0.0)
    secrets = client.pop_secrets()
    assert [(e, d) for e, d, _, _ in secrets] == [(Epoch.ONE_RTT, "read"), (Epoch.ONE_RTT, "write")]
    assert all(suite == 0x1302 and len(s) == 48 for _, _, suite, s in secrets)
    assert client.handshake_complete and not server.handshake_complete
    ((epoch, fin),) = client.pop_output()
    assert epoch == Epoch.HANDSHAKE and fin[0] == msg.FINISHED
    server.receive(Epoch.HANDSHAKE, fin, 0.0)
    assert server.handshake_complete
    assert [(e, d) for e, d, _, _ in server.pop_secrets()] == [(Epoch.ONE_RTT, "read")]


def test_server_prefers_its_suite_order() -> None:
    client = client_engine(cipher_suites=[0x1301, 0x1302, 0x1303])
    server = server_engine(cipher_suites=[0x1303, 0x1301])
    handshake(client, server)
    assert client.cipher_suite == 0x1303


def test_alpn_server_preference() -> None:
    client = client_engine(alpn_protocols=["h3", ALPN])
    server = server_engine(alpn_protocols=[ALPN, "h3"])
    handshake(client, server)
    assert client.alpn == server.alpn == ALPN


@pytest.mark.parametrize("fragment", [1, 7])
def test_fragmented_delivery(fragment: int) -> None:
    client, server = client_engine(), server_engine()
    handshake(client, server, fragment=fragment)


def test_hello_retry_request() -> None:
    client = client_engine(groups=["x25519", "secp256r1"])
    server = server_engine(groups=["secp256r1"])
    client.start(0.0)
    server.start(0.0)
    trace = pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    assert_keys_match(secret_map(client.pop_secrets()), secret_map(server.pop_secrets()))
    # two ClientHellos, the first answered by a HelloRetryRequest
    hellos = [d for e, d in trace.to_server if e == Epoch.INITIAL]
    assert len(hellos) == 2
    first_reply = trace.to_client[0][1]
    assert first_reply[0] == msg.SERVER_HELLO
    assert msg.decode_server_hello(first_reply[4:]).is_retry_request
    ch2 = msg.decode_client_hello(hellos[1][4:])
    assert ch2.key_shares is not None and [g for g, _ in ch2.key_shares] == [0x0017]


def test_hello_retry_request_with_sha384_suite() -> None:
    client = client_engine(cipher_suites=[0x1302, 0x1301], groups=["secp384r1", "x25519"])
    server = server_engine(groups=["x25519"], cipher_suites=[0x1302])
    handshake(client, server)
    assert client.cipher_suite == 0x1302


def test_no_common_group_fails() -> None:
    client = client_engine(groups=["x25519"])
    server = server_engine(groups=["secp384r1"])
    client.start(0.0)
    with pytest.raises(CryptoError) as info:
        pump(client, server)
    assert info.value.alert == 40 and info.value.code == 0x128


def test_keylog_lines(tmp_path: object) -> None:
    lines: list[str] = []
    client = client_engine(keylog=lines.append)
    server_lines: list[str] = []
    server = server_engine(keylog=server_lines.append)
    client.start(0.0)
    pump(client, server)
    labels = [line.split()[0] for line in lines]
    assert sorted(labels) == sorted(
        [
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
        ]
    )
    assert sorted(lines) == sorted(server_lines)
    random_hex = client.client_random.hex()
    for line in lines:
        _label, rnd, secret = line.split(" ")
        assert rnd == random_hex and len(secret) == 64
        int(secret, 16)


def test_keylog_file(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "keys.log"  # type: ignore[operator]
    client = client_engine(keylog=keylog_file(path))
    client.start(0.0)
    pump(client, server_engine())
    text = path.read_text()
    assert text.count("\n") == 4 and "CLIENT_TRAFFIC_SECRET_0 " in text


def test_ip_server_name_sends_no_sni() -> None:
    client = client_engine(server_name="127.0.0.1")
    server = server_engine()
    client.start(0.0)
    hello = client.pop_output()[0][1]
    assert msg.decode_client_hello(hello[4:]).server_name is None
    server.receive(Epoch.INITIAL, hello, 0.0)
    pump(client, server)
    assert client.handshake_complete and server.server_name is None


def test_sni_reaches_server() -> None:
    client, server = client_engine(), server_engine()
    handshake(client, server)
    assert server.server_name == "localhost"


def test_output_empty_after_pop() -> None:
    client = client_engine()
    client.start(0.0)
    assert len(client.pop_output()) == 1
    assert client.pop_output() == []
    client.start(0.0)  # idempotent
    assert client.pop_output() == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpn_protocols": []},
        {"alpn_protocols": ["x" * 256]},
        {"cipher_suites": [0x1304]},
        {"cipher_suites": []},
        {"groups": ["x448"]},
        {"pin": "abc"},
        {"server_name": None},
        {"verify": "/nonexistent/ca.pem"},
    ],
)
def test_client_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        client_engine(**kwargs)


def test_server_config_errors() -> None:
    with pytest.raises(ConfigError):
        TlsEngine(is_client=False, alpn_protocols=[ALPN])
    chain = server_engine().peer_certificates  # empty: a server has no peer certificates
    assert chain == []
    from tls_support import make_key, server_credentials

    certs, _ = server_credentials("ec")
    with pytest.raises(ConfigError, match="does not match"):
        TlsEngine(
            is_client=False,
            alpn_protocols=[ALPN],
            certificate_chain=certs,
            private_key=make_key("ec"),
        )

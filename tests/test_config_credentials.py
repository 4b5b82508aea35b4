"""Config traps a new user hit: ``alpn="h3"`` split into letters, in-memory PEM keys
echoed in errors, and credentials that had to be written to files first."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pairs import connected, make_pair

from quicish import Config
from quicish.errors import ConfigError
from quicish.proto import events as ev
from quicish.proto.server_context import ServerContext
from quicish.tls.certs import generate_self_signed, load_private_key

CERT, KEY = generate_self_signed(("localhost",))


def _handshake(client_kw: dict[str, object], server_kw: dict[str, object]) -> ev.HandshakeCompleted:
    net, c, s = make_pair(client_kw=client_kw, server_kw=server_kw)
    connected(net, c, s)
    (done,) = c.of(ev.HandshakeCompleted)
    return done


def test_alpn_string_is_one_protocol() -> None:
    assert Config(alpn="h3").alpn == ["h3"]
    done = _handshake({"alpn": "h3"}, {"alpn": "h3"})
    assert done.alpn == "h3"  # was 'h': the string was iterated


@pytest.mark.parametrize("bad", [[""], ["x" * 256], [b"h3"]])
def test_alpn_entries_are_checked(bad: list[object]) -> None:
    with pytest.raises(ConfigError, match="alpn"):
        Config(alpn=bad)  # type: ignore[arg-type]


def test_generate_self_signed_is_usable_directly() -> None:
    """PEM bytes for the server's chain and key; the client trusts the same PEM bytes."""
    done = _handshake(
        {"verify": CERT, "pin": None}, {"certificate_chain": CERT, "private_key": KEY}
    )
    assert isinstance(done, ev.HandshakeCompleted)


def test_cryptography_objects_are_accepted() -> None:
    cert = x509.load_pem_x509_certificate(CERT)
    key = serialization.load_pem_private_key(KEY, None)
    done = _handshake(
        {"verify": CERT, "pin": None}, {"certificate_chain": [cert], "private_key": key}
    )
    assert isinstance(done, ev.HandshakeCompleted)
    assert ServerContext.from_config(
        Config(certificate_chain=cert, private_key=KEY.decode())  # a lone cert, PEM text
    ).certificate_chain == [cert]


def _secret_fragments(pem: bytes) -> list[str]:
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    return [body[i : i + 12].decode() for i in range(0, len(body) - 12, 12)]


@pytest.mark.parametrize("as_text", [False, True])
def test_bad_in_memory_key_error_never_echoes_key_material(as_text: bool) -> None:
    broken = KEY.replace(b"\n", b"\n\n", 3)[:-40] + b"\n-----END PRIVATE KEY-----\n"
    source: bytes | str = broken.decode() if as_text else broken
    with pytest.raises(ConfigError) as info:
        load_private_key(source)
    text = str(info.value)
    assert "private_key" in text
    assert "BEGIN" not in text
    for fragment in _secret_fragments(KEY):
        assert fragment not in text
    assert not re.search(r"[A-Za-z0-9+/]{24,}", text)
    # And through a server config (where the report came from).
    with pytest.raises(ConfigError) as info:
        ServerContext.from_config(Config(certificate_chain=CERT, private_key=source))
    assert "BEGIN" not in str(info.value)
    assert base64.b64encode(broken[30:60]).decode() not in str(info.value)


def test_key_not_matching_the_certificate_is_a_config_error() -> None:
    """Found when the server is configured (serve()), not at its first handshake."""
    _, other_key = generate_self_signed(("localhost",))
    with pytest.raises(ConfigError, match="does not match"):
        ServerContext.from_config(Config(certificate_chain=CERT, private_key=other_key))


def test_certificate_bytes_without_pem_say_so() -> None:
    with pytest.raises(ConfigError, match="certificate_chain"):
        ServerContext.from_config(Config(certificate_chain=b"not pem", private_key=KEY))

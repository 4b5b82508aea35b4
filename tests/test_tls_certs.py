"""Certificates: loading, the self-signed helper, verification failures and their alerts,
pinning, verify=False, and how the engine reports them."""

from __future__ import annotations

import datetime
import ipaddress
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from tls_support import ca_file, client_engine, make_pki, pki, pump, server_engine

from quicish.errors import CertificateError, ConfigError, CryptoError
from quicish.tls import (
    Epoch,
    TlsEngine,
    certificate_fingerprint,
    certs,
    generate_self_signed,
    load_certificate_chain,
    load_private_key,
    verify_certificate,
)

UNKNOWN_CA, BAD_CERTIFICATE, CERTIFICATE_EXPIRED = 48, 42, 45


# ---- loading and generating ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key_type", "key_class"),
    [
        ("ec", ec.EllipticCurvePrivateKey),
        ("ec384", ec.EllipticCurvePrivateKey),
        ("rsa", rsa.RSAPrivateKey),
        ("ed25519", ed25519.Ed25519PrivateKey),
    ],
)
def test_generate_self_signed_and_load(tmp_path: Path, key_type: str, key_class: type) -> None:
    cert_pem, key_pem = generate_self_signed(("localhost", "example.test"), key_type, days=3)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    chain = load_certificate_chain(tmp_path / "cert.pem")
    key = load_private_key(tmp_path / "key.pem")
    assert len(chain) == 1 and isinstance(key, key_class)
    cert = chain[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "example.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=3) < lifetime < datetime.timedelta(days=3, hours=2)
    # trusted as its own root, for every name it lists
    for name in ("localhost", "example.test", "127.0.0.1", "::1"):
        verify_certificate(chain, name, str(tmp_path / "cert.pem"))
    with pytest.raises(CertificateError) as info:
        verify_certificate(chain, "other.test", str(tmp_path / "cert.pem"))
    assert info.value.alert == BAD_CERTIFICATE


def test_self_signed_ip_only() -> None:
    cert_pem, _ = generate_self_signed(["192.0.2.7"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.7")]
    assert san.get_values_for_type(x509.DNSName) == []


def test_self_signed_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        generate_self_signed(key_type="dsa")
    with pytest.raises(ConfigError):
        generate_self_signed(())


def test_loading_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_certificate_chain(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_bytes(b"not a certificate")
    with pytest.raises(ConfigError):
        load_certificate_chain(tmp_path / "junk.pem")
    with pytest.raises(ConfigError):
        load_private_key(tmp_path / "junk.pem")


def test_fingerprint() -> None:
    chain, _ = pki().leaf()
    fp = certificate_fingerprint(chain[0])
    assert len(fp) == 64 and fp == fp.lower()
    verify_certificate(chain, "localhost", True, pin=fp)
    verify_certificate(chain, "anything", True, pin=fp.upper())
    colons = ":".join(fp[i : i + 2] for i in range(0, 64, 2))
    verify_certificate(chain, None, True, pin=colons)


# ---- verification failures -----------------------------------------------------------------------
def test_verify_ok_with_ca_file() -> None:
    chain, _ = pki().leaf()
    verify_certificate(chain, "localhost", ca_file())
    verify_certificate(chain, "127.0.0.1", ca_file())


def test_unknown_ca() -> None:
    chain, _ = make_pki("some other CA").leaf()
    with pytest.raises(CertificateError) as info:
        verify_certificate(chain, "localhost", ca_file())
    assert info.value.alert == UNKNOWN_CA and "unknown CA" in str(info.value)


def test_unknown_ca_against_system_roots() -> None:
    chain, _ = pki().leaf()
    with pytest.raises(CertificateError) as info:
        verify_certificate(chain, "localhost", True)
    assert info.value.alert == UNKNOWN_CA


def test_wrong_host() -> None:
    chain, _ = pki().leaf(names=("server.test",))
    with pytest.raises(CertificateError) as info:
        verify_certificate(chain, "localhost", ca_file())
    assert info.value.alert == BAD_CERTIFICATE and "localhost" in str(info.value)
    with pytest.raises(CertificateError):
        verify_certificate(chain, "10.0.0.1", ca_file())


def test_expired() -> None:
    chain, _ = pki().leaf(valid_days=(-30, -1))
    with pytest.raises(CertificateError) as info:
        verify_certificate(chain, "localhost", ca_file())
    assert info.value.alert == CERTIFICATE_EXPIRED and "expired" in str(info.value)


def test_not_yet_valid() -> None:
    chain, _ = pki().leaf(valid_days=(2, 30))
    with pytest.raises(CertificateError) as info:
        verify_certificate(chain, "localhost", ca_file())
    assert info.value.alert == CERTIFICATE_EXPIRED


def test_fingerprint_mismatch() -> None:
    chain, _ = pki().leaf()
    other, _ = pki().leaf()
    with pytest.raises(CertificateError) as info:
        verify_certificate(chain, "localhost", ca_file(), pin=certificate_fingerprint(other[0]))
    assert info.value.alert == BAD_CERTIFICATE and "pin mismatch" in str(info.value)


def test_verify_false_logs_warning_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(certs, "_warned_unverified", False)
    chain, _ = make_pki("untrusted").leaf(names=("nowhere.test",), valid_days=(-9, -1))
    with caplog.at_level(logging.WARNING, logger="quicish"):
        verify_certificate(chain, "localhost", False)
        verify_certificate(chain, "localhost", False)
    warnings = [r for r in caplog.records if "verification is disabled" in r.message]
    assert len(warnings) == 1  # once per process, not once per connection


def test_verify_at_given_time() -> None:
    chain, _ = pki().leaf(valid_days=(-1, 30))
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=60)
    with pytest.raises(CertificateError) as info:
        verify_certificate(chain, "localhost", ca_file(), now=later)
    assert info.value.alert == CERTIFICATE_EXPIRED


def test_intermediate_chain(tmp_path: Path) -> None:
    root = make_pki("root")
    # an intermediate CA signed by the root, and a leaf signed by the intermediate
    inter = make_pki("intermediate")
    inter_cert = (
        x509.CertificateBuilder()
        .subject_name(inter.ca.subject)
        .issuer_name(root.ca.subject)
        .public_key(inter.ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(inter.ca.not_valid_before_utc)
        .not_valid_after(inter.ca.not_valid_after_utc)
    )
    for ext in inter.ca.extensions:
        inter_cert = inter_cert.add_extension(ext.value, ext.critical)
    inter_cert = inter_cert.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(root.ca_key.public_key()), False
    )
    from cryptography.hazmat.primitives import hashes

    signed_inter = inter_cert.sign(root.ca_key, hashes.SHA256())
    leaf, _ = inter.leaf()
    (tmp_path / "root.pem").write_bytes(root.ca_pem)
    verify_certificate([leaf[0], signed_inter], "localhost", str(tmp_path / "root.pem"))
    with pytest.raises(CertificateError) as info:  # intermediate missing
        verify_certificate(leaf, "localhost", str(tmp_path / "root.pem"))
    assert info.value.alert == UNKNOWN_CA


# ---- through the engine --------------------------------------------------------------------------
def _server_with(chain: list[x509.Certificate], key: object) -> TlsEngine:
    return server_engine(certificate_chain=chain, private_key=key)


@pytest.mark.parametrize(
    ("leaf_kwargs", "issuer", "server_name", "alert"),
    [
        ({}, "other", "localhost", UNKNOWN_CA),
        ({"names": ("server.test",)}, "ours", "localhost", BAD_CERTIFICATE),
        ({"valid_days": (-30, -1)}, "ours", "localhost", CERTIFICATE_EXPIRED),
    ],
)
def test_engine_certificate_failures(
    leaf_kwargs: dict[str, object], issuer: str, server_name: str, alert: int
) -> None:
    ca = pki() if issuer == "ours" else make_pki("other")
    chain, key = ca.leaf(**leaf_kwargs)  # type: ignore[arg-type]
    client = client_engine(server_name=server_name)
    server = _server_with(chain, key)
    client.start(0.0)
    with pytest.raises(CertificateError) as info:
        pump(client, server)
    assert info.value.alert == alert
    assert info.value.code == 0x100 + alert
    assert not client.handshake_complete
    # the failure is latched
    with pytest.raises(CryptoError):
        client.receive(Epoch.HANDSHAKE, b"\x00", 0.0)


def test_engine_pin_match_and_mismatch() -> None:
    chain, key = make_pki("untrusted").leaf()
    fp = certificate_fingerprint(chain[0])
    client = client_engine(pin=fp, verify=True)
    client.start(0.0)
    pump(client, _server_with(chain, key))
    assert client.handshake_complete
    client = client_engine(pin="00" * 32)
    client.start(0.0)
    with pytest.raises(CertificateError) as info:
        pump(client, _server_with(chain, key))
    assert info.value.alert == BAD_CERTIFICATE


def test_engine_verify_false(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(certs, "_warned_unverified", False)
    chain, key = make_pki("untrusted").leaf(names=("elsewhere.test",))
    client = client_engine(verify=False, server_name=None)
    client.start(0.0)
    with caplog.at_level(logging.WARNING, logger="quicish"):
        pump(client, _server_with(chain, key))
    assert client.handshake_complete
    assert any("verification is disabled" in r.message for r in caplog.records)
    assert client.peer_certificates == chain


def test_peer_chains_and_keys_are_parsed_once_per_process() -> None:
    """A client meeting the same server again reuses the parsed chain and leaf key; a chain
    that does not parse fails every time (failures are not cached)."""
    from cryptography.hazmat.primitives import serialization

    from quicish.tls.certs import parse_chain, public_key_of

    cert = x509.load_pem_x509_certificate(generate_self_signed(["cache.example"])[0])
    der = cert.public_bytes(serialization.Encoding.DER)
    first = parse_chain((der,))
    assert first == (cert,) and parse_chain((bytes(der),)) is first
    assert public_key_of(first[0]) is public_key_of(first[0])
    for _ in range(2):
        with pytest.raises(ValueError):
            parse_chain((der[:-10],))

"""Certificates: loading, a self-signed helper for development, and verification
of a server's chain and host name with ``cryptography.x509.verification``."""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import logging
import os
import ssl
import warnings
from collections.abc import Sequence
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ..errors import CertificateError, ConfigError
from .alerts import Alert
from .signatures import PrivateKey

logger = logging.getLogger("quicish")
_warned_unverified = False  # verify=False was already warned about in this process

PathLike = str | os.PathLike[str]
_S = TypeVar("_S")
KEY_TYPES = ("ec", "ec384", "rsa", "ed25519")


def _read(path: PathLike, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {os.fspath(path)!r}: {exc}") from None


def _parse_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; unparseable entries are skipped."""
    with warnings.catch_warnings():  # old roots with odd serial numbers warn
        warnings.simplefilter("ignore")
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError:
            pass
        end = b"-----END CERTIFICATE-----"
        certs = []
        for chunk in data.split(end)[:-1]:
            try:
                certs.append(x509.load_pem_x509_certificate(chunk + end + b"\n"))
            except ValueError:
                continue
        return certs


CertificateSource = PathLike | bytes | x509.Certificate | Sequence[x509.Certificate]
"""A certificate chain: a PEM file's path, PEM bytes, or ``cryptography`` certificates."""
KeySource = PathLike | bytes | PrivateKey
"""A private key: a PEM file's path, PEM (or DER) bytes, or a ``cryptography`` key."""
TrustSource = bool | PathLike | bytes
"""``verify``: True (system roots), False (off), a CA file's path, or CA certificates as PEM
bytes."""


def load_certificate_chain(source: CertificateSource) -> list[x509.Certificate]:
    """The certificates of ``source``, leaf first: a PEM file, PEM bytes, or certificates."""
    source = _pem_text_as_bytes(source)
    if isinstance(source, x509.Certificate):
        return [source]
    if isinstance(source, bytes | bytearray):
        certs = _parse_pem_certificates(bytes(source))
        if not certs:
            raise ConfigError("certificate_chain: no PEM certificate in the bytes given")
        return certs
    if isinstance(source, str | os.PathLike):
        certs = _parse_pem_certificates(_read(source, "certificate chain"))
        if not certs:
            raise ConfigError(f"certificate_chain: no PEM certificate in {os.fspath(source)!r}")
        return certs
    certs = list(source)
    if not certs or not all(isinstance(c, x509.Certificate) for c in certs):
        raise ConfigError(
            "certificate_chain must be a path, PEM bytes, or a non-empty sequence of "
            "cryptography x509.Certificate"
        )
    return certs


def load_private_key(source: KeySource, password: bytes | None = None) -> PrivateKey:
    """A private key (RSA, ECDSA P-256/P-384 or Ed25519) from a PEM file, PEM or DER bytes,
    or a ``cryptography`` key object. Errors never repeat the key's bytes."""
    source = _pem_text_as_bytes(source)
    key: object
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        loader = (
            serialization.load_pem_private_key
            if b"-----BEGIN" in data
            else serialization.load_der_private_key
        )
        try:
            key = loader(data, password)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"private_key: cannot load the in-memory key ({_key_error(exc)})"
            ) from None
    elif isinstance(source, str | os.PathLike):
        try:
            key = serialization.load_pem_private_key(_read(source, "private key"), password)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"private_key: cannot load {os.fspath(source)!r} ({_key_error(exc)})"
            ) from None
    else:
        key = source
    if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(
        key.curve, ec.SECP256R1 | ec.SECP384R1
    ):
        raise ConfigError(f"unsupported EC curve {key.curve.name} (use P-256 or P-384)")
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ConfigError(f"private_key: unsupported key type {type(key).__name__}")
    return key


def _pem_text_as_bytes(source: _S) -> _S | bytes:
    """PEM passed as ``str`` (not a path): its bytes, so it is never opened as a file name
    (and never echoed in an error as one)."""
    if isinstance(source, str) and "-----BEGIN" in source:
        return source.encode()
    return source


def _key_error(exc: Exception) -> str:
    """A one-line reason for a key that did not load, free of key material."""
    if isinstance(exc, TypeError):
        return "wrong or missing password"
    return "not a PEM/DER private key, or encrypted"


def _generate_key(key_type: str) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ConfigError(f"key_type must be one of {KEY_TYPES}, not {key_type!r}")


def _subject_alt_names(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if "localhost" in hostnames:
        for ip in ("127.0.0.1", "::1"):
            if ip not in hostnames:
                names.append(x509.IPAddress(ipaddress.ip_address(ip)))
    return names


def generate_self_signed(
    hostnames: Sequence[str] = ("localhost",), key_type: str = "ec", days: int = 30
) -> tuple[bytes, bytes]:
    """A self-signed server certificate and its key as PEM ``(cert, key)``.

    The subject alternative names are the ``hostnames`` (IP literals become IP entries;
    "localhost" also adds 127.0.0.1 and ::1). For development: clients trust it with
    ``verify="cert.pem"`` or a ``pin``.
    """
    if not hostnames:
        raise ConfigError("hostnames must not be empty")
    key = _generate_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(hostnames)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = builder.sign(key, algorithm)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@functools.lru_cache(maxsize=16)
def parse_chain(ders: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
    """A peer's certificates from their DER encodings (ValueError when one does not parse).
    Cached per process: a client that meets the same server again skips the parsing."""
    return tuple(x509.load_der_x509_certificate(der) for der in ders)


@functools.lru_cache(maxsize=16)
def public_key_of(cert: x509.Certificate) -> CertificatePublicKeyTypes:
    """The certificate's public key (ValueError or UnsupportedAlgorithm when unusable);
    cached per process like :func:`parse_chain`."""
    return cert.public_key()


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the certificate's DER encoding."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normalize_fingerprint(pin: str) -> str:
    """``pin`` as lower-case hex without colons; ConfigError when it is not a SHA-256."""
    value = pin.replace(":", "").strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConfigError("pin must be a SHA-256 fingerprint: 64 hex digits, colons allowed")
    return value


def _system_roots_path() -> str:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    try:
        import certifi  # optional
    except ImportError:
        raise ConfigError("no system CA bundle found and certifi is not installed") from None
    return str(certifi.where())


@functools.lru_cache(maxsize=16)
def _store_for(path: str) -> Store:
    certs = _parse_pem_certificates(_read(path, "CA file"))
    if not certs:
        raise ConfigError(f"no PEM certificate in CA file {path!r}")
    return Store(certs)


@functools.lru_cache(maxsize=16)
def _store_for_pem(data: bytes) -> Store:
    certs = _parse_pem_certificates(data)
    if not certs:
        raise ConfigError("verify: no PEM certificate in the CA bytes given")
    return Store(certs)


def trust_store(verify: TrustSource) -> Store:
    """The roots for ``verify``: True for the system bundle (or certifi), a path for that
    CA file, bytes for those PEM certificates. Loaded once and cached."""
    if verify is True:
        return _store_for(_system_roots_path())
    if verify is False:
        raise ConfigError("verification is off")
    verify = _pem_text_as_bytes(verify)
    if isinstance(verify, bytes | bytearray):
        return _store_for_pem(bytes(verify))
    return _store_for(os.fspath(verify))


def _classify(exc: VerificationError, server_name: str) -> CertificateError:
    """A one-line reason for a failed chain check (no ``cryptography`` internals)."""
    text = str(exc)
    if "not valid at validation time" in text:
        return CertificateError(Alert.CERTIFICATE_EXPIRED, "certificate expired or not yet valid")
    if "subjectAltName" in text or "SAN" in text:
        return CertificateError(
            Alert.BAD_CERTIFICATE, f"name mismatch: certificate is not valid for {server_name!r}"
        )
    if "candidates exhausted" in text:
        return CertificateError(
            Alert.UNKNOWN_CA, "unknown CA: certificate is not signed by a trusted root"
        )
    return CertificateError(Alert.BAD_CERTIFICATE, "certificate rejected by the verifier")


def verify_certificate(
    chain: Sequence[x509.Certificate],
    server_name: str | None,
    verify: TrustSource = True,
    pin: str | None = None,
    now: datetime.datetime | None = None,
) -> None:
    """Check a server's certificate chain (leaf first); raises ``CertificateError``.

    ``pin``: the leaf's SHA-256 fingerprint must match, and nothing else is checked.
    ``verify=False``: nothing is checked (a warning is logged). Otherwise the chain must
    lead to a root of ``trust_store(verify)`` and the leaf must name ``server_name``.
    ``now`` (UTC) defaults to the current time: certificate validity is calendar time.
    """
    if not chain:
        raise CertificateError(Alert.DECODE_ERROR, "server sent no certificate")
    leaf = chain[0]
    if pin is not None:
        actual, pinned = certificate_fingerprint(leaf), normalize_fingerprint(pin)
        if actual != pinned:
            raise CertificateError(
                Alert.BAD_CERTIFICATE, f"pin mismatch: certificate SHA-256 is {actual}"
            )
        return
    if verify is False:
        global _warned_unverified
        if not _warned_unverified:  # once per process, not once per connection
            _warned_unverified = True
            logger.warning("TLS certificate verification is disabled (verify=False): insecure")
        return
    if not server_name:
        raise CertificateError(Alert.BAD_CERTIFICATE, "no server name to verify the certificate")
    when = now or datetime.datetime.now(datetime.timezone.utc)
    if when < leaf.not_valid_before_utc:
        raise CertificateError(
            Alert.CERTIFICATE_EXPIRED, f"certificate not valid before {leaf.not_valid_before_utc}"
        )
    if when > leaf.not_valid_after_utc:
        raise CertificateError(
            Alert.CERTIFICATE_EXPIRED, f"certificate expired at {leaf.not_valid_after_utc}"
        )
    subject: x509.DNSName | x509.IPAddress
    try:
        subject = x509.IPAddress(ipaddress.ip_address(server_name))
    except ValueError:
        try:
            subject = x509.DNSName(server_name)
        except ValueError:
            raise CertificateError(
                Alert.BAD_CERTIFICATE, f"invalid server name {server_name!r}"
            ) from None
    store = trust_store(verify)
    verifier = PolicyBuilder().store(store).time(when).build_server_verifier(subject)
    try:
        verifier.verify(leaf, list(chain[1:]))
    except VerificationError as exc:
        raise _classify(exc, server_name) from None
    except ValueError as exc:  # malformed extensions surface lazily
        raise CertificateError(Alert.BAD_CERTIFICATE, f"certificate rejected: {exc}") from None

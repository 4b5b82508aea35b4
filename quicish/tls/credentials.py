"""A server's certificate chain and private key, checked and encoded once.

Every connection of a server presents the same chain and signs with the same key, so
the key-to-certificate check, the key's signature schemes and the encoded Certificate
message body are computed on first use and reused. The cache keeps the last few
``(key, chain)`` pairs it saw alive; it holds nothing a server does not already hold.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import ConfigError
from . import messages as msg
from .signatures import PrivateKey, schemes_for_key


@dataclass(frozen=True)
class ServerCredentials:
    """What a server's handshakes need from its certificate chain and key."""

    schemes: tuple[int, ...]  # signature schemes of the key, most preferred first
    certificate_body: bytes  # the Certificate message body (chain in DER, no extensions)


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@functools.lru_cache(maxsize=16)
def server_credentials(
    private_key: PrivateKey, chain: tuple[x509.Certificate, ...]
) -> ServerCredentials:
    """Check that ``private_key`` is usable and matches the leaf of ``chain`` (non-empty,
    leaf first) and encode the chain; ``ConfigError`` otherwise (errors are not cached).
    Keys compare by identity and certificates by content."""
    schemes = tuple(schemes_for_key(private_key))
    if not schemes:
        raise ConfigError(f"unsupported private key type {type(private_key).__name__}")
    if _public_der(private_key.public_key()) != _public_der(chain[0].public_key()):
        raise ConfigError("private_key does not match the certificate")
    der = [cert.public_bytes(Encoding.DER) for cert in chain]
    return ServerCredentials(schemes, msg.encode_certificate(msg.Certificate(der)))

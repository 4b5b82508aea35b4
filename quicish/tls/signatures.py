"""CertificateVerify signatures (RFC 8446 section 4.4.3) and the schemes quicish supports."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
)

from .alerts import Alert, alert

ECDSA_SECP256R1_SHA256 = 0x0403
ECDSA_SECP384R1_SHA384 = 0x0503
RSA_PSS_RSAE_SHA256 = 0x0804
RSA_PSS_RSAE_SHA384 = 0x0805
RSA_PSS_RSAE_SHA512 = 0x0806
ED25519 = 0x0807

SUPPORTED_SCHEMES = [
    ECDSA_SECP256R1_SHA256,
    ED25519,
    RSA_PSS_RSAE_SHA256,
    ECDSA_SECP384R1_SHA384,
    RSA_PSS_RSAE_SHA384,
    RSA_PSS_RSAE_SHA512,
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

SERVER_CONTEXT = b"TLS 1.3, server CertificateVerify"
CLIENT_CONTEXT = b"TLS 1.3, client CertificateVerify"

_RSA_HASH: dict[int, type[hashes.HashAlgorithm]] = {
    RSA_PSS_RSAE_SHA256: hashes.SHA256,
    RSA_PSS_RSAE_SHA384: hashes.SHA384,
    RSA_PSS_RSAE_SHA512: hashes.SHA512,
}
_EC_SCHEME: dict[int, tuple[type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    ECDSA_SECP256R1_SHA256: (ec.SECP256R1, hashes.SHA256),
    ECDSA_SECP384R1_SHA384: (ec.SECP384R1, hashes.SHA384),
}


def _pss(algorithm: hashes.HashAlgorithm) -> tuple[padding.PSS, hashes.HashAlgorithm]:
    return padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size), algorithm


# the (immutable) signature parameters of each scheme, built once
_RSA_PARAMS = {scheme: _pss(hash_type()) for scheme, hash_type in _RSA_HASH.items()}
_ECDSA = {scheme: ec.ECDSA(hash_type()) for scheme, (_, hash_type) in _EC_SCHEME.items()}


def signed_content(context: bytes, transcript_hash: bytes) -> bytes:
    """What CertificateVerify signs: 64 spaces, the context string, 0, the transcript hash."""
    return b" " * 64 + context + b"\x00" + transcript_hash


def schemes_for_key(key: PrivateKey) -> list[int]:
    """Schemes this private key can sign with, most preferred first."""
    if isinstance(key, rsa.RSAPrivateKey):
        return [RSA_PSS_RSAE_SHA256, RSA_PSS_RSAE_SHA384, RSA_PSS_RSAE_SHA512]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return [ED25519]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        for scheme, (curve, _) in _EC_SCHEME.items():
            if isinstance(key.curve, curve):
                return [scheme]
    return []


def sign(key: PrivateKey, scheme: int, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        pss, algorithm = _RSA_PARAMS[scheme]
        return key.sign(data, pss, algorithm)
    return key.sign(data, _ECDSA[scheme])


def verify(
    public_key: CertificatePublicKeyTypes, scheme: int, signature: bytes, data: bytes
) -> None:
    """Check a CertificateVerify signature; ``decrypt_error`` when it does not verify,
    ``illegal_parameter`` when the scheme does not fit the certificate's key."""
    try:
        if scheme == ED25519 and isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
            return
        if scheme in _RSA_HASH and isinstance(public_key, rsa.RSAPublicKey):
            pss, algorithm = _RSA_PARAMS[scheme]
            public_key.verify(signature, data, pss, algorithm)
            return
        if (
            scheme in _EC_SCHEME
            and isinstance(public_key, ec.EllipticCurvePublicKey)
            and isinstance(public_key.curve, _EC_SCHEME[scheme][0])
        ):
            public_key.verify(signature, data, _ECDSA[scheme])
            return
    except InvalidSignature:
        raise alert(Alert.DECRYPT_ERROR, "CertificateVerify signature is invalid") from None
    except ValueError as exc:  # malformed signature encodings
        raise alert(Alert.DECRYPT_ERROR, f"CertificateVerify signature is invalid: {exc}") from None
    raise alert(Alert.ILLEGAL_PARAMETER, f"signature scheme {scheme:#06x} does not fit the key")

"""TLS 1.3 key schedule (RFC 8446 section 7.1) and transcript hash (section 4.4.1)."""

from __future__ import annotations

import hashlib
import hmac as _hmac
from typing import Any

from cryptography.hazmat.primitives import hashes

from .. import kdf

TLS_AES_128_GCM_SHA256 = 0x1301
TLS_AES_256_GCM_SHA384 = 0x1302
TLS_CHACHA20_POLY1305_SHA256 = 0x1303

SUPPORTED_SUITES = (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)
SUITE_NAMES = {
    TLS_AES_128_GCM_SHA256: "TLS_AES_128_GCM_SHA256",
    TLS_AES_256_GCM_SHA384: "TLS_AES_256_GCM_SHA384",
    TLS_CHACHA20_POLY1305_SHA256: "TLS_CHACHA20_POLY1305_SHA256",
}

MESSAGE_HASH = 254  # handshake type of the synthetic message replacing ClientHello1 after HRR


def hash_for(suite: int) -> hashes.HashAlgorithm:
    """The hash algorithm of a TLS 1.3 cipher suite."""
    if suite == TLS_AES_256_GCM_SHA384:
        return hashes.SHA384()
    if suite in (TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256):
        return hashes.SHA256()
    raise ValueError(f"unsupported cipher suite {suite:#06x}")


def hkdf_extract(algorithm: hashes.HashAlgorithm, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869)."""
    return kdf.hkdf_extract(algorithm.name, salt, ikm)


def hkdf_expand_label(
    algorithm: hashes.HashAlgorithm, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label; ``label`` without the ``"tls13 "`` prefix."""
    return kdf.expand_label(algorithm.name, secret, label, context, length)


def digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    out: bytes = hashlib.new(algorithm.name, data).digest()
    return out


def hmac_digest(algorithm: hashes.HashAlgorithm, key: bytes, data: bytes) -> bytes:
    return kdf.hmac_digest(algorithm.name, key, data)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return _hmac.compare_digest(a, b)


class Transcript:
    """Running hash of the handshake messages.

    Messages are buffered until the hash is known (a client learns it from the
    ServerHello), then hashed incrementally.
    """

    __slots__ = ("_hash", "_pending", "algorithm")

    def __init__(self) -> None:
        self.algorithm: hashes.HashAlgorithm | None = None
        self._hash: Any = None  # a hashlib object once the algorithm is known
        self._pending: list[bytes] = []

    def select(self, algorithm: hashes.HashAlgorithm) -> None:
        """Fix the hash algorithm and hash everything seen so far."""
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm.name)
        for message in self._pending:
            self._hash.update(message)
        self._pending = []

    def update(self, message: bytes) -> None:
        if self._hash is None:
            self._pending.append(message)
        else:
            self._hash.update(message)

    def digest(self) -> bytes:
        if self._hash is None:
            raise RuntimeError("transcript hash not selected")
        out: bytes = self._hash.copy().digest()
        return out

    def digest_with(self, algorithm: hashes.HashAlgorithm, extra: bytes = b"") -> bytes:
        """Hash of the pending messages plus ``extra`` under ``algorithm`` (PSK binders)."""
        if self._hash is not None:
            h = self._hash.copy()
        else:
            h = hashlib.new(algorithm.name)
            for message in self._pending:
                h.update(message)
        h.update(extra)
        out: bytes = h.digest()
        return out

    def replace_with_message_hash(self) -> None:
        """Replace ClientHello1 by ``message_hash`` (RFC 8446 section 4.4.1, after HRR)."""
        if self._hash is None or self.algorithm is None:
            raise RuntimeError("transcript hash not selected")
        inner = self._hash.digest()
        self._hash = hashlib.new(self.algorithm.name)
        self._hash.update(bytes((MESSAGE_HASH, 0, 0, len(inner))) + inner)


class KeySchedule:
    """Secrets of one connection for one cipher suite's hash."""

    __slots__ = ("algorithm", "handshake_secret", "hash_len", "master_secret", "secret")

    def __init__(self, algorithm: hashes.HashAlgorithm, psk: bytes | None = None) -> None:
        self.algorithm = algorithm
        self.hash_len = algorithm.digest_size
        zeros = bytes(self.hash_len)
        self.secret = hkdf_extract(algorithm, zeros, psk if psk is not None else zeros)
        self.handshake_secret = b""
        self.master_secret = b""

    def derive_secret(
        self, label: bytes, transcript_hash: bytes, secret: bytes | None = None
    ) -> bytes:
        return hkdf_expand_label(
            self.algorithm,
            self.secret if secret is None else secret,
            label,
            transcript_hash,
            self.hash_len,
        )

    def empty_hash(self) -> bytes:
        return digest(self.algorithm, b"")

    def binder_key(self) -> bytes:
        """The resumption binder key (from the early secret)."""
        return self.derive_secret(b"res binder", self.empty_hash())

    def to_handshake(self, shared_secret: bytes) -> None:
        """Early secret -> handshake secret with the (EC)DHE shared secret."""
        derived = self.derive_secret(b"derived", self.empty_hash())
        self.secret = self.handshake_secret = hkdf_extract(self.algorithm, derived, shared_secret)

    def to_master(self) -> None:
        """Handshake secret -> master secret."""
        derived = self.derive_secret(b"derived", self.empty_hash())
        self.secret = self.master_secret = hkdf_extract(
            self.algorithm, derived, bytes(self.hash_len)
        )

    def finished_key(self, base_key: bytes) -> bytes:
        return hkdf_expand_label(self.algorithm, base_key, b"finished", b"", self.hash_len)

    def verify_data(self, base_key: bytes, transcript_hash: bytes) -> bytes:
        """Finished verify_data (or a PSK binder when ``base_key`` is the binder key)."""
        return hmac_digest(self.algorithm, self.finished_key(base_key), transcript_hash)

    def resumption_psk(self, resumption_master_secret: bytes, nonce: bytes) -> bytes:
        return hkdf_expand_label(
            self.algorithm, resumption_master_secret, b"resumption", nonce, self.hash_len
        )

"""TLS 1.3 key schedule (RFC 8446 section 7.1) and transcript hash (section 4.4.1)."""

from __future__ import annotations

import functools
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
        self._hash = kdf.new_hash(algorithm.name)
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


@functools.cache
def _empty_hash(name: str) -> bytes:
    """Hash of the empty string (the context of the "derived" and binder secrets)."""
    out: bytes = hashlib.new(name, b"").digest()
    return out


@functools.cache
def _no_psk_secrets(name: str) -> tuple[bytes, bytes]:
    """The early secret without a PSK and its "derived" secret: public constants, the
    same for every connection with this hash, so computed once per process."""
    zeros = bytes(kdf.digest_size(name))
    early = kdf.hkdf_extract(name, zeros, zeros)
    return early, kdf.expand_label(name, early, b"derived", _empty_hash(name), len(zeros))


class KeySchedule:
    """Secrets of one connection for one cipher suite's hash."""

    __slots__ = (
        "_early_derived",
        "_name",
        "_prk",
        "algorithm",
        "handshake_secret",
        "hash_len",
        "master_secret",
        "secret",
    )

    def __init__(self, algorithm: hashes.HashAlgorithm, psk: bytes | None = None) -> None:
        self.algorithm = algorithm
        self.hash_len = algorithm.digest_size
        self._name = name = algorithm.name
        # "derived" of the early secret when it is a constant (no PSK), else computed later
        self._early_derived: bytes | None
        if psk is None:
            self.secret, self._early_derived = _no_psk_secrets(name)
        else:
            self.secret = kdf.hkdf_extract(name, bytes(self.hash_len), psk)
            self._early_derived = None
        self.handshake_secret = b""
        self.master_secret = b""
        self._prk: kdf.Prk | None = None  # self.secret's, made at its first derive_secret

    def derive_secret(
        self, label: bytes, transcript_hash: bytes, secret: bytes | None = None
    ) -> bytes:
        """Derive-Secret(``secret``, label, transcript hash); without ``secret``, of the
        current one, whose HMAC pads are hashed once for all it derives (three secrets
        each from the handshake and master secrets)."""
        if secret is not None:
            return kdf.expand_label(self._name, secret, label, transcript_hash, self.hash_len)
        prk = self._prk
        if prk is None or prk.secret is not self.secret:
            prk = self._prk = kdf.Prk(self._name, self.secret)
        return prk.expand_label(label, transcript_hash, self.hash_len)

    def empty_hash(self) -> bytes:
        return _empty_hash(self._name)

    def binder_key(self) -> bytes:
        """The resumption binder key (from the early secret)."""
        return self.derive_secret(b"res binder", self.empty_hash())

    def to_handshake(self, shared_secret: bytes) -> None:
        """Early secret -> handshake secret with the (EC)DHE shared secret."""
        derived = self._early_derived
        if derived is None:
            derived = self.derive_secret(b"derived", self.empty_hash())
        self.secret = self.handshake_secret = kdf.hkdf_extract(self._name, derived, shared_secret)
        self._early_derived = None

    def to_master(self) -> None:
        """Handshake secret -> master secret."""
        derived = self.derive_secret(b"derived", self.empty_hash())
        self.secret = self.master_secret = kdf.hkdf_extract(
            self._name, derived, bytes(self.hash_len)
        )

    def finished_key(self, base_key: bytes) -> bytes:
        return kdf.expand_label(self._name, base_key, b"finished", b"", self.hash_len)

    def verify_data(self, base_key: bytes, transcript_hash: bytes) -> bytes:
        """Finished verify_data (or a PSK binder when ``base_key`` is the binder key)."""
        return kdf.hmac_digest(self._name, self.finished_key(base_key), transcript_hash)

    def resumption_psk(self, resumption_master_secret: bytes, nonce: bytes) -> bytes:
        return kdf.expand_label(
            self._name, resumption_master_secret, b"resumption", nonce, self.hash_len
        )

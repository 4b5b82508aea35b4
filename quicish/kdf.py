"""HMAC, HKDF (RFC 5869) and TLS 1.3 HKDF-Expand-Label (RFC 8446 section 7.1), over hashlib.

Shared by the TLS key schedule and QUIC packet protection. HMAC is two hashlib digests with
the RFC 2104 pads: for the short inputs of a key schedule that is about twice as fast as
``hmac.digest``, whose per-call OpenSSL algorithm lookup dominates at these sizes.
``label_info`` caches the HkdfLabel structure of the context-free labels QUIC derives for
every key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any

_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
# name -> (constructor, block size, digest size)
_HASHES: dict[str, tuple[Callable[..., Any], int, int]] = {
    "sha256": (hashlib.sha256, 64, 32),
    "sha384": (hashlib.sha384, 128, 48),
}


def _hash(name: str) -> tuple[Callable[..., Any], int, int]:
    try:
        return _HASHES[name]
    except KeyError:
        raise ValueError(f"unsupported hash {name!r}") from None


def hmac_digest(name: str, key: bytes, msg: bytes) -> bytes:
    """HMAC(key, msg) with the hash called ``name`` ("sha256" or "sha384")."""
    new, block, _ = _hash(name)
    if len(key) > block:
        key = new(key).digest()
    key = key.ljust(block, b"\0")
    inner: bytes = new(key.translate(_IPAD) + msg).digest()
    outer: bytes = new(key.translate(_OPAD) + inner).digest()
    return outer


def digest_size(name: str) -> int:
    return _hash(name)[2]


def hkdf_extract(name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract: HMAC(salt, ikm); an empty salt is a string of zeros (RFC 5869 2.2)."""
    return hmac_digest(name, salt or bytes(digest_size(name)), ikm)


def hkdf_expand(name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 section 2.3)."""
    size = digest_size(name)
    if length > 255 * size:
        raise ValueError("HKDF-Expand output too long")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac_digest(name, prk, block + info + bytes((counter,)))
        out += block
        counter += 1
    return out[:length]


@lru_cache(maxsize=128)
def label_info(label: bytes, length: int) -> bytes:
    """The HkdfLabel for ``label`` (without "tls13 ") and an empty context."""
    return _info(label, b"", length)


def _info(label: bytes, context: bytes, length: int) -> bytes:
    full = b"tls13 " + label
    if len(full) > 255 or len(context) > 255 or not 0 <= length < 1 << 16:
        raise ValueError("HkdfLabel field out of range")
    return length.to_bytes(2, "big") + bytes((len(full),)) + full + bytes((len(context),)) + context


def expand_label(name: str, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """HKDF-Expand-Label(secret, label, context, length)."""
    info = label_info(label, length) if not context else _info(label, context, length)
    return hkdf_expand(name, secret, info, length)

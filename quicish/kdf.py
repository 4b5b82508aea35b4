"""HMAC, HKDF (RFC 5869) and TLS 1.3 HKDF-Expand-Label (RFC 8446 section 7.1), over hashlib.

Shared by the TLS key schedule and QUIC packet protection. HMAC is two hashlib digests with
the RFC 2104 pads: for the short inputs of a key schedule that is about twice as fast as
``hmac.digest``, whose per-call OpenSSL algorithm lookup dominates at these sizes.

Every output of a TLS or QUIC key schedule fits in one hash block, so HKDF-Expand has a
one-block fast path (``T(1) = HMAC(PRK, info | 0x01)``), and :func:`label_info` caches the
HkdfLabel structure (with that trailing counter byte) of the context-free labels QUIC
derives for every key. :func:`expand_labels` derives several such labels from one secret,
padding the key and hashing each pad block once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
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


def _padded_key(new: Callable[..., Any], block: int, key: bytes) -> bytes:
    """The HMAC key K0 of RFC 2104: hashed if longer than a block, zero-padded to one."""
    if len(key) > block:
        key = new(key).digest()
    return key.ljust(block, b"\0")


def _hmac(new: Callable[..., Any], block: int, key: bytes, msg: bytes) -> bytes:
    key = _padded_key(new, block, key)
    inner: bytes = new(key.translate(_IPAD) + msg).digest()
    outer: bytes = new(key.translate(_OPAD) + inner).digest()
    return outer


def hmac_digest(name: str, key: bytes, msg: bytes) -> bytes:
    """HMAC(key, msg) with the hash called ``name`` ("sha256" or "sha384")."""
    new, block, _ = _hash(name)
    return _hmac(new, block, key, msg)


def hmac_keyed(name: str, key: bytes) -> Callable[[bytes], bytes]:
    """``HMAC(key, .)`` as a function of the message, the key's pad blocks hashed once: for
    a key that MACs several messages (one state copy per pad, not a hash of it, per call)."""
    new, block, _ = _hash(name)
    padded = _padded_key(new, block, key)
    inner = new(padded.translate(_IPAD))
    outer = new(padded.translate(_OPAD))

    def mac(msg: bytes) -> bytes:
        h = inner.copy()
        h.update(msg)
        o = outer.copy()
        o.update(h.digest())
        out: bytes = o.digest()
        return out

    return mac


def new_hash(name: str, data: bytes = b"") -> Any:
    """A hashlib object of ``name`` ("sha256" or "sha384"), by its constructor (not
    ``hashlib.new``'s lookup by name)."""
    return _hash(name)[0](data)


def digest_size(name: str) -> int:
    return _hash(name)[2]


def hkdf_extract(name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract: HMAC(salt, ikm); an empty salt is a string of zeros (RFC 5869 2.2)."""
    new, block, size = _hash(name)
    return _hmac(new, block, salt or bytes(size), ikm)


def hkdf_expand(name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 section 2.3)."""
    new, block, size = _hash(name)
    if length > 255 * size:
        raise ValueError("HKDF-Expand output too long")
    if 0 < length <= size:
        return _hmac(new, block, prk, info + b"\x01")[:length]
    out = b""
    t = b""
    counter = 1
    while len(out) < length:
        t = _hmac(new, block, prk, t + info + bytes((counter,)))
        out += t
        counter += 1
    return out[:length]


@lru_cache(maxsize=128)
def label_info(label: bytes, length: int) -> bytes:
    """The HkdfLabel for ``label`` (without "tls13 ") and an empty context, followed by the
    HKDF-Expand block counter 0x01: the HMAC message of a one-block HKDF-Expand-Label."""
    return _info(label, b"", length) + b"\x01"


@lru_cache(maxsize=128)
def _label_head(label: bytes, length: int) -> bytes:
    """The HkdfLabel (RFC 8446 section 7.1) up to its context: length and "tls13 " label."""
    full = b"tls13 " + label
    if len(full) > 255 or not 0 <= length < 1 << 16:
        raise ValueError("HkdfLabel field out of range")
    return length.to_bytes(2, "big") + bytes((len(full),)) + full


def _info(label: bytes, context: bytes, length: int) -> bytes:
    if len(context) > 255:
        raise ValueError("HkdfLabel field out of range")
    return _label_head(label, length) + bytes((len(context),)) + context


def expand_label(name: str, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """HKDF-Expand-Label(secret, label, context, length)."""
    new, block, size = _hash(name)
    if length > size:
        return hkdf_expand(name, secret, _info(label, context, length), length)
    msg = label_info(label, length) if not context else _info(label, context, length) + b"\x01"
    return _hmac(new, block, secret, msg)[:length]


def expand_labels(name: str, secret: bytes, labels: Iterable[tuple[bytes, int]]) -> list[bytes]:
    """HKDF-Expand-Label(secret, label, "", length) for each ``(label, length)``.

    Each length must fit in one hash output (ValueError otherwise). The key is padded and
    each HMAC pad block hashed once for all labels (:func:`hmac_keyed`).
    """
    size = _hash(name)[2]
    mac = hmac_keyed(name, secret)
    out: list[bytes] = []
    for label, length in labels:
        if length > size:
            raise ValueError("expand_labels output longer than one hash block")
        out.append(mac(label_info(label, length))[:length])
    return out


class Prk:
    """A secret (an HKDF pseudorandom key) with its HMAC pad blocks hashed once
    (:func:`hmac_keyed`), for the several HKDF-Expand-Label calls made from one secret."""

    __slots__ = ("_mac", "_size", "secret")

    def __init__(self, name: str, secret: bytes) -> None:
        self.secret = secret
        self._size = _hash(name)[2]
        self._mac = hmac_keyed(name, secret)

    def expand_label(self, label: bytes, context: bytes, length: int) -> bytes:
        """HKDF-Expand-Label(secret, label, context, length); ``length`` at most one hash
        output (ValueError otherwise)."""
        if length > self._size:
            raise ValueError("expand_label output longer than one hash block")
        msg = label_info(label, length) if not context else _info(label, context, length) + b"\x01"
        return self._mac(msg)[:length]
